"""Diagnosis of trainer Jobs from the pod and Job states the kubelet and job controller write."""
import json

import pytest
from arclight.api.trainer import ExitCode, TerminationReport
from arclight.training.diagnosis import auto_fix, diagnose

pytestmark = pytest.mark.unit
HP = {"learningRate": "1e-4", "batchSize": 8, "gradientAccumulation": 1}
FAILED_JOB = {"status": {"conditions": [
    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
     "message": "Job has reached the specified backoff limit"}]}}


def terminated_pod(exit_code, reason="Error", message=""):
    return {"status": {"phase": "Failed", "containerStatuses": [{"name": "trainer", "state": {
        "terminated": {"exitCode": exit_code, "reason": reason, "message": message}}}]}}


def waiting_pod(reason):
    return {"status": {"phase": "Pending", "containerStatuses": [{"name": "trainer", "state": {
        "waiting": {"reason": reason, "message": "back-off pulling image"}}}]}}


@pytest.mark.parametrize(("pod", "reason", "retryable"), [
    (terminated_pod(ExitCode.KILLED, "OOMKilled"), "OutOfMemory", True),
    (terminated_pod(ExitCode.KILLED), "OutOfMemory", True),
    (terminated_pod(ExitCode.OUT_OF_MEMORY), "OutOfMemory", True),
    (terminated_pod(ExitCode.DATASET_INVALID), "DatasetInvalid", False),
    (terminated_pod(ExitCode.DIVERGED), "Diverged", True),
    (terminated_pod(ExitCode.REWARD_ERROR), "RewardError", False),
    (terminated_pod(ExitCode.CONFIG_INVALID), "ConfigInvalid", False),
    (terminated_pod(ExitCode.ROLLOUTS_FAILED), "RolloutsFailed", True),
    (terminated_pod(ExitCode.ERROR), "Error", True),
    (waiting_pod("ImagePullBackOff"), "ImagePullFailed", False),
    (waiting_pod("ErrImagePull"), "ImagePullFailed", False),
    (waiting_pod("CrashLoopBackOff"), "CrashLoop", False),
    ({"status": {"phase": "Failed", "reason": "Evicted",
                 "message": "The node was low on resource: memory."}}, "Evicted", True),
])
def test_reasons(pod, reason, retryable):
    result = diagnose(FAILED_JOB, [pod], HP)
    assert result.reason == reason
    assert result.retryable is retryable
    assert result.message and result.suggestions


def test_oom_fix_halves_batch_and_doubles_accumulation():
    result = diagnose(FAILED_JOB, [terminated_pod(ExitCode.KILLED, "OOMKilled")], HP)
    assert result.auto_fix == {"batchSize": 4, "gradientAccumulation": 2}
    assert "batchSize" in " ".join(result.suggestions)
    assert auto_fix("OutOfMemory", {"batchSize": 1, "gradientAccumulation": 4}) is None


def test_diverged_fix_lowers_learning_rate_tenfold():
    assert auto_fix("Diverged", HP) == {"learningRate": "1e-5"}
    assert auto_fix("Diverged", {"learningRate": "3e-4"}) == {"learningRate": "3e-5"}
    assert auto_fix("Diverged", {"learningRate": "0.002"}) == {"learningRate": "2e-4"}


def test_termination_message_is_used():
    report = {"reason": "DatasetInvalid", "message": "Row 3: column 'question' is empty.",
              "suggestions": ["Drop empty rows: df.dropna(subset=['question'])"]}
    assert TerminationReport.model_validate(report).model_dump() == report
    result = diagnose(FAILED_JOB, [terminated_pod(ExitCode.DATASET_INVALID,
                                                  message=json.dumps(report))], HP)
    assert result.reason == "DatasetInvalid"
    assert "Row 3" in result.message
    assert result.suggestions == report["suggestions"]
    assert result.to_status(False) == {"reason": "DatasetInvalid", "message": result.message,
                                       "suggestions": report["suggestions"],
                                       "autoFixApplied": False}


def test_deadline_exceeded_from_job_condition():
    job = {"status": {"conditions": [{"type": "Failed", "status": "True",
                                      "reason": "DeadlineExceeded",
                                      "message": "Job was active longer than specified"}]}}
    result = diagnose(job, [], HP)
    assert result.reason == "DeadlineExceeded" and not result.retryable
    assert "activeDeadlineSeconds" in result.message


def test_healthy_job_has_no_diagnosis():
    running = {"status": {"phase": "Running", "containerStatuses": [
        {"name": "trainer", "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}]}}
    assert diagnose({"status": {"active": 1}}, [running], HP) is None
    assert diagnose({"status": {}}, [], HP) is None


def test_failed_job_without_pods_is_an_error():
    result = diagnose(FAILED_JOB, [], HP)
    assert result.reason == "Error" and "BackoffLimitExceeded" in result.message


def test_unclassified_exit_uses_a_known_report_reason_and_survives_log_tails():
    report = TerminationReport(reason="Diverged", message="loss is nan", suggestions=["lower lr"])
    result = diagnose(FAILED_JOB, [terminated_pod(ExitCode.ERROR, message=report.to_json())], HP)
    assert (result.reason, result.suggestions) == ("Diverged", ["lower lr"])
    assert "loss is nan" in result.message
    # FallbackToLogsOnError: the message is the log tail, not JSON.
    result = diagnose(FAILED_JOB, [terminated_pod(ExitCode.ERROR, message="Traceback ...")], HP)
    assert result.reason == "Error" and "Exit code 1" in result.message
