"""TrainingRun controller: one level-triggered, idempotent ``reconcile``.

Create/update/resume handlers, a resync timer and events of the children (Jobs, Pods and
the report ConfigMap, found by the owner labels) all call ``reconcile``, which reads the
world and writes the whole desired state: children, ``status`` and Events.
"""
from __future__ import annotations

import json
from typing import Any

import kopf
from arclight.training import diagnosis as diag
from arclight.framework import metrics
from arclight.training import reports
from arclight.framework import settings as arclight_settings
from arclight.api import GROUP, VERSION
from arclight.api import trainingrun as api
from arclight.training import builders as build
from arclight.core.names import OWNER_KIND_LABEL, OWNER_NAME_LABEL, owner_labels
from arclight.clients.kube import Kube
from arclight.framework.frame import StatusPass, reconcile_object
from arclight.training.resolve import ResolveError, resolve
from arclight.core.conditions import (
    FALSE,
    TRUE,
    UNKNOWN,
    is_true,
    now_iso,
    trainingrun_phase,
    transitions,
)
from arclight.core.errors import InvalidSpec
from arclight.training.validation import validate_trainingrun

KIND = api.KIND
OVERRIDES_ANNOTATION = build.OVERRIDES_ANNOTATION
C = api.ConditionType
R = api.Reason


