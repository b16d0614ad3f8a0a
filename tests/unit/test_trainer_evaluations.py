"""The trainer reports the series of its evaluations (report key `evaluations`): the helper that
keeps it, the CPU loop that fills it, checkpoints and publishes it again on a resume, and the
operator's status that shows it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from arclight.api.trainer import MAX_EVALUATIONS, EvaluationPoint, EvaluationSeries, ReportKey
from arclight.api.trainingrun import TrainingRunStatus
from arclight.training import reports
from arclight_trainer import report
from arclight_trainer.backends import cpu
from arclight_trainer.config import parse_config
from arclight_trainer.metrics import TrainerMetrics
from arclight_trainer.phases import Phases
from arclight_trainer.rollouts import RolloutResult
from arclight_trainer.stopping import StopSignal

pytestmark = pytest.mark.unit


def point(step: int, reward: float = 0.5, success: float | None = 0.5) -> EvaluationPoint:
    return EvaluationPoint(step=step, validation_reward=reward, success_rate=success)


def series(*steps: int) -> EvaluationSeries:
    result = EvaluationSeries()
    for step in steps:
        result = report.evaluation_series(result.points, point(step))
    return result


# --- the helper -----------------------------------------------------------------------------


def test_points_are_kept_in_step_order():
    assert [p.step for p in series(0, 2, 1, 3).points] == [0, 1, 2, 3]


def test_a_point_at_a_step_already_there_replaces_it():
    kept = report.evaluation_series(series(0, 1, 2).points, point(1, reward=0.9, success=None))
    assert [(p.step, p.validation_reward, p.success_rate) for p in kept.points] == [
        (0, 0.5, 0.5), (1, 0.9, None), (2, 0.5, 0.5)]


def test_the_series_keeps_the_baseline_and_the_newest_points():
    kept = series(*range(MAX_EVALUATIONS + 5))
    assert len(kept.points) == MAX_EVALUATIONS
    assert [p.step for p in kept.points] == [0, *range(6, MAX_EVALUATIONS + 5)]
    grown = report.evaluation_series(kept.points, point(1000))
    assert len(grown.points) == MAX_EVALUATIONS
    assert [p.step for p in grown.points[:2]] + [grown.points[-1].step] == [0, 7, 1000]


def test_the_series_becomes_status_evaluations(tmp_path):
    document = report.evaluation_series(series(0, 5).points, point(10, 0.123456, None))
    data = report.configmap_data({ReportKey.EVALUATIONS: document})
    assert set(data) == {"evaluations"}
    status = reports.status_from_report(data)
    assert status["evaluations"]["points"] == [
        {"step": 0, "validationReward": 0.5, "successRate": 0.5},
        {"step": 5, "validationReward": 0.5, "successRate": 0.5},
        {"step": 10, "validationReward": 0.1235}]  # 4 significant digits, no None in status
    assert TrainingRunStatus.model_validate(status).evaluations.points[-1].step == 10
    # the file reporter (outside a cluster) writes the same document
    reporter = report.FileReporter(tmp_path / "report.json")
    reporter.update(evaluations=document)
    written = json.loads((tmp_path / "report.json").read_text())
    assert written == {"evaluations": json.loads(data["evaluations"])}


# --- the CPU loop (rollouts, updates and checkpoint files replaced by fakes) ----------------


CONFIG = {
    "apiVersion": "arclight.dev/v1alpha1", "kind": "TrainerConfig",
    "run": {"name": "t", "namespace": "test", "attempt": 1},
    "template": "math-solver",
    "dataset": {"uri": "sample://math-solver"},
    "model": {"base": "smollm2-135m-instruct", "adapter": "last-layers"},
    "hyperparameters": {"batchSize": 1, "groupSize": 2, "maxSteps": 3},
    "evaluation": {"everySteps": 1},
    "seed": 7,
}
NO_UPDATE = {"loss": 0.0, "policyLoss": 0.0, "kl": 0.0, "clipFraction": 0.0, "samples": 0,
             "gradNorm": 0.0}


class FakeCheckpoints:
    """Stands in for `save_checkpoint`: keeps the extra state of each step saved."""

    def __init__(self) -> None:
        self.extra: dict[int, dict] = {}

    def __call__(self, root: Path, step: int, model, tokenizer, optimizer, scheduler, keep: int,
                 extra: dict, **_names) -> Path:
        self.extra[step] = extra
        return root / f"step-{step}"


def make_loop(tmp_path: Path, start_step: int = 0, checkpoint_every: int = 2) -> cpu._Loop:
    config = parse_config({**CONFIG, "checkpoint": {"everySteps": checkpoint_every,
                                                    "dir": str(tmp_path / "artifacts")}})
    ctx = SimpleNamespace(config=config, template=SimpleNamespace(name="math-solver"),
                          train_items=[{"q": i} for i in range(4)],
                          val_items=[{"q": i} for i in range(4)], components=[],
                          reporter=report.FileReporter(tmp_path / "report.json"),
                          metrics=TrainerMetrics(), tracker=None)
    loop = cpu._Loop(ctx, None, None, None, None, None, cpu.ItemSampler(4, 7), None, None, 0.0,
                     3, Phases(), StopSignal(), start_step)
    calls = iter(range(1000))

    def rollouts(tasks, *, train):  # validation rewards 0.1, 0.2, ... per evaluation
        value = (next(calls) + 1) / 10 if not train else 0.5
        return [RolloutResult(t.data_id, t.data_id, "succeeded", value, i % 2 == 0)
                for i, t in enumerate(tasks)]

    loop.rollouts = rollouts
    loop.update = lambda samples, step: dict(NO_UPDATE)
    return loop


def reported_steps(loop: cpu._Loop) -> list[tuple[int, float]]:
    written = json.loads(Path(loop.ctx.reporter.path).read_text())
    return [(p["step"], p["validationReward"]) for p in written["evaluations"]["points"]]


def test_every_evaluation_of_a_run_lands_in_the_series(tmp_path, monkeypatch):
    saved = FakeCheckpoints()
    monkeypatch.setattr(cpu, "save_checkpoint", saved)
    loop = make_loop(tmp_path)
    loop.baseline(None, None)
    assert reported_steps(loop) == [(0, 0.1)]
    assert loop.train() == 3
    loop.evaluate("after")
    # before, after steps 1 and 2 (everySteps 1; the last step is followed by `after`)
    assert reported_steps(loop) == [(0, 0.1), (1, 0.2), (2, 0.3), (3, 0.4)]
    assert [p.success_rate for p in loop.evaluations.points] == [0.5] * 4
    # the checkpoint of step 2 holds the evaluation of its own step
    assert saved.extra[2]["evaluations"] == report.document_json(
        EvaluationSeries(points=loop.evaluations.points[:3]))


def test_a_resumed_run_keeps_the_earlier_points(tmp_path, monkeypatch):
    saved = FakeCheckpoints()
    monkeypatch.setattr(cpu, "save_checkpoint", saved)
    first = make_loop(tmp_path / "first")
    first.baseline(None, None)
    first.step = 1
    first.evaluate("step 1")
    first.preempted()  # SIGTERM after step 1: its checkpoint keeps the series
    state = saved.extra[1]
    resumed = make_loop(tmp_path / "resumed", start_step=1)
    resumed.baseline(state["validation_before"], state["evaluations"])
    assert reported_steps(resumed) == [(0, 0.1), (1, 0.2)]  # published again, no new baseline
    resumed.train()
    resumed.evaluate("after")
    assert [step for step, _ in reported_steps(resumed)] == [0, 1, 2, 3]
