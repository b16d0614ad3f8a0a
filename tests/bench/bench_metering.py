#!/usr/bin/env python
"""Benchmark: what metering costs the operator at N live pods (Running since up to 2 h, no
kubelet, owned by N/10 TrainingRun names that do not exist). The operator from this checkout
runs twice over them for the same window: A without a ledger, B with a throwaway Postgres
ledger. Prints A, B and B/A: operator CPU s/min, its API requests/min by verb and resource,
passes/min, RSS, Postgres CPU; each round's wall time and meter-thread CPU (a hook in the
operator process wraps ``Meter.round``); ledger rows; metering metrics. See README.md.

    .venv/bin/python tests/bench/bench_metering.py --pods 1000
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
import operator_load as load
import psycopg
from bench_operator import kubeconfig_path, uptime
from kube import wait_until
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from postgres import PostgresServer

FINALIZER = "arclight.dev/metering"
METRICS = ("arclight_metering_lag_seconds", "arclight_credits_used_total",
           "arclight_api_writes_total", "arclight_ledger_errors_total",
           "arclight_reconcile_total", "arclight_workqueue_depth")
# The operator's sitecustomize: the request-counting hook, then every Meter.round of the
# "arclight-meter" thread timed (wall, thread CPU) into $ARCLIGHT_BENCH_ROUNDS (JSON lines).
ROUND_HOOK = '''import importlib.util, json, os, threading, time
_spec = importlib.util.spec_from_file_location("arclight_bench_counts", {counts!r})
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))
_PATH, _run = os.environ.get("ARCLIGHT_BENCH_ROUNDS"), threading.Thread.run
def _timed(self):
    meter = getattr(getattr(self, "_target", None), "__self__", None)
    if _PATH and self.name == "arclight-meter" and hasattr(meter, "round"):
        inner = meter.round
        def round(now):
            t, w, c = time.time(), time.perf_counter(), time.thread_time()
            try:
                return inner(now)
            finally:
                with open(_PATH, "a") as fh:
                    fh.write(json.dumps([t, time.perf_counter() - w, time.thread_time() - c])
                             + "\\n")
        meter.round = round
    _run(self)
threading.Thread.run = _timed
'''


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pods", type=int, default=1000, help="metered pods (default 1000)")
    p.add_argument("--namespaces", type=int, default=10, help="spread over (default 10)")
    p.add_argument("--window", type=float, default=120, help="seconds measured per phase")
    p.add_argument("--settle", type=float, default=20, help="seconds after ready, at least")
    p.add_argument("--interval", type=float, default=30, help="ARCLIGHT_METERING_INTERVAL")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    return p.parse_args()


class MeterOperator(load.Operator):
    """``load.Operator`` on several namespaces, with extra env and ROUND_HOOK first."""

    def __init__(self, kubeconfig: str, namespaces: list[str], log_path: Path, hook: Path,
                 env: dict[str, str]) -> None:
        super().__init__(load.REPO, kubeconfig, ",".join(namespaces), log_path)
        self.namespaces, self.hook, self.env = namespaces, hook, env
        self.rounds_path = log_path.with_suffix(".rounds.jsonl")

    def start(self, timeout: float = 120) -> MeterOperator:
        src, env = self.source, dict(os.environ)
        for name in ("ARCLIGHT_RESYNC_SECONDS", "ARCLIGHT_LEDGER_DSN"):
            env.pop(name, None)
        env.update({"KUBECONFIG": self.kubeconfig, "ARCLIGHT_WATCH_NAMESPACES": self.namespace,
                    "ARCLIGHT_TRAINER_IMAGE": "docker.io/arclight/trainer:bench",
                    "ARCLIGHT_METRICS_PORT": str(self.metrics_port),
                    "PYTHONPATH": os.pathsep.join(str(p) for p in (
                        self.hook, src / "operator", src / "trainer-image", src)),
                    "ARCLIGHT_BENCH_COUNTS": str(self.counts_path),
                    "ARCLIGHT_BENCH_ROUNDS": str(self.rounds_path), **self.env})
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("kopf")), "run", "-m", "controllers",
             *(f"--namespace={ns}" for ns in self.namespaces), "--standalone",
             f"--liveness=http://127.0.0.1:{self.liveness_port}/healthz"],
            cwd=src, env=env, stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT)
        wait_until(self.ready, timeout=timeout, what="operator ready", ignore=(OSError,))
        return self

    def rounds(self) -> list[list[float]]:
        """[start (epoch s), wall s, meter-thread CPU s] of every round so far."""
        text = self.rounds_path.read_text() if self.rounds_path.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line]

    def metrics(self) -> collections.Counter:
        return collections.Counter(self.metric_lines(METRICS))


def make_pods(api, namespaces: list[str], n: int, rng: random.Random) -> None:
    """N Running pods from 8 threads: the create, then the kubelet's status report."""
    core, now = client.CoreV1Api(api), datetime.datetime.now(datetime.UTC)
    owners = [(f"run-{i:04d}", secrets.token_hex(8)) for i in range(max(1, n // 10))]

    def one(i: int) -> None:
        ns, name = namespaces[i % len(namespaces)], f"p-{i:05d}"
        owner, uid = owners[i % len(owners)]
        start = f"{now - datetime.timedelta(seconds=rng.randint(60, 7200)):%Y-%m-%dT%H:%M:%SZ}"
        image = "docker.io/arclight/trainer:bench"
        core.create_namespaced_pod(ns, {
            "metadata": {"name": name, "finalizers": [FINALIZER], "labels": {
                "arclight.dev/owner-kind": "TrainingRun", "arclight.dev/owner-name": owner,
                "arclight.dev/owner-uid": uid, "arclight.dev/gpu-type": "none"}},
            "spec": {"schedulerName": "arclight-test-nobody", "containers": [{
                "name": "main", "image": image, "resources": {"requests": {
                    "cpu": rng.choice(["500m", "1", "2"]), "memory": "1Gi"}}}]}},
            _request_timeout=60)
        core.patch_namespaced_pod_status(name, ns, {"status": {
            "phase": "Running", "startTime": start, "containerStatuses": [{
                "name": "main", "ready": True, "restartCount": 0, "image": image,
                "imageID": "", "state": {"running": {"startedAt": start}}}]}},
            _request_timeout=60)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(n)))


def pg_cpu(pg: PostgresServer) -> float:
    """CPU seconds of the postmaster (with its reaped children) and its live backends."""
    pm, total = (pg.data / "postmaster.pid").read_text().split()[0], 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            f = stat.read_text().rsplit(")", 1)[1].split()
            mine = stat.parent.name == pm
            total += sum(int(x) for x in f[11:15 if mine else 13]) if mine or f[1] == pm else 0
    return total / os.sysconf("SC_CLK_TCK")


def ledger(dsn: str) -> dict:
    with psycopg.connect(dsn) as conn:
        rows, pods, txs, largest = conn.execute(
            "SELECT (SELECT count(*) FROM usage_events), (SELECT count(DISTINCT pod_uid) FROM "
            "usage_events), count(*), coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM "
            "usage_events GROUP BY recorded_at) b").fetchone()
    return {"rows": rows, "pods": pods, "transactions": txs, "largest": largest}


def measure(op: MeterOperator, window: float, pg: PostgresServer) -> dict:
    """CPU, requests, passes and rounds of ``op`` over ``window`` seconds."""
    rss = load.RssSampler(op)
    rss.start()
    req0, m0, cpu0, pg0 = op.requests(), op.metrics(), op.cpu_seconds(), pg_cpu(pg)
    t0, wall0 = time.monotonic(), time.time()
    time.sleep(window)
    minutes = (time.monotonic() - t0) / 60
    cpu, req, m, pg1 = op.cpu_seconds() - cpu0, op.requests() - req0, op.metrics(), pg_cpu(pg)
    rss.stopped.set()
    by_res: collections.Counter = collections.Counter()
    for (verb, res, sub, code), n in req.items():  # the code where it is not 2xx
        by_res[f"{verb} {res}{'/' + sub if sub else ''}{'' if code[0] == '2' else ' ' + code}"] += n
    passes: collections.Counter = collections.Counter()
    for k, v in m.items():
        if k.startswith("arclight_reconcile_total"):
            labels = dict(load._LABEL.findall(k))
            passes[f"{labels.get('kind')} {labels.get('trigger')}"] += v - m0.get(k, 0)
    return {"cpu_s_per_min": cpu / minutes, "pg_cpu_s_per_min": (pg1 - pg0) / minutes,
            "requests_per_min": sum(req.values()) / minutes,
            "by_request": {k: n / minutes for k, n in sorted(by_res.items())},
            "passes_per_min": {k: n / minutes for k, n in passes.items() if n},
            "rss_max_mb": max(rss.max_mb, op.rss_mb()), "minutes": minutes,
            "rounds": [r for r in op.rounds() if r[0] >= wall0],
            "metrics": {k: v for k, v in m.items()
                        if not k.startswith(("arclight_reconcile", "arclight_workqueue"))}}


def report(fig: dict) -> str:
    a, b, first, rounds = fig["A"], fig["B"], fig["catch_up_round"], fig["B"]["rounds"]

    def row(label: str, x: float, y: float, fmt: str = "8.1f") -> str:
        return f"{label:<36} {x:{fmt}} {y:{fmt}}  " + (f"{y / x:7.2f}" if x else "    n/a")

    def rows(key: str, label: str) -> list[str]:
        return [row(label.format(k), a[key].get(k, 0), b[key].get(k, 0))
                for k in sorted(set(a[key]) | set(b[key]))]
    walls, cpus = [r[1] for r in rounds] or [0], [r[2] for r in rounds] or [0]
    credits = sum(v for k, v in b["metrics"].items() if k.startswith("arclight_credits_used"))
    return "\n".join([
        (f"== metering bench: {fig['pods']} pods in {fig['namespaces']} namespaces, "
         f"{fig['owners']} owners, window {fig['window']:.0f} s, interval {fig['interval']:g} s;"
         f" load {fig['load_before']} -> {fig['load_after']}"),
        f"{'':<36} {'A (off)':>8} {'B (on)':>8}  {'B/A':>7}",
        row("operator CPU s/min", a["cpu_s_per_min"], b["cpu_s_per_min"], "8.2f"),
        row("  of it the meter thread (rounds)", 0, sum(cpus) / b["minutes"], "8.2f"),
        row("operator API requests/min", a["requests_per_min"], b["requests_per_min"]),
        *rows("by_request", "  {}"), *rows("passes_per_min", "passes/min {}"),
        row("operator RSS max MB", a["rss_max_mb"], b["rss_max_mb"], "8.0f"),
        row("Postgres CPU s/min", a["pg_cpu_s_per_min"], b["pg_cpu_s_per_min"], "8.2f"),
        (f"rounds in B's window: {len(rounds)}; wall p50 {statistics.median(walls):.3f} s, "
         f"max {max(walls):.3f} s; meter-thread CPU p50 {statistics.median(cpus):.3f} s, "
         f"max {max(cpus):.3f} s"),
        f"catch-up round (slowest before B's window): wall {first[1]:.3f} s, CPU {first[2]:.3f} s",
        ("ledger at the end: {rows} rows of {pods} pods in {transactions} insert transactions "
         "(largest {largest} rows)").format(**fig["ledger"]),
        "B's metrics at the end: " + ", ".join(f"{k}={v:g}" for k, v in sorted(
            b["metrics"].items()) if not k.startswith("arclight_credits_used"))
        + f", arclight_credits_used_total (sum)={credits:.1f}"])


def clean_up(api, namespaces: list[str]) -> None:
    """Strip the metering finalizers (no operator runs now), delete the namespaces, wait."""
    core = client.CoreV1Api(api)

    def strip(pod) -> None:
        with contextlib.suppress(ApiException):  # gone already (404)
            core.patch_namespaced_pod(pod.metadata.name, pod.metadata.namespace,
                                      {"metadata": {"finalizers": None}}, _request_timeout=60)
    held = [p for ns in namespaces for p in core.list_namespaced_pod(
        ns, _request_timeout=120).items if p.metadata.finalizers]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(strip, held))
    left = load.delete_namespaces(api, namespaces, timeout=300)
    print(f"stripped {len(held)} finalizers; "
          + (f"STILL THERE: {left}" if left else "namespaces deleted"), flush=True)


