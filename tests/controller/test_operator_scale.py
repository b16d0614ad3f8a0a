"""Thirty runs at once, as a user sees them: one of each child per run, a phase, no finalizer
on any run, and close to the minimum of API writes (8 per run: 7 children and one status
patch). The CI-sized version of tests/bench/bench_operator.py (helpers: operator_load.py)."""
from __future__ import annotations

import collections
import secrets
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import operator_load as load

pytestmark = pytest.mark.controller

RUNS = 30
RECONCILE_TIMEOUT_S = 240  # generous: 2 shared cores
SETTLE_S = 5  # writes that trail the last status (e.g. bookkeeping after the handler)


@pytest.fixture
def scale_operator(cluster, crds, tmp_path):
    """A namespace and the operator from this checkout on it; afterwards the operator stops,
    finalizers it left are removed, and the namespace is deleted."""
    namespace = f"t-scale-{secrets.token_hex(3)}"
    load.create_namespace(cluster.api, namespace, label="arclight.dev/test")
    op = load.Operator(load.REPO, cluster.kubeconfig, namespace, tmp_path / "kopf.log")
    try:
        op.start()
        yield namespace, op
    finally:
        op.stop()
        load.delete_namespaces(cluster.api, [namespace], timeout=180)


def child_problems(children: dict, names: list[str]) -> list[str]:
    """Runs that lack a child, have two of one, or own something unexpected."""
    problems = []
    for name in names:
        got = children.get(name, collections.Counter())
        for child in load.CHILDREN:
            if got[child] != 1:
                problems.append(f"{name}: {got[child]} x {child[0]} {name}{child[1]}")
        extra = {k: n for k, n in got.items() if k not in load.CHILDREN}
        if extra:
            problems.append(f"{name}: unexpected children {extra}")
    return problems


def test_thirty_runs_reconcile_with_minimal_writes(cluster, scale_operator):
    namespace, op = scale_operator
    names = [f"scale-{i:02d}" for i in range(RUNS)]
    tracker = load.Tracker(cluster.api, namespace).start()
    before, own_before = load.scrape_requests(cluster.api), op.requests()
    _, posts = load.create_runs(cluster.api, namespace, names)
    left = tracker.wait(names, timeout=RECONCILE_TIMEOUT_S)
    time.sleep(SETTLE_S)
    after, own_after = load.scrape_requests(cluster.api), op.requests()
    tracker.stop()
    assert not left, (f"{len(left)} of {RUNS} runs not fully reconciled after "
                      f"{RECONCILE_TIMEOUT_S} s: {left[:5]}\n{op.log_tail()}")

    problems = child_problems(load.children_by_run(cluster.api, namespace), names)
    runs = {r["metadata"]["name"]: r for r in load.list_runs(cluster.api, namespace)}
    problems += [f"{n}: no status.phase" for n in names
                 if not (runs[n].get("status") or {}).get("phase")]
    held = {n: runs[n]["metadata"]["finalizers"] for n in names
            if runs[n]["metadata"].get("finalizers")}
    if held:
        problems.append(f"{len(held)} runs hold finalizers, e.g. {next(iter(held.values()))}")
    # The server's counters are cluster-wide (other tests on a shared cluster add to them); the
    # operator's own count is exact, unless it writes through a client the hook cannot see.
    diff, own = load.write_diff(before, after), load.write_diff(own_before, own_after)
    exact = load.hook_sees_children(own, RUNS)
    per_run = (load.operator_writes(own, 0) if exact else load.operator_writes(diff, posts)) / RUNS
    if per_run > 1.2 * load.MIN_WRITES:
        problems.append(f"{per_run:.2f} API writes per run > {1.2 * load.MIN_WRITES:.1f} "
                        f"(1.2 x the minimum {load.MIN_WRITES}; counted "
                        f"{'in the operator process' if exact else 'by the API server'})")
    assert not problems, "\n".join(
        problems[:40] + ["API writes counted in the operator process:",
                         load.format_breakdown(own, RUNS, 0),
                         "API writes (cluster-wide, from the API server's /metrics):",
                         load.format_breakdown(diff, RUNS, posts)])
