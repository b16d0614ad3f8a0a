"""The operator/trainer contract (arclight.api.trainer) as both sides use it.

Each test drives the operator's code and the trainer's code against each other: the
TrainerConfig the operator writes is the one the trainer reads, every exit code the
trainer can end with has a diagnosis, the termination report of the trainer's failure
path is what diagnosis parses, and the report documents the trainer writes become the
status fields the operator renders.
"""
from __future__ import annotations

import ast
import json
import typing
from pathlib import Path

import pytest
from arclight.api import API_VERSION
from arclight.api import trainer as contract
from arclight.api.trainer import (
    REPORT_DOCUMENTS,
    ExitCode,
    FailureReason,
    ProgressReport,
    ReportKey,
    TerminationReport,
    TrainerConfig,
)
from arclight.api.trainingrun import TEMPLATES, Progress, TrainingRunStatus
from arclight.core.names import Owner
from arclight.framework.settings import Settings
from arclight.training import builders, catalog, diagnosis, reports
from arclight.training.resolve import resolve, with_fixes
from arclight_trainer import __main__ as trainer_main
from arclight_trainer import report
from arclight_trainer.config import load_config, parse_config
from arclight_trainer.failures import TrainerFailure, write_termination

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TRAINER = ROOT / "trainer-image/arclight_trainer"
HP = {"learningRate": "1e-4", "batchSize": 8, "gradientAccumulation": 1}
FAILED_JOB = {"status": {"conditions": [{"type": "Failed", "status": "True",
                                         "reason": "BackoffLimitExceeded", "message": ""}]}}
CUSTOM_AGENT = {
    "agent": {"image": "ghcr.io/acme/agent:1", "entrypoint": "acme.agent:run",
              "reward": "acme.agent:score", "env": [{"name": "MODE", "value": "fast"}]},
    "dataset": {"uri": "configmap://tasks/train.csv", "secretRef": {"name": "creds"}},
}
SPECS = {
    **{name: {"template": name} for name in catalog.TEMPLATES},
    "custom-agent": CUSTOM_AGENT,
    "gpu-ppo": {"template": "math-solver", "algorithm": "ppo",
                "resources": {"gpu": {"type": "a100", "count": 2}, "nodes": 2}},
    "explicit": {"template": "sql-agent", "dataset": {"uri": "s3://b/train.parquet"},
                 "hyperparameters": {"epochs": 2, "earlyStopping": {"patience": 2}},
                 "reward": {"components": [{"name": "taskSuccess", "params": {"k": 1}}]},
                 "tracking": {"mlflow": {"registeredModel": "sql"}}},
}


def _run(spec: dict) -> dict:
    return {"apiVersion": "arclight.dev/v1alpha1", "kind": "TrainingRun",
            "metadata": {"name": "demo", "namespace": "team-a", "uid": "uid-1"}, "spec": spec}


def _terminated(code: int, message: str = "", reason: str = "Error") -> dict:
    return {"status": {"phase": "Failed", "containerStatuses": [{"name": "trainer", "state": {
        "terminated": {"exitCode": int(code), "reason": reason, "message": message}}}]}}


# --- TrainerConfig --------------------------------------------------------------------------


def test_catalog_covers_every_template_and_the_api_version_matches():
    assert set(catalog.TEMPLATES) == set(TEMPLATES)
    assert TrainerConfig.model_fields["api_version"].default == API_VERSION


@pytest.mark.parametrize("name", sorted(SPECS))
def test_resolved_config_round_trips_through_the_trainer(name, tmp_path):
    settings = Settings(mlflow_uri="http://mlflow:5000") if name == "explicit" else Settings()
    _, config = resolve(SPECS[name], name="demo", namespace="team-a", uid="uid-1", attempt=2,
                        settings=settings)
    config = with_fixes(config, {"batchSize": 1}, "pvc://artifacts/team-a/demo/step-4")
    config_map = builders.build_config_map(Owner.of(_run(SPECS[name])), config)
    path = tmp_path / contract.CONFIG_KEY
    path.write_text(config_map["data"][contract.CONFIG_KEY])  # what the pod mounts
    parsed = load_config(path)
    assert parsed == config
    assert parse_config(json.loads(path.read_text())) == config
    assert parsed.model_dump(by_alias=True, mode="json") == json.loads(path.read_text())
    assert (parsed.run.attempt, parsed.hyperparameters.batch_size, parsed.resume_from) == (
        2, 1, "pvc://artifacts/team-a/demo/step-4")


