"""Failure diagnosis: Job + Pods (+ the trainer's termination message) -> what went wrong.

Pure functions over plain Kubernetes object dicts (as returned by the API). The trainer's
contract (docs/architecture.md): exit 2 DatasetInvalid, 3 Diverged, 4 RewardError,
5 OutOfMemory, 6 ConfigInvalid, 7 RolloutsFailed, kernel OOM kill = ``OOMKilled``/137; a JSON object in the termination log.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

EXIT_REASONS = {2: "DatasetInvalid", 3: "Diverged", 4: "RewardError", 5: "OutOfMemory",
                6: "ConfigInvalid", 7: "RolloutsFailed", 137: "OutOfMemory"}
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
            if state.get("terminated") and state["terminated"].get("exitCode", 0) != 0:
                states.append(state["terminated"])
    return states


def _waiting_reasons(pod: Mapping[str, Any]) -> list[tuple[str, str]]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return [(cs["state"]["waiting"].get("reason", ""), cs["state"]["waiting"].get("message", ""))
            for cs in statuses if (cs.get("state") or {}).get("waiting")]


def _termination_report(terminated: Mapping[str, Any]) -> Mapping[str, Any]:
    try:
        report = json.loads(terminated.get("message") or "")
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}


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
            code = int(terminated.get("exitCode", 1))
            report = _termination_report(terminated)
            if terminated.get("reason") == "OOMKilled" or code in EXIT_REASONS:
                reason = "OutOfMemory" if terminated.get("reason") == "OOMKilled" else EXIT_REASONS[code]
            else:
                reason = report.get("reason") if report.get("reason") in MESSAGES else "Error"
            detail = str(report.get("message") or "")
            if not detail and reason == "Error":
                detail = f"Exit code {code} ({terminated.get('reason') or 'Error'})."
            suggestions = [str(s) for s in report.get("suggestions") or []] or None
            return _make(reason, detail, hyperparameters, suggestions)
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
