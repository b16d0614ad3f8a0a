#!/usr/bin/env python
"""Benchmark: how fast and how cheaply the operator reconciles N TrainingRuns.

Starts the operator from a source tree (``--source``, default this checkout) against the
cluster KUBECONFIG names, measures a plain client's raw API write rate in the same run, creates
N runs from 8 threads and prints: runs fully reconciled per second, create-to-Job latency
(p50/p99; also for probe runs created after the burst), API writes per run by resource and verb
(from the API server's /metrics, and as counted inside the operator process, which other clients
of a shared cluster cannot inflate), the operator's RSS and its idle CPU with N runs live, each
against its baseline or target. See tests/bench/README.md.

    .venv/bin/python tests/bench/bench_operator.py --runs 1000 --source /work/before
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import operator_load as load
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from replay import replay_rate

TARGETS = {"throughput_ratio": (">=", 0.5), "writes_ratio": ("<=", 1.2),
           "writes_ratio_operator": ("<=", 1.2),
           "rss_ratio": ("<=", 1.0), "idle_cpu_ratio": ("<=", 1.0),
           "probe_p99_s": ("<=", 2.0)}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=300, help="TrainingRuns to create (default 300)")
    p.add_argument("--source", type=Path, default=load.REPO, help="source tree of the operator")
    p.add_argument("--workers", type=int, help="ARCLIGHT_WORKERS for the operator (new code)")
    p.add_argument("--keep", action="store_true", help="keep the namespaces (and the runs)")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.add_argument("--probes", type=int, default=20, help="runs created one by one after the "
                   "burst is reconciled (default 20, 0.5 s apart)")
    p.add_argument("--timeout", type=float, default=1800,
                   help="seconds to wait for the burst to be fully reconciled (default 1800)")
    p.add_argument("--replay", type=int, default=300, help="runs whose writes a plain client "
                   "replays before the burst, the ceiling any operator could reach (replay.py; "
                   "default 300, 0 to skip)")
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    return p.parse_args()


def kubeconfig_path(given: str | None) -> str:
    if given:
        return given
    return subprocess.run(["bash", str(load.REPO / "hack/cluster.sh"), "kubeconfig"],
                          capture_output=True, text=True, check=True).stdout.strip()


def uptime() -> str:
    """The load averages (1, 5, 15 min): the machine is shared."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def raw_write_rate(kubeconfig: str, namespace: str, threads: int = 8,
                   seconds: float = 10) -> float:
    """Small ConfigMaps created per second by ``threads`` threads of a plain client."""
    stop, counts = time.monotonic() + seconds, [0] * threads

    def work(i: int) -> None:
        core, n = client.CoreV1Api(load.api_client(kubeconfig, pool=2)), 0
        while time.monotonic() < stop:
            body = {"metadata": {"name": f"raw-{i}-{n}"}, "data": {"k": "v"}}
            n += 1
            try:
                load.discard(core.create_namespaced_config_map(namespace, body,
                                                               _preload_content=False))
                counts[i] += 1
            except ApiException as exc:  # counted as not written; 429/5xx under load
                print(f"  raw write failed: {exc.status} {exc.reason}", flush=True)
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    return sum(counts) / (time.monotonic() - started)


def settle(api, ns: str, runs: int, timeout: float = 900) -> float:
    """Wait until the cluster is done with the burst: every run's trainer pod exists and the
    scheduler has marked it unschedulable (the job controller and the scheduler work through
    thousands of Jobs for minutes after the operator is done). Returns the seconds waited."""
    core, t0 = client.CoreV1Api(api), time.monotonic()

    def unschedulable() -> int:
        pods = core.list_namespaced_pod(ns, label_selector="app.kubernetes.io/component=trainer",
                                        _request_timeout=120).items
        return sum(1 for pod in pods if any(
            c.type == "PodScheduled" and c.reason == "Unschedulable"
            for c in (pod.status.conditions or [])))
    while (done := unschedulable()) < runs and time.monotonic() - t0 < timeout:
        time.sleep(5)
    if done < runs:
        print(f"  the cluster did not settle: {done} of {runs} pods unschedulable after "
              f"{timeout:.0f} s; the idle figure includes the rest", flush=True)
    return time.monotonic() - t0