def phase(op: MeterOperator, args: argparse.Namespace, pg: PostgresServer, dsn: str | None,
          fig: dict) -> dict:
    """Start ``op``, let it settle (B: until just after a round that wrote), measure."""
    op.start()
    time.sleep(args.settle)
    wait_until(lambda: op.metrics().get("arclight_workqueue_depth", 1) == 0, timeout=300,
               what="an empty work queue")
    if dsn:
        wait_until(lambda: ledger(dsn)["rows"], timeout=4 * args.interval + 60,
                   what="rows in usage_events")
        seen = len(op.rounds())  # the round writing them may still run: wait for its end
        wait_until(lambda: len(op.rounds()) > seen, interval=0.2, timeout=args.interval + 60,
                   what="the next round")
        fig["catch_up_round"] = max(op.rounds(), key=lambda r: r[1])
        time.sleep(2)  # the passes it queued run, and the counts file (0.5 s) catches up
    print(f"  measuring {args.window:.0f} s", flush=True)
    return measure(op, args.window, pg)


def main() -> int:
    args = parse_args()
    kubeconfig = kubeconfig_path(args.kubeconfig)
    api, tag = load.api_client(kubeconfig), secrets.token_hex(3)
    names, logs = [f"bm-{tag}-{i}" for i in range(args.namespaces)], Path(tempfile.gettempdir())
    hook = Path(tempfile.mkdtemp(prefix="bench-metering-hook-"))
    (hook / "sitecustomize.py").write_text(ROUND_HOOK.format(
        counts=str(load.HOOK / "sitecustomize.py")))
    fig: dict = {"pods": args.pods, "namespaces": args.namespaces, "window": args.window,
                 "interval": args.interval, "owners": max(1, args.pods // 10),
                 "load_before": uptime()}
    pg, ops = PostgresServer(), []
    print(f"namespaces bm-{tag}-*; operator logs {logs}/bench-metering-{tag}-*.log", flush=True)
    try:
        dsn = pg.start().create_database(f"bm_{tag}")
        with ThreadPoolExecutor(args.namespaces) as pool:
            list(pool.map(lambda ns: load.create_namespace(api, ns), names))
        t0 = time.monotonic()
        make_pods(api, names, args.pods, random.Random())
        print(f"{args.pods} pods created and Running in {time.monotonic() - t0:.0f} s",
              flush=True)
        for name, env in (("A", {}), ("B", {"ARCLIGHT_LEDGER_DSN": dsn,
                                            "ARCLIGHT_METERING_INTERVAL": f"{args.interval:g}"})):
            print(f"phase {name}: the operator {'with' if env else 'without'} a ledger",
                  flush=True)
            ops.append(MeterOperator(kubeconfig, names, logs / f"bench-metering-{tag}-{name}.log",
                                     hook, env))
            fig[name] = phase(ops[-1], args, pg, env.get("ARCLIGHT_LEDGER_DSN"), fig)
            ops[-1].stop()
        fig["ledger"], fig["load_after"] = ledger(dsn), uptime()
        print(report(fig), flush=True)
        if args.json:
            args.json.write_text(json.dumps(fig, indent=2, default=str))
    finally:
        for op in ops:
            op.stop()
        try:
            clean_up(api, names)
        finally:
            pg.close()
            shutil.rmtree(hook, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
