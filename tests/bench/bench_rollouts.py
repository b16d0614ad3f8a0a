"""Rollouts/s and samples/s of the CPU loop through Agent Lightning vs a bare loop.

The gateway path: policy server + agl-server + agl-controller, one agent subprocess per
rollout (math-solver). The bare path: the same model, prompts and batch generated
in-process with no gateway and no subprocesses. Run: `python tests/bench/bench_rollouts.py`.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "trainer-image"))

BATCH, GROUP, MAX_TOKENS, ROUNDS = 4, 2, 24, 2


def measure() -> dict:
    from arclight_trainer.datasets import load_dataset
    from arclight_trainer.modeling import load_base
    from arclight_trainer.policy_server import PolicyServer
    from arclight_trainer.rollouts import RolloutClient, Task
    from arclight_trainer.templates import get_template
    from arclight_trainer.topology import AglTopology

    template = get_template("math-solver")
    items = load_dataset("sample://math-solver", template=template).items[:BATCH]
    model, tokenizer = load_base("smollm2-135m-instruct")
    server = PolicyServer(model, tokenizer, model_name="policy")
    server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp, AglTopology(
                Path(tmp), policy_url=server.base_url, train_temperature=1.0,
                concurrency=BATCH * GROUP) as topology, topology.client() as api:
            client = RolloutClient(api, template=template.name,
                                   components=template.default_reward, max_tokens=MAX_TOKENS,
                                   temperature=1.0, timeout_s=120)
            tokens = server.generated_tokens
            start = time.monotonic()
            rollouts = 0
            for r in range(ROUNDS):
                results = client.run([Task(f"b{r}-{i}", it) for i, it in enumerate(items)
                                      for _ in range(GROUP)], train=True)
                rollouts += sum(1 for x in results if x.reward is not None)
            gateway_s = time.monotonic() - start
            gateway_tokens = server.generated_tokens - tokens
        prompts = [server.encode([{"role": "system", "content": template.system_prompt},
                                  {"role": "user", "content": template.prompt(it)}])
                   for it in items for _ in range(GROUP)]
        start = time.monotonic()
        for _ in range(ROUNDS):
            server.generate(prompts, MAX_TOKENS, 1.0)
        bare_s = time.monotonic() - start
    finally:
        server.stop()
    n = BATCH * GROUP * ROUNDS
    return {"gateway_rollouts_per_s": rollouts / gateway_s, "gateway_tokens": gateway_tokens,
            "gateway_samples_per_s": n / gateway_s, "bare_samples_per_s": n / bare_s,
            "overhead_ratio": gateway_s / bare_s}


def report(figures: dict) -> str:
    return (f"gateway: {figures['gateway_rollouts_per_s']:.2f} rollouts/s, "
            f"{figures['gateway_samples_per_s']:.2f} samples/s | bare: "
            f"{figures['bare_samples_per_s']:.2f} samples/s | overhead x"
            f"{figures['overhead_ratio']:.2f} (batch {BATCH} x group {GROUP}, "
            f"{MAX_TOKENS} tokens, {ROUNDS} rounds)")


@pytest.mark.bench
def test_bench_rollouts():
    figures = measure()
    print(report(figures))
    assert figures["gateway_rollouts_per_s"] > 0 and figures["bare_samples_per_s"] > 0


if __name__ == "__main__":
    print(report(measure()))