def idle_cpu(op: load.Operator, seconds: float = 30) -> tuple[float, float]:
    """Percent of one core the operator used over ``seconds``, and the passes it ran."""
    passes0 = sum(op.metric_lines(("arclight_reconcile_total",)).values())
    cpu0, t0 = op.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    pct = 100 * (op.cpu_seconds() - cpu0) / (time.monotonic() - t0)
    return pct, sum(op.metric_lines(("arclight_reconcile_total",)).values()) - passes0


def run_probes(api, tracker: load.Tracker, namespace: str, count: int) -> dict[str, float]:
    """Create ``count`` runs one at a time, 0.5 s apart; monotonic create times by name."""
    created: dict[str, float] = {}
    for i in range(count):
        created.update(load.create_runs(api, namespace, [f"probe-{i:03d}"], threads=1)[0])
        time.sleep(0.5)
    left = tracker.wait(list(created), timeout=120)
    if left:
        print(f"  TIMEOUT: {len(left)} probe runs not fully reconciled after 120 s", flush=True)
    return created


def latencies(tracker: load.Tracker, created: dict[str, float]) -> dict[str, float | None]:
    """Create-to-Job p50/p99 over the runs whose Job was seen (``jobs_seen`` of ``created``)."""
    lat = [tracker.job_seen[n] - t for n, t in created.items() if n in tracker.job_seen]
    return {"p50_s": load.percentile(lat, 50), "p99_s": load.percentile(lat, 99),
            "jobs_seen": len(lat), "created": len(created)}


def snapshot(api, op: load.Operator) -> tuple:
    """(the API server's request counters, the operator's own request counters)."""
    return load.scrape_requests(api), op.requests()


def burst(args: argparse.Namespace, api, tracker: load.Tracker, ns: str, fig: dict) -> int:
    """Create the N runs and wait until they are fully reconciled; return the POSTs sent."""
    names = [f"run-{i:05d}" for i in range(args.runs)]
    t_first = time.monotonic()
    created, posts = load.create_runs(api, ns, names)
    fig["create_burst_s"] = time.monotonic() - t_first
    print(f"created {len(created)} runs in {fig['create_burst_s']:.1f} s", flush=True)
    left = tracker.wait(names, args.timeout)
    done = [t for n in names if (t := tracker.reconciled(n)) is not None]
    if left:
        print(f"TIMEOUT after {args.timeout:.0f} s: {len(left)} of {args.runs} runs not fully "
              f"reconciled (e.g. {left[:3]}); the figures are at the timeout", flush=True)
    fig["fully_reconciled"] = len(done)
    fig["t_last"] = max(done) if done else time.monotonic()
    fig["reconcile_span_s"] = fig["t_last"] - t_first
    fig["runs_per_s"] = len(done) / fig["reconcile_span_s"]
    fig["burst"] = latencies(tracker, created)
    return posts


def write_figures(snaps: dict, own_posts: int, runs: int) -> dict:
    """Writes per run from the server's counters (minus our creates) and the operator's own."""
    server = load.write_diff(snaps["before"][0], snaps["after"][0])
    own = load.write_diff(snaps["before"][1], snaps["after"][1])
    verbs = load.verb_totals(snaps["before"][1], snaps["after"][1])
    return {"writes_server": server, "writes_operator": own, "own_creates": own_posts,
            "writes_per_run": load.operator_writes(server, own_posts) / runs,
            "writes_per_run_operator": load.operator_writes(own, 0) / runs,
            "hook_sees_children": load.hook_sees_children(own, runs),
            "writes_during_idle": load.operator_writes(
                load.write_diff(snaps["done"][1], snaps["after"][1]), 0),
            "requests_during_idle": sum(load.verb_totals(snaps["done"][1],
                                                         snaps["after"][1]).values()),
            "requests_per_run_operator": {v: n / runs for v, n in sorted(verbs.items())}}


def cluster_figures(api, ns: str, server: dict, own: dict, own_posts: int) -> dict:
    """What is in the namespace: finalizers, Events, creates by other clients, and children
    our operator did not create (another operator watching all namespaces, on a shared
    cluster)."""
    runs = load.list_runs(api, ns)
    children = sum(sum(c.values()) for c in load.children_by_run(api, ns).values())
    ours = children + own_posts
    by_operator = sum(r["codes"].get("201", 0) for k, r in own["counted"].items()
                      if not k.startswith("trainingruns") and k.endswith((" POST", " APPLY")))
    created = sum(r["codes"].get("201", 0) for k, r in server["counted"].items()
                  if k.endswith(" POST"))
    return {"runs_with_finalizers": sum(1 for r in runs if r["metadata"].get("finalizers")),
            "finalizers_seen": sorted({f for r in runs
                                       for f in r["metadata"].get("finalizers") or []}),
            "operator_events": dict(load.operator_events(api, ns)),
            "creates_by_others": max(0, created - ours),
            "children_not_by_operator": max(0, children - by_operator)}


