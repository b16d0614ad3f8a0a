"""GRPO training throughput and memory of the CPU trainer on the demo's run, per step.

Runs the real trainer CLI (policy server, agl-server, forking runners, template agents) on
the configuration `make demo` resolves to (math-solver, SmolLM2-135M with LoRA, 4 prompts x
4 samples, 48 tokens, the demo's reward), and prints for every step: rollouts/s and update
samples/s per core, the trainer's peak RSS, and the step's rollout time against a bare
generation of the same batch measured in the same run (one sampled turn of 16 prompts of 48
tokens: the least a step's rollouts can cost). Run: `python tests/bench/bench_training.py
[--steps N]`.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

TRAINER = Path(__file__).resolve().parents[2] / "trainer-image"
sys.path.insert(0, str(TRAINER))
sys.path.insert(0, str(TRAINER / "tests"))
from trainer_configs import base_config

STEP_RE = re.compile(r"^step (\d+)/\d+ .*samples=(\d+) .*rollouts=([\d.]+)s update=([\d.]+)s "
                     r"peak_rss=(\d+)MB", re.MULTILINE)


def demo_config(directory: Path, steps: int) -> dict:
    """The TrainerConfig of `hack/demo/trainingrun.yaml` as the operator resolves it."""
    return base_config(
        directory, run={"name": "bench", "namespace": "bench", "attempt": 1},
        model={"base": "smollm2-135m-instruct", "adapter": "lora"},
        hyperparameters={"learningRate": "4e-4", "batchSize": 4, "groupSize": 4,
                         "maxSteps": steps, "maxNewTokens": 48, "klCoef": "0.02",
                         "temperature": "1.0", "scheduler": "constant"},
        reward={"components": [
            {"name": "taskSuccess", "weight": "0.8", "params": {}},
            {"name": "format", "weight": "0.2", "params": {}},
            {"name": "cost", "weight": "0.3", "params": {"budgetTokens": "16"}}]},
        rollouts={"workers": 2, "concurrency": 12, "timeoutSeconds": 120},
        seed=42)


def bare_generation_s() -> float:
    """Seconds for one sampled 48-token turn of 16 math-solver prompts, in process."""
    from arclight_trainer.datasets import load_dataset
    from arclight_trainer.modeling import attach_adapter, load_base
    from arclight_trainer.policy_server import PolicyServer
    from arclight_trainer.templates import get_template

    template = get_template("math-solver")
    items = load_dataset("sample://math-solver", template=template).items[:4]
    model, tokenizer = load_base("smollm2-135m-instruct")
    server = PolicyServer(attach_adapter(model, "lora"), tokenizer, model_name="p")
    prompts = [server.encode([{"role": "system", "content": template.system_prompt},
                              {"role": "user", "content": template.prompt(item)}])
               for item in items for _ in range(4)]
    server.generate(prompts, 48, 1.0)  # warm: the first call of a shape pays for allocation
    start = time.monotonic()
    server.generate(prompts, 48, 1.0)
    return time.monotonic() - start


def measure(steps: int) -> dict:
    bare = bare_generation_s()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "config.json").write_text(json.dumps(demo_config(directory, steps)))
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "arclight_trainer", "run", "--config",
             str(directory / "config.json"), "--report-file", str(directory / "report.json"),
             "--workdir", str(directory / "work"), "--metrics-port", "0"],
            cwd=TRAINER, capture_output=True, text=True, timeout=1800, check=False,
            env={**os.environ, "ARCLIGHT_TERMINATION_LOG": str(directory / "termination")})
        wall = time.monotonic() - start
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-3000:] + done.stderr[-3000:])
    cores = os.cpu_count() or 1
    rows = [{"step": int(s), "samples": int(n), "rollouts_s": float(r), "update_s": float(u),
             "peak_rss_mb": int(m)} for s, n, r, u, m in STEP_RE.findall(done.stdout)]
    phases = re.search(r"^trainer phases: (.*)$", done.stdout, re.MULTILINE)
    return {"bare_s": bare, "rows": rows, "cores": cores, "wall_s": wall,
            "phases": phases.group(1) if phases else ""}


def report(figures: dict) -> str:
    cores, bare = figures["cores"], figures["bare_s"]
    header = (f"GRPO on CPU, demo config (16 rollouts/step, 48 tokens), {cores} cores; "
              f"bare sampled turn of the same batch: {bare:.1f} s")
    lines = [header]
    for row in figures["rows"]:
        lines.append(
            f"  step {row['step']}: {16 / row['rollouts_s'] / cores:.3f} rollouts/s/core "
            f"({row['rollouts_s']:.1f} s, x{row['rollouts_s'] / bare:.2f} of the bare turn), "
            f"update {row['samples'] / row['update_s'] / cores:.3f} samples/s/core "
            f"({row['samples']} samples, {row['update_s']:.1f} s), peak RSS {row['peak_rss_mb']} MB")
    lines.append(f"  whole run {figures['wall_s']:.0f} s; {figures['phases']}")
    return "\n".join(lines)


@pytest.mark.bench
def test_bench_training():
    figures = measure(2)
    print(report(figures))
    assert figures["rows"] and all(r["rollouts_s"] > 0 for r in figures["rows"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3)
    print(report(measure(parser.parse_args().steps)))