class Reconciler(StatusPass):
    """One pass over one TrainingRun: observe, decide, apply, report."""

    def __init__(self, kube: Kube, settings: arclight_settings.Settings, run: dict[str, Any]):
        super().__init__(kube, settings, run)
        self.run = run

    # --- the pass ------------------------------------------------------------------------------

    def reconcile(self) -> None:
        try:
            spec_model = validate_trainingrun(self.run, self.budget_exists())
            self.act(spec_model.model_dump(by_alias=True, mode="json", exclude_none=True))
        except (InvalidSpec, ResolveError) as exc:
            self.condition(C.ADMITTED, FALSE, R.INVALID_SPEC, str(exc))
            self.condition(C.DEGRADED, TRUE, R.INVALID_SPEC, str(exc))
            self.finish(suspended=False)
            raise InvalidSpec(str(exc)) from None

    def act(self, spec: dict[str, Any]) -> None:
        self.condition(C.BUDGET_EXCEEDED, UNKNOWN, "NotMetered",
                       "Credit metering is not enabled in this operator version.")
        self.read_report()
        if is_true(self.status["conditions"], C.SUCCEEDED) or is_true(
                self.status["conditions"], C.FAILED):
            self.finish(suspended=False)
            return
        jobs = {j["metadata"]["name"]: j for j in self.kube.list(
            "batch/v1", "Job", self.namespace, owner_labels(KIND, self.name))}
        attempt = max([int(j["metadata"].get("labels", {}).get(build.ATTEMPT_LABEL, 1))
                       for j in jobs.values()] + [int(self.status.get("attempts") or 0), 1])
        job = jobs.get(build.job_name(self.name, attempt))
        if job is not None:
            applied = json.loads(job["metadata"].get("annotations", {}).get(
                build.APPLIED_SPEC_ANNOTATION, "{}"))
            changed = build.changed_fields(applied, spec)
            effective = {**applied, **{k: spec[k] for k in build.MUTABLE_FIELDS if k in spec}}
            self.observe_job(job, effective, changed, attempt)
        elif spec.get("suspend"):
            self.suspended_without_job()
        else:
            self.start_attempt(spec, attempt)

    def budget_exists(self) -> bool | None:
        ref = (self.run.get("spec") or {}).get("budgetRef")
        if not ref:
            return None
        return self.kube.get(api.API_VERSION, "CreditBudget", ref) is not None

    # --- attempts ----------------------------------------------------------------------------

    def overrides(self, attempt: int) -> dict[str, Any]:
        """Hyperparameter fixes in force for ``attempt`` (recorded on the run)."""
        record = json.loads(self.run["metadata"].get("annotations", {}).get(
            OVERRIDES_ANNOTATION, "{}"))
        return dict(record.get("hyperparameters") or {}) if record.get(
            "attempt", 0) <= attempt else {}

    def resolution(self, spec: dict[str, Any], attempt: int) -> tuple[dict, dict]:
        """``status.resolved`` and the TrainerConfig of ``attempt``, fixes applied."""
        meta = self.run["metadata"]
        resolved, config = resolve(spec, name=self.name, namespace=self.namespace,
                                   uid=meta["uid"], attempt=attempt, settings=self.settings)
        fixes = self.overrides(attempt)
        resolved["hyperparameters"].update(fixes)
        config["hyperparameters"].update(fixes)
        best = (self.status.get("bestCheckpoint") or {}).get("uri")
        if attempt > 1 and best:
            config["resumeFrom"] = best
        return resolved, config

    def start_attempt(self, spec: dict[str, Any], attempt: int) -> dict[str, Any]:
        resolved, config = self.resolution(spec, attempt)
        run = {**self.run, "spec": spec}
        job = None
        for child in build.build_children(run, config, image=self.settings.trainer_image,
                                          artifacts_claim=self.settings.artifacts_claim,
                                          resolved_resources=resolved["resources"],
                                          overrides=self.overrides(attempt)):
            create_only = child["kind"] == "Job" or child["metadata"]["name"] == \
                build.report_name(self.name)
            job = self.kube.apply(child, create_only=create_only)
        self.kube.prune("v1", "Service", self.namespace, owner_labels(KIND, self.name),
                        keep=[build.gateway_name(self.name)] + (
                            [build.workers_name(self.name)] if resolved["resources"]["nodes"] > 1
                            else []))
        self.status["resolved"] = resolved
        self.status.setdefault("startTime", now_iso())
        if int(self.status.get("attempts") or 0) < attempt:
            self.status["attempts"] = attempt
            self.event("AttemptStarted", f"Started attempt {attempt} as Job "
                       f"{build.job_name(self.name, attempt)}.")
        self.observe_job(job, spec, [], attempt)
        return job

    def retry_or_fail(self, failure: diag.Diagnosis, spec: dict[str, Any], attempt: int) -> None:
        retry = spec.get("retry") or {}
        if failure.retryable and attempt < int(retry.get("maxAttempts", 2)):
            fix = failure.auto_fix if retry.get("autoRemediate", True) else None
            if fix:
                self.record_overrides(attempt + 1, fix)
            self.status["diagnosis"] = failure.to_status(auto_fix_applied=bool(fix))
            self.condition(C.DEGRADED, TRUE, failure.reason,
                           f"Attempt {attempt} failed: {failure.message}")
            applied = f" with {json.dumps(fix, sort_keys=True)}" if fix else ""
            self.event(R.RETRYING, f"Attempt {attempt} failed ({failure.reason}); starting "
                       f"attempt {attempt + 1}{applied}.", warning=True)
            self.start_attempt(spec, attempt + 1)
            return
        self.status["diagnosis"] = failure.to_status(auto_fix_applied=False)
        self.condition(C.FAILED, TRUE, failure.reason, f"{failure.message} "
                       f"{' '.join(failure.suggestions)}".strip())
        self.condition(C.RUNNING, FALSE, failure.reason, f"Attempt {attempt} failed.")
        self.status.setdefault("completionTime", now_iso())
        self.finish(suspended=False)

    def record_overrides(self, attempt: int, fix: dict[str, Any]) -> None:
        """Store the fixes for ``attempt`` on the run (idempotent per attempt)."""
        annotations = self.run["metadata"].setdefault("annotations", {})
        record = json.loads(annotations.get(OVERRIDES_ANNOTATION, "{}"))
        if record.get("attempt", 0) >= attempt:
            return
        value = json.dumps({"attempt": attempt,
                            "hyperparameters": {**(record.get("hyperparameters") or {}),
                                                **fix}}, sort_keys=True)
        self.kube.patch(self.run, {"metadata": {"annotations": {OVERRIDES_ANNOTATION: value}}})
        annotations[OVERRIDES_ANNOTATION] = value

    # --- observing the Job -------------------------------------------------------------------

    def observe_job(self, job: dict[str, Any], spec: dict[str, Any], changed: list[str],
                    attempt: int) -> None:
        pods = self.kube.list("v1", "Pod", self.namespace,
                              {"job-name": job["metadata"]["name"]})
        if "resolved" not in self.status or changed:
            self.status["resolved"] = self.resolution(spec, attempt)[0]
        hyperparameters = self.status["resolved"]["hyperparameters"]
        if diag.job_condition(job, "Complete"):
            self.condition(C.SUCCEEDED, TRUE, R.COMPLETED, f"Attempt {attempt} completed.")
            self.condition(C.RUNNING, FALSE, R.COMPLETED, "Training finished.")
            self.condition(C.DEGRADED, FALSE, R.COMPLETED, "No problem detected.")
            self.status.setdefault("completionTime", now_iso())
            self.finish(suspended=False)
            return
        if diag.job_condition(job, "Failed"):
            failure = diag.diagnose(job, pods, hyperparameters)
            assert failure is not None  # a failed Job always has a diagnosis
            self.retry_or_fail(failure, spec, attempt)
            return
        job = self.apply_mutable(job, spec)
        if job is None:
            self.suspended_without_job()
            return
        suspended = bool(job["spec"].get("suspend"))
        problem = diag.diagnose(job, pods, hyperparameters)
        if changed:
            fields = ", ".join(f"spec.{f}" for f in changed)
            self.condition(C.DEGRADED, TRUE, "SpecChangeRejected",
                           f"{fields} changed while attempt {attempt} is active; only suspend, "
                           "activeDeadlineSeconds, ttlSecondsAfterFinished and notify can change "
                           "now. Revert the change, or delete and recreate the run.")
        elif problem is not None:
            self.condition(C.DEGRADED, TRUE, problem.reason,
                           f"{problem.message} {' '.join(problem.suggestions)}".strip())
            self.status["diagnosis"] = problem.to_status(auto_fix_applied=False)
        elif attempt > 1 and self.status.get("diagnosis"):
            previous = self.status["diagnosis"]
            fixed = " with the automatic fix" if previous.get("autoFixApplied") else ""
            self.condition(C.DEGRADED, TRUE, R.RETRYING,
                           f"Attempt {attempt} runs{fixed} after attempt {attempt - 1} failed "
                           f"({previous['reason']}).")
        else:
            self.condition(C.DEGRADED, FALSE, "AsExpected", "No problem detected.")
        if suspended and spec.get("suspend"):
            self.condition(C.ADMITTED, TRUE, R.RESOLVED, "The run was admitted.")
            self.condition(C.RUNNING, FALSE, R.SUSPENDED, "spec.suspend is true; the trainer "
                           "is paused. Set it to false to resume.")
        elif suspended and spec.get("queueName"):
            self.condition(C.ADMITTED, FALSE, R.QUEUED, f"Waiting for Kueue LocalQueue "
                           f"{spec['queueName']} to admit the trainer.")
            self.condition(C.RUNNING, FALSE, R.QUEUED, "Not admitted yet.")
        else:
            self.condition(C.ADMITTED, TRUE, R.RESOLVED, "The run was admitted.")
            if any((p.get("status") or {}).get("phase") == "Running" for p in pods):
                self.condition(C.RUNNING, TRUE, R.TRAINING, f"Attempt {attempt} is training.")
            else:
                self.condition(C.RUNNING, FALSE, R.STARTING,
                               f"Waiting for the trainer pod of attempt {attempt} to start.")
        self.finish(suspended=suspended and bool(spec.get("suspend")))

    def apply_mutable(self, job: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any] | None:
        """Patch suspend/deadline/TTL into the live Job; None when it had to be deleted.

        Servers without Job suspension (Kubernetes < 1.21) drop ``spec.suspend``: there a
        suspended run's Job is deleted and recreated on resume.
        """
        want_suspend = bool(spec.get("suspend")) or (
            bool(job["spec"].get("suspend")) and bool(spec.get("queueName")))
        wanted = {"suspend": want_suspend,
                  "activeDeadlineSeconds": spec.get("activeDeadlineSeconds"),
                  "ttlSecondsAfterFinished": spec.get("ttlSecondsAfterFinished")}
        current = {k: job["spec"].get(k) for k in wanted}
        if current.get("suspend") is None:
            current["suspend"] = False
        if current != wanted:
            job = self.kube.patch(job, {"spec": wanted})
            if want_suspend and not job["spec"].get("suspend"):
                self.kube.delete("batch/v1", "Job", job["metadata"]["name"], self.namespace)
                self.event(R.SUSPENDED, "Deleted the trainer Job: this cluster cannot suspend "
                           "Jobs; it is recreated when the run resumes.")
                return None
        return job

    def suspended_without_job(self) -> None:
        self.condition(C.ADMITTED, TRUE, R.RESOLVED, "The run was admitted.")
        self.condition(C.RUNNING, FALSE, R.SUSPENDED, "spec.suspend is true; the trainer is "
                       "paused. Set it to false to resume.")
        self.condition(C.DEGRADED, FALSE, "AsExpected", "No problem detected.")
        self.finish(suspended=True)

    # --- report channel and status -----------------------------------------------------------

    def read_report(self) -> None:
        report = self.kube.get("v1", "ConfigMap", build.report_name(self.name), self.namespace)
        self.status.update(reports.status_from_report((report or {}).get("data") or {}))

    def deploy(self) -> None:
        """``spec.deploy``: point the named ModelDeployment at this run (create it if missing)."""
        deploy = (self.run.get("spec") or {}).get("deploy") or {}
        if not deploy.get("enabled"):
            return
        name = deploy.get("modelDeployment") or self.name
        source = {"trainingRun": self.name}
        existing = self.kube.get(api.API_VERSION, "ModelDeployment", name, self.namespace)
        if existing is not None and (existing.get("spec") or {}).get("source") == source:
            return
        self.kube.apply({"apiVersion": api.API_VERSION, "kind": "ModelDeployment",
                         "metadata": {"name": name, "namespace": self.namespace},
                         "spec": {"source": source}},
                        patch={"spec": {"source": {**source, "uri": None, "mlflowModel": None}}})
        self.event("Deployed", f"ModelDeployment {name} now serves this run's best checkpoint.")

    def finish(self, suspended: bool) -> None:
        if is_true(self.status["conditions"], C.SUCCEEDED):
            self.deploy()
        self.status["observedGeneration"] = self.generation
        self.status["phase"] = trainingrun_phase(self.status["conditions"], suspended)
        for cond in transitions(self.old_status.get("conditions") or [],
                                self.status["conditions"]):
            metrics.TRANSITIONS.labels(KIND, cond["type"], cond["status"], cond["reason"]).inc()
            if cond["status"] != UNKNOWN and not (cond["type"] == C.DEGRADED
                                                   and cond["status"] == FALSE):
                warning = cond["status"] == TRUE and cond["type"] in (C.FAILED, C.DEGRADED)
                self.event(cond["reason"], f"{cond['type']}={cond['status']}: "
                           f"{cond['message']}", warning=warning)
        if self.status != self.old_status:
            self.kube.patch_status(self.run, self.status)
        for type_, reason, message in self.events:
            self.kube.emit_event(self.run, reason, message, type_)