def measure(args: argparse.Namespace, api, kubeconfig: str, op: load.Operator, ns: str,
            raw_ns: str, rss: load.RssSampler) -> dict:
    """The phases: raw rate, burst, reconciled, idle, probes. Returns the figures."""
    fig: dict = {"runs": args.runs, "source": str(args.source), "load_before": uptime()}
    fig["raw_writes_per_s"] = raw_write_rate(kubeconfig, raw_ns)
    print(f"raw write rate (8 threads, ConfigMaps): {fig['raw_writes_per_s']:.1f} objects/s",
          flush=True)
    if args.replay:
        fig["replay_runs"] = min(args.replay, args.runs)
        fig["replay_runs_per_s"] = replay_rate(kubeconfig, raw_ns, fig["replay_runs"])
        print(f"same writes, plain client: {fig['replay_runs_per_s']:.1f} runs/s; waiting for "
              f"the cluster to settle", flush=True)
        settle(api, raw_ns, fig["replay_runs"])
    tracker = load.Tracker(api, ns).start()
    snaps = {"before": snapshot(api, op)}
    posts = burst(args, api, tracker, ns, fig)
    snaps["done"] = snapshot(api, op)
    fig["settle_s"] = settle(api, ns, args.runs)
    time.sleep(max(0.0, fig["t_last"] + 10 - time.monotonic()))
    fig["idle_cpu_pct"], fig["idle_passes"] = idle_cpu(op)
    snaps["after"] = snapshot(api, op)
    fig.update(write_figures(snaps, posts, args.runs))
    fig.update(cluster_figures(api, ns, fig["writes_server"], fig["writes_operator"], posts))
    fig["probes"] = latencies(tracker, run_probes(api, tracker, ns, args.probes))
    fig["rss_end_mb"], fig["rss_max_mb"] = op.rss_mb(), max(rss.max_mb, op.rss_mb())
    fig["load_after"] = uptime()
    fig["operator_metrics"] = op.metric_lines()
    tracker.stop()
    return fig


def ratios(fig: dict) -> dict[str, float | None]:
    return {"throughput_ratio": fig["runs_per_s"] / (fig["raw_writes_per_s"] / load.MIN_WRITES),
            "writes_ratio": fig["writes_per_run"] / load.MIN_WRITES,
            "writes_ratio_operator": fig["writes_per_run_operator"] / load.MIN_WRITES,
            "rss_ratio": fig["rss_max_mb"] / 250, "idle_cpu_ratio": fig["idle_cpu_pct"] / 2,
            "probe_p99_s": fig["probes"]["p99_s"]}