def test_the_trainer_reads_the_operators_model():
    """One definition: the trainer's config module holds no models of its own."""
    import arclight_trainer.config as trainer_config
    from pydantic import BaseModel

    assert trainer_config.TrainerConfig is TrainerConfig
    own = [value for value in vars(trainer_config).values() if isinstance(value, type)
           and issubclass(value, BaseModel) and value.__module__ == trainer_config.__name__]
    assert own == []


# --- exit codes and the termination report --------------------------------------------------


def _expected_reason(code: ExitCode) -> str:
    if code is ExitCode.KILLED:
        return FailureReason.OUT_OF_MEMORY
    return code.reason or "Error"


@pytest.mark.parametrize("code", [c for c in ExitCode if c is not ExitCode.SUCCEEDED])
def test_every_exit_code_has_a_diagnosis(code):
    result = diagnosis.diagnose(FAILED_JOB, [_terminated(code)], HP)
    assert result.reason == _expected_reason(code)
    assert result.reason in diagnosis.MESSAGES and result.reason in diagnosis.SUGGESTIONS
    assert result.message and result.suggestions


def test_exit_codes_and_diagnosis_agree_both_ways():
    # Every code diagnosis classifies is one of the contract's, with the contract's reason.
    assert all(isinstance(code, ExitCode) for code in diagnosis.EXIT_REASONS)
    assert {code: diagnosis.EXIT_REASONS[code] for code in diagnosis.EXIT_REASONS} == {
        code: _expected_reason(code) for code in ExitCode
        if code not in (ExitCode.SUCCEEDED, ExitCode.ERROR)}
    # Every reason the trainer can report exits with its own code and is diagnosed as itself.
    for reason in FailureReason:
        assert reason.exit_code.reason is reason
        assert diagnosis.EXIT_REASONS[reason.exit_code] == reason
    assert diagnosis.diagnose(FAILED_JOB, [_terminated(ExitCode.SUCCEEDED)], HP).reason == (
        "Error")  # a succeeded container is no failure: the Job condition speaks


def _int_literals(path: Path) -> list[tuple[int, int]]:
    """(line, value) of int literals equal to an exit code >= 2, outside arithmetic."""
    tree = ast.parse(path.read_text())
    arithmetic = {id(node.left) for node in ast.walk(tree) if isinstance(node, ast.BinOp)} | {
        id(node.right) for node in ast.walk(tree) if isinstance(node, ast.BinOp)}
    codes = {int(code) for code in ExitCode if code >= 2}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and type(node.value) is int
            and node.value in codes and id(node) not in arithmetic]


@pytest.mark.parametrize("path", [
    ROOT / "operator/arclight/training/diagnosis.py",
    TRAINER / "__main__.py",
    TRAINER / "failures.py",
    TRAINER / "config.py",
    TRAINER / "backends/__init__.py",
], ids=lambda p: p.name if p.name != "__init__.py" else "backends")
def test_no_exit_code_literal_outside_the_contract(path):
    assert _int_literals(path) == []
    text = path.read_text()
    assert "137" not in text and "EXIT_CODES" not in text
    assert "termination-log" not in text.replace("ARCLIGHT_TERMINATION_LOG", "")


def _failure_log(failure: TrainerFailure, tmp_path, monkeypatch) -> str:
    log = tmp_path / "termination-log"
    monkeypatch.setenv("ARCLIGHT_TERMINATION_LOG", str(log))
    write_termination(failure)
    return log.read_text()


@pytest.mark.parametrize("reason", list(FailureReason))
def test_the_trainers_termination_report_is_diagnosed(reason, tmp_path, monkeypatch):
    failure = TrainerFailure(reason, f"{reason} at step 3", [f"fix {reason}"])
    text = _failure_log(failure, tmp_path, monkeypatch)
    assert TerminationReport.model_validate_json(text) == failure.report()
    result = diagnosis.diagnose(FAILED_JOB, [_terminated(failure.exit_code, text)], HP)
    assert result.reason == reason
    assert f"{reason} at step 3" in result.message
    assert result.suggestions == [f"fix {reason}"]


def test_a_long_failure_message_still_fits_the_termination_message(tmp_path, monkeypatch):
    errors = "; ".join(f"rollout {i}: timed out after 120s (ÿ)" for i in range(400))
    failure = TrainerFailure(FailureReason.ROLLOUTS_FAILED, f"every rollout failed: {errors}",
                             ["Raise rollouts.timeoutSeconds."])
    text = _failure_log(failure, tmp_path, monkeypatch)
    assert len(text.encode()) <= contract.TERMINATION_MESSAGE_BYTES
    result = diagnosis.diagnose(FAILED_JOB, [_terminated(failure.exit_code, text)], HP)
    assert result.reason == "RolloutsFailed" and "every rollout failed" in result.message
    assert result.suggestions == ["Raise rollouts.timeoutSeconds."]


