"""Rollout throughput through the Agent Lightning gateway against a bare in-process loop.

All three paths run the same math-solver episodes (multi-turn, calculator tool, reward) on
the same model object and the same micro-batching policy server, in one run:

- bare: the episodes run in threads of this process, their model calls go straight to the
  batcher (no HTTP, no gateway, no subprocesses): the ceiling;
- fork: agl-server (gateway + store) with Arclight's forking runners (the trainer's path);
- agl-controller: agl-server with Agent Lightning's own local runner (a new interpreter per
  rollout): the path the trainer used before.

Prints rollouts/s and generated tokens/s of each, and each gateway path's ratio to bare (the
target for the trainer's path is at least 0.95). Run: `python tests/bench/bench_rollouts.py
[--rounds N]`; sizes: ARCLIGHT_BENCH_BATCH, _GROUP, _TOKENS.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "trainer-image"))

BATCH = int(os.environ.get("ARCLIGHT_BENCH_BATCH", "4"))
GROUP = int(os.environ.get("ARCLIGHT_BENCH_GROUP", "4"))
MAX_TOKENS = int(os.environ.get("ARCLIGHT_BENCH_TOKENS", "32"))
PATHS = ("bare", "fork", "agl-controller")


def measure(rounds: int = 2) -> dict[str, dict[str, float]]:
    """{path: {rollouts_per_s, tokens_per_s, seconds}} over `rounds` steps of each path."""
    from arclight_trainer.datasets import load_dataset
    from arclight_trainer.modeling import load_base
    from arclight_trainer.policy_server import PolicyServer
    from arclight_trainer.rollouts import RolloutClient, Task
    from arclight_trainer.templates import get_template
    from arclight_trainer.topology import AglTopology

    template = get_template("math-solver")
    items = load_dataset("sample://math-solver", template=template).items[:BATCH]
    tasks = [Task(f"i{i}", item) for i, item in enumerate(items) for _ in range(GROUP)]
    model, tokenizer = load_base("smollm2-135m-instruct")
    server = PolicyServer(model, tokenizer, model_name="policy", max_batch=len(tasks))
    server.start()

    def bare_step() -> int:
        live = [len(tasks)]
        lock = threading.Lock()

        def one(task: Task) -> float:
            episode = template.run_episode(task.item, server.chat, max_tokens=MAX_TOKENS,
                                           temperature=1.0)
            with lock:  # told to the batcher as the trainer's client tells it
                live[0] -= 1
                server.expect(live[0])
            return template.score(task.item, episode, template.default_reward).total

        server.expect(len(tasks))
        with ThreadPoolExecutor(len(tasks)) as pool:
            return len(list(pool.map(one, tasks)))

    def gateway_steps(runner: str) -> tuple[int, float, int, int]:
        with tempfile.TemporaryDirectory() as tmp, AglTopology(
                Path(tmp), policy_url=server.base_url, train_temperature=1.0,
                concurrency=len(tasks), workers=2, runner=runner) as topology, \
                topology.client() as api:
            client = RolloutClient(api, template=template.name,
                                   components=template.default_reward, max_tokens=MAX_TOKENS,
                                   temperature=1.0, timeout_s=300, wakeups=topology,
                                   live=server.expect)
            client.run(tasks[:2], train=True)  # warm: processes started, first fork done
            start, tokens, done = time.monotonic(), server.generated_tokens, 0
            first = len(server.batches)
            for _ in range(rounds):
                done += sum(1 for r in client.run(tasks, train=True) if r.reward is not None)
            return done, start, tokens, first

    figures: dict[str, dict[str, float]] = {}
    try:
        bare_step()  # warm the model and the batcher
        for path in PATHS:
            if path == "bare":
                start, tokens, first = time.monotonic(), server.generated_tokens, len(
                    server.batches)
                done = sum(bare_step() for _ in range(rounds))
            else:
                done, start, tokens, first = gateway_steps(path)
            seconds = time.monotonic() - start
            batches = server.batches[first:]
            figures[path] = {"rollouts_per_s": done / seconds, "seconds": seconds,
                             "tokens_per_s": (server.generated_tokens - tokens) / seconds,
                             "batches": len(batches),
                             "batch_size": sum(n for n, _ in batches) / max(1, len(batches)),
                             "generating": sum(t for _, t in batches) / seconds}
    finally:
        server.stop()
    return figures


def report(figures: dict[str, dict[str, float]]) -> str:
    bare = figures["bare"]
    header = (f"rollouts of math-solver, {BATCH} items x {GROUP} samples per step, "
              f"{MAX_TOKENS} tokens per turn:")
    lines = [header]
    for path, f in figures.items():
        ratio = "" if path == "bare" else (
            f"  ratio to bare: {f['rollouts_per_s'] / bare['rollouts_per_s']:.2f} (rollouts), "
            f"{f['tokens_per_s'] / bare['tokens_per_s']:.2f} (tokens)")
        lines.append(f"  {path:15s} {f['rollouts_per_s']:6.2f} rollouts/s "
                     f"{f['tokens_per_s']:7.1f} tokens/s ({f['seconds']:.1f} s; "
                     f"{f['batches']} generations of {f['batch_size']:.1f} requests, "
                     f"generating {100 * f['generating']:.0f} % of the time){ratio}")
    return "\n".join(lines)


@pytest.mark.bench
def test_bench_rollouts():
    figures = measure()
    print(report(figures))
    assert all(f["rollouts_per_s"] > 0 for f in figures.values())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    print(report(measure(parser.parse_args().rounds)))
