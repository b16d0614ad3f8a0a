"""Failure diagnosis: Job + Pods (+ the trainer's termination message) -> what went wrong.

Pure functions over plain Kubernetes object dicts (as returned by the API). The trainer's
side of it is the contract in ``arclight.api.trainer``: the container's exit code
(``ExitCode``; a kernel OOM kill shows as ``OOMKilled``/``ExitCode.KILLED``) and the
``TerminationReport`` JSON in its termination message.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from arclight.api.trainer import ExitCode, FailureReason, TerminationReport

#: The diagnosis reason of each classified exit code (ERROR and other codes: the report's
#: reason when the operator knows it, else ``Error``).
EXIT_REASONS: dict[ExitCode, str] = {
    ExitCode.DATASET_INVALID: FailureReason.DATASET_INVALID,
    ExitCode.DIVERGED: FailureReason.DIVERGED,
    ExitCode.REWARD_ERROR: FailureReason.REWARD_ERROR,
    ExitCode.OUT_OF_MEMORY: FailureReason.OUT_OF_MEMORY,
    ExitCode.CONFIG_INVALID: FailureReason.CONFIG_INVALID,
    ExitCode.ROLLOUTS_FAILED: FailureReason.ROLLOUTS_FAILED,
    ExitCode.KILLED: FailureReason.OUT_OF_MEMORY,
    ExitCode.PREEMPTED: FailureReason.PREEMPTED,
}
#: Kubelet reason of a container the kernel's OOM killer ended.
OOM_KILLED = "OOMKilled"
IMAGE_PULL_REASONS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
#: Reasons worth another attempt (with or without an automatic fix).
RETRYABLE = {"OutOfMemory", "Diverged", "Evicted", "Error", "RolloutsFailed"}

MESSAGES = {
    "OutOfMemory": "The trainer ran out of memory.",
    "ImagePullFailed": "The trainer image could not be pulled.",
    "CrashLoop": "The trainer container keeps crashing.",
    "Error": "The trainer exited with an error.",
    "Evicted": "The trainer pod was evicted by the node.",
    "DeadlineExceeded": "The run exceeded spec.activeDeadlineSeconds.",
    "DatasetInvalid": "The dataset could not be loaded or validated.",
    "Diverged": "Training diverged (loss or reward became NaN or exploded).",
    "RewardError": "The reward function failed.",
    "Preempted": "The trainer was stopped (its Job suspended or deleted) after a checkpoint.",
    "ConfigInvalid": "The trainer rejected the resolved configuration.",
    "RolloutsFailed": "Every rollout of a training batch failed.",
}
SUGGESTIONS = {
    "OutOfMemory": ["Halve spec.hyperparameters.batchSize and double gradientAccumulation.",
                    "Or raise spec.resources.memory (or request a larger GPU)."],
    "ImagePullFailed": ["Check the image name and tag, and that the node can reach the registry.",
                        ("For a private registry, add an imagePullSecret to the namespace's "
                         "default service account.")],
    "CrashLoop": ["Read the trainer logs: kubectl logs job/<run>-trainer-<attempt>."],
    "Error": ["Read the trainer logs: kubectl logs job/<run>-trainer-<attempt>."],
    "Evicted": ["Request memory and ephemeral storage that fit the node, or use another node pool."],
    "DeadlineExceeded": ["Raise spec.activeDeadlineSeconds or lower spec.hyperparameters.maxSteps."],
    "DatasetInvalid": ["Fix the dataset rows named in the message, or set spec.dataset.format."],
    "Diverged": ["Lower spec.hyperparameters.learningRate (for example by 10x)."],
    "RewardError": ["Check spec.reward components and their params."],
    "Preempted": ["The run continues from that checkpoint when it resumes."],
    "ConfigInvalid": ["Change the spec field named in the message (for example spec.algorithm: grpo)."],
    "RolloutsFailed": ["Read the trainer logs: kubectl logs job/<run>-trainer-<attempt>.",
                       "Raise spec.rollouts.timeoutSeconds if rollouts time out."],
}


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """What went wrong, what to do, and the hyperparameter change that may fix it."""

    reason: str
    message: str
    suggestions: list[str]
    auto_fix: dict[str, Any] | None
    retryable: bool

    def to_status(self, auto_fix_applied: bool) -> dict[str, Any]:
        """Render as ``status.diagnosis``."""
        return {"reason": self.reason, "message": self.message,
                "suggestions": list(self.suggestions), "autoFixApplied": auto_fix_applied}


def job_condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    """The Job condition of ``type_`` when its status is True."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return cond
    return None