def _run(memo: kopf.Memo, namespace: str, name: str, trigger: str) -> None:
    """Reconcile the TrainingRun ``namespace/name`` and its children (see arclight.reconciling)."""
    settings = memo["settings"]
    reconcile_object(memo["kube"], api.API_VERSION, KIND, namespace, name, trigger,
                     lambda run: Reconciler(memo["kube"], settings, run).reconcile())


@kopf.on.resume(GROUP, VERSION, api.PLURAL)
@kopf.on.create(GROUP, VERSION, api.PLURAL)
@kopf.on.update(GROUP, VERSION, api.PLURAL)
def on_change(namespace: str, name: str, memo: kopf.Memo, reason: str, **_: Any) -> None:
    """Spec or metadata changed (or the operator started): reconcile."""
    _run(memo, namespace, name, getattr(reason, "value", str(reason)))


def _unfinished(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") not in ("Succeeded", "Failed")


# kopf puts a finalizer on every object a timer matches, so the timer matches only unfinished
# runs: a finished run holds no finalizer (it has no external state) and its namespace can be
# deleted even when no operator is running.
@kopf.timer(GROUP, VERSION, api.PLURAL, when=_unfinished,
            interval=arclight_settings.get().resync_seconds, initial_delay=5)
def resync(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    """Periodic resync of unfinished runs: catches anything the watches missed."""
    try:
        _run(memo, namespace, name, "resync")
    except kopf.PermanentError:
        pass  # already reported as a condition and an Event


OWNED = {OWNER_KIND_LABEL: KIND, OWNER_NAME_LABEL: kopf.PRESENT}


@kopf.on.event("batch", "v1", "jobs", labels=OWNED)
@kopf.on.event("", "v1", "pods", labels=OWNED)
@kopf.on.event("", "v1", "configmaps", labels=OWNED)
def on_child(namespace: str, labels: kopf.Labels, memo: kopf.Memo, resource: Any,
             **_: Any) -> None:
    """A child changed: reconcile its owner."""
    try:
        _run(memo, namespace, labels[OWNER_NAME_LABEL], resource.plural)
    except kopf.PermanentError:
        pass