def test_the_trainer_cli_rejects_a_bad_config_as_diagnosis_expects(tmp_path, monkeypatch):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"run": {"name": "x"}, "template": "math-solver",
                                  "dataset": {"uri": "sample://math-solver"},
                                  "hyperparameters": {"learningRate": "fast"}}))
    log = tmp_path / "termination-log"
    monkeypatch.setenv("ARCLIGHT_TERMINATION_LOG", str(log))
    code = trainer_main.main(["run", "--config", str(config), "--metrics-port", "0",
                              "--report-file", str(tmp_path / "report.json")])
    assert code == ExitCode.CONFIG_INVALID
    result = diagnosis.diagnose(FAILED_JOB, [_terminated(code, log.read_text())], HP)
    assert result.reason == "ConfigInvalid" and "learningRate" in result.message
    assert not result.retryable and result.auto_fix is None


# --- the report channel ---------------------------------------------------------------------


def test_report_keys_and_documents():
    assert set(REPORT_DOCUMENTS) == set(ReportKey)
    assert [str(key) for key in ReportKey] == [
        "progress", "metrics", "bestCheckpoint", "evaluations", "result"]
    status_fields = TrainingRunStatus.model_fields
    for key in reports.STATUS_KEYS:  # rendered into the status field of the same alias
        field = next(f for f in status_fields.values() if f.alias == key)
        shown = typing.get_args(field.annotation)[0]
        assert shown is (Progress if key is ReportKey.PROGRESS else REPORT_DOCUMENTS[key])
    # status.progress is the trainer's progress document plus the operator's percent
    document = {name: f.annotation for name, f in ProgressReport.model_fields.items()}
    status = {name: f.annotation for name, f in Progress.model_fields.items()}
    assert status == {**document, "percent": status["percent"]}


def test_the_trainers_report_documents_become_status(tmp_path):
    progress = report.progress_report(3, 8, 1, seconds_per_step=4.0)
    metrics = report.step_metrics([0.0, 0.5, 1.0, 0.5], 0.5, validation_reward=0.25,
                                  policy_loss=-0.01, loss=0.02, steps_per_second=0.25,
                                  samples_per_second=4.0)
    best = report.best_checkpoint(2, "pvc://artifacts/team-a/demo/step-2", "reward", 0.5)
    result = report.training_result(0.1, 0.3, "pvc://artifacts/team-a/demo/final")
    documents = {ReportKey.PROGRESS: progress, ReportKey.METRICS: metrics,
                 ReportKey.BEST_CHECKPOINT: best, ReportKey.RESULT: result}
    data = report.configmap_data(documents)  # what ConfigMapReporter patches into `data`
    assert set(data) == {"progress", "metrics", "bestCheckpoint", "result"}

    status = reports.status_from_report(data)
    assert set(status) == {"progress", "metrics", "bestCheckpoint"}
    assert status["progress"] == {"step": 3, "totalSteps": 8, "percent": 37, "epoch": 1,
                                  "etaSeconds": 20,
                                  "updatedAt": progress.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert status["metrics"] == {
        # figures keep 4 significant digits (pstdev is 0.35355...)
        "reward": {"mean": 0.5, "min": 0.0, "max": 1.0, "std": 0.3536},
        "validationReward": 0.25, "successRate": 0.5, "policyLoss": -0.01, "loss": 0.02,
        "stepsPerSecond": 0.25, "samplesPerSecond": 4.0, "rolloutsFailed": 0,
        "groupsDropped": 0}
    assert status["bestCheckpoint"] == {"step": 2, "uri": "pvc://artifacts/team-a/demo/step-2",
                                        "metric": "reward", "value": 0.5}
    TrainingRunStatus.model_validate(status)

    # The file reporter (outside a cluster) writes the same documents.
    reporter = report.FileReporter(tmp_path / "report.json")
    reporter.update(**{str(key): doc for key, doc in documents.items()})
    written = json.loads((tmp_path / "report.json").read_text())
    assert written == {key: json.loads(text) for key, text in data.items()}
    assert reports.status_from_report({k: json.dumps(v) for k, v in written.items()}) == status


def test_the_reporter_only_takes_the_contracts_documents(tmp_path):
    reporter = report.FileReporter(tmp_path / "report.json")
    with pytest.raises(TypeError, match="ProgressReport"):
        reporter.update(progress={"step": 1})
    with pytest.raises(TypeError, match="BestCheckpoint"):
        reporter.update(bestCheckpoint=report.training_result(0.1, 0.2, "file:///m"))
    with pytest.raises(KeyError, match="loss"):
        reporter.update(loss=report.progress_report(1, 2, 0, 1.0))