def report(fig: dict) -> str:
    """The figures as printed."""
    def ms(v: float | None) -> str:
        return "n/a" if v is None else f"{v * 1000:.0f} ms"
    r, b, p = fig["ratios"], fig["burst"], fig["probes"]
    ok = {k: "ok" if r[k] is not None and (r[k] >= t if op == ">=" else r[k] <= t) else "MISS"
          for k, (op, t) in TARGETS.items()}
    raw, events = fig["raw_writes_per_s"], fig["operator_events"]
    return "\n".join([
        f"== operator bench: {fig['runs']} runs, source {fig['source']}",
        f"load (1/5/15 min)       before {fig['load_before']}, after {fig['load_after']}",
        (f"raw write rate          {raw:8.1f} objects/s (baseline "
         f"{raw / load.MIN_WRITES:.1f} runs/s at 8 writes/run)"),
        (f"fully reconciled        {fig['fully_reconciled']}/{fig['runs']} in "
         f"{fig['reconcile_span_s']:.1f} s (the creates took {fig['create_burst_s']:.1f} s)"),
        (f"throughput              {fig['runs_per_s']:8.2f} runs/s   ratio "
         f"{r['throughput_ratio']:.3f} (target >= 0.5) {ok['throughput_ratio']}"),
        *([(f"  the same writes sent by a plain client (replay.py, {fig['replay_runs']} runs, "
           f"8 threads, no watch): {fig['replay_runs_per_s']:.2f} runs/s; the operator reaches "
           f"{fig['runs_per_s'] / fig['replay_runs_per_s']:.2f} of it")]
          if "replay_runs_per_s" in fig else []),
        (f"create-to-Job (burst)   p50 {ms(b['p50_s'])}  p99 {ms(b['p99_s'])}  "
         f"({b['jobs_seen']}/{b['created']} Jobs)"),
        (f"create-to-Job (probes)  p50 {ms(p['p50_s'])}  p99 {ms(p['p99_s'])}  ({p['jobs_seen']}/"
         f"{p['created']} Jobs of runs created one by one after the burst, within 120 s; "
         f"target p99 < 2 s) {ok['probe_p99_s']}"),
        (f"API writes per run      {fig['writes_per_run']:8.2f}   ratio "
         f"{r['writes_ratio']:.2f} (minimum 8, target <= 1.2) {ok['writes_ratio']}  "
         f"(API server /metrics, cluster-wide: {fig['creates_by_others']} creates by others)"),
        load.format_breakdown(fig["writes_server"], fig["runs"], fig["own_creates"]),
        (f"operator's own writes   {fig['writes_per_run_operator']:8.2f}   ratio "
         f"{r['writes_ratio_operator']:.2f} {ok['writes_ratio_operator']}  (counted in the "
         f"operator process; {fig['writes_during_idle']} in the idle window"
         f"{'' if fig['hook_sees_children'] else '; INCOMPLETE: fewer writes than children'})"),
        load.format_breakdown(fig["writes_operator"], fig["runs"], 0),
        "operator's requests/run " + ", ".join(
            f"{v} {n:.2f}" for v, n in fig["requests_per_run_operator"].items()),
        f"Events on TrainingRuns  {sum(events.values())} {events}",
        *([(f"WARNING: {fig['children_not_by_operator']} children were created by another "
            "client (an operator watching all namespaces?): the figures are not this operator's")]
          if fig["children_not_by_operator"] else []),
        (f"finalizers              {fig['runs_with_finalizers']} runs hold "
         f"{fig['finalizers_seen']}"),
        (f"operator RSS            max {fig['rss_max_mb']:.0f} MB, end {fig['rss_end_mb']:.0f}"
         f" MB   ratio {r['rss_ratio']:.2f} (of 250 MB) {ok['rss_ratio']}"),
        (f"operator idle CPU       {fig['idle_cpu_pct']:6.1f} % of a core (30 s, "
         f"{fig['runs']} runs live)   ratio {r['idle_cpu_ratio']:.2f} (of 2 %) "
         f"{ok['idle_cpu_ratio']}; {fig['idle_passes']:.0f} passes in the window, which "
         f"began once every pod was unschedulable ({fig['settle_s']:.0f} s after the last "
         f"run was reconciled); {fig['requests_during_idle']} API requests from the last "
         f"reconciled run to the end of the window"),
        "operator's own counters " + ", ".join(
            f"{k}={v:.0f}" for k, v in sorted(fig["operator_metrics"].items()))])


def main() -> int:
    args = parse_args()
    kubeconfig = kubeconfig_path(args.kubeconfig)
    api = load.api_client(kubeconfig)
    tag = secrets.token_hex(3)
    ns, raw_ns = f"bench-{tag}", f"bench-raw-{tag}"
    log_path = Path(tempfile.gettempdir()) / f"bench-operator-{tag}.log"
    print(f"namespaces {ns}, {raw_ns}; operator log {log_path}; load {uptime()}", flush=True)
    load.ensure_crds(api, args.source)
    for name in (ns, raw_ns):
        load.create_namespace(api, name)
    op = load.Operator(args.source, kubeconfig, ns, log_path, args.workers)
    rss = load.RssSampler(op)
    try:
        op.start()
        rss.start()
        fig = measure(args, api, kubeconfig, op, ns, raw_ns, rss)
        fig["ratios"] = ratios(fig)
        print(report(fig), flush=True)
        if args.json:
            args.json.write_text(json.dumps(fig, indent=2, default=str))
    finally:
        rss.stopped.set()
        op.stop()
        if args.keep:
            print(f"kept {ns} and {raw_ns} (runs may hold finalizers of the stopped operator)")
        else:
            t0 = time.monotonic()
            left = load.delete_namespaces(api, [ns, raw_ns], timeout=max(600, args.runs * 0.6))
            print(f"namespaces deleted in {time.monotonic() - t0:.0f} s" if not left else
                  f"TIMEOUT: namespaces {left} still terminating after "
                  f"{time.monotonic() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