def auto_fix(reason: str, hyperparameters: Mapping[str, Any]) -> dict[str, Any] | None:
    """The hyperparameter overrides that address ``reason``, or None when there is none."""
    if reason == "OutOfMemory":
        batch = int(hyperparameters.get("batchSize") or 1)
        if batch <= 1:
            return None
        accumulation = int(hyperparameters.get("gradientAccumulation") or 1)
        return {"batchSize": batch // 2, "gradientAccumulation": accumulation * 2}
    if reason == "Diverged":
        try:
            rate = Decimal(str(hyperparameters.get("learningRate")))
        except InvalidOperation:
            return None
        return {"learningRate": f"{(rate / 10).normalize():e}".replace("e-0", "e-")}
    return None


def _terminated_states(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    states = []
    for cs in statuses:
        for state in (cs.get("state") or {}, cs.get("lastState") or {}):
            if state.get("terminated") and state["terminated"].get(
                    "exitCode", ExitCode.SUCCEEDED) != ExitCode.SUCCEEDED:
                states.append(state["terminated"])
    return states


def _waiting_reasons(pod: Mapping[str, Any]) -> list[tuple[str, str]]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return [(cs["state"]["waiting"].get("reason", ""), cs["state"]["waiting"].get("message", ""))
            for cs in statuses if (cs.get("state") or {}).get("waiting")]


def termination_report(terminated: Mapping[str, Any]) -> TerminationReport | None:
    """The trainer's TerminationReport in a terminated state's message, if it holds one
    (with ``FallbackToLogsOnError`` it may hold the log tail instead)."""
    try:
        return TerminationReport.model_validate_json(terminated.get("message") or "")
    except ValidationError:
        return None


def _make(reason: str, detail: str, hyperparameters: Mapping[str, Any],
          suggestions: Sequence[str] | None = None) -> Diagnosis:
    message = MESSAGES.get(reason, "The trainer failed.")
    if detail:
        message = f"{message} {detail}"
    fix = auto_fix(reason, hyperparameters)
    return Diagnosis(reason=reason, message=message.strip(),
                     suggestions=list(suggestions or SUGGESTIONS.get(reason, [])),
                     auto_fix=fix, retryable=reason in RETRYABLE)


def diagnose(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]],
             hyperparameters: Mapping[str, Any]) -> Diagnosis | None:
    """Diagnose a trainer Job from its pods; None when nothing is wrong (yet).

    ``hyperparameters`` are the attempt's effective values, used for the automatic fix.
    """
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("reason") == "Evicted":
            return _make("Evicted", status.get("message", ""), hyperparameters)
        for terminated in _terminated_states(pod):
            code = int(terminated.get("exitCode", ExitCode.ERROR))
            report = termination_report(terminated)
            if terminated.get("reason") == OOM_KILLED:
                reason = str(FailureReason.OUT_OF_MEMORY)
            elif code in EXIT_REASONS:
                reason = str(EXIT_REASONS[ExitCode(code)])
            elif report is not None and report.reason in MESSAGES:
                reason = report.reason
            else:
                reason = "Error"
            detail = report.message if report is not None else ""
            if not detail and reason == "Error":
                detail = f"Exit code {code} ({terminated.get('reason') or 'Error'})."
            suggestions = list(report.suggestions) if report is not None else None
            return _make(reason, detail, hyperparameters, suggestions or None)
        for reason, message in _waiting_reasons(pod):
            if reason in IMAGE_PULL_REASONS:
                return _make("ImagePullFailed", message, hyperparameters)
            if reason == "CrashLoopBackOff":
                return _make("CrashLoop", message, hyperparameters)
    failed = job_condition(job, "Failed")
    if failed and failed.get("reason") == "DeadlineExceeded":
        return _make("DeadlineExceeded", failed.get("message", ""), hyperparameters)
    if failed:
        return _make("Error", f"{failed.get('reason', '')}: {failed.get('message', '')}".strip(": "),
                     hyperparameters)
    return None
