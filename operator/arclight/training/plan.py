"""TrainingRun: the pure plan of one pass (observed world -> children, status, Events).

The attempt in force is the highest of the attempt Jobs seen and ``status.attempts``. Its Job
records the spec it was built from; fields that may change while it runs (suspend, deadline,
TTL, notify) are patched into it, any other change is refused (``SpecChangeRejected``). A
failed Job is diagnosed: retryable failures start the next attempt (with the automatic fix
recorded on the run), others fail the run. ``spec.deploy`` points a ModelDeployment at the
run once it succeeds.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from arclight.api import trainingrun as api
from arclight.api.trainer import RESUME_LATEST, TrainerConfig
from arclight.api.trainingrun import ResolvedResources, TrainingRunSpec
from arclight.core.conditions import FALSE, TRUE, StatusBuilder, trainingrun_phase
from arclight.core.deploy import serve_run
from arclight.core.errors import DependencyNotReady, InvalidSpec
from arclight.core.facts import Facts
from arclight.core.names import Owner
from arclight.core.plan import Child, Obj, ObjectRef, Observed, Plan
from arclight.metering.standing import owner_cost
from arclight.training import builders as build
from arclight.training import diagnosis as diag
from arclight.training.admission import Admission, admit, budget_verdict, limit_verdict
from arclight.training.reports import status_from_report
from arclight.training.resolve import ResolveError, resolve, with_fixes

C, R = api.ConditionType, api.Reason
#: Owned kinds whose undesired children are deleted (a Job only when a paused run on a
#: cluster without Job suspension gives it up; Pods belong to their Job).
PRUNED = ("ConfigMap", "ServiceAccount", "Role", "RoleBinding", "Service", "Job")
WARNING_TYPES = (C.FAILED, C.DEGRADED, C.BUDGET_EXCEEDED)
#: How often a run held by its budget looks again (a raised budget is seen sooner when the
#: run names it in budgetRef).
BUDGET_RECHECK_SECONDS = 30.0
#: How often a run waiting for a slot under its budget's concurrency limits looks again.
LIMIT_RECHECK_SECONDS = 10.0
#: Transitions that are not news: all is well again, or the pod of a new attempt starts.
QUIET = ((C.DEGRADED, FALSE, None), (C.RUNNING, FALSE, R.STARTING),
         (C.BUDGET_EXCEEDED, FALSE, None))


def budget_ref(spec: TrainingRunSpec) -> ObjectRef | None:
    return ObjectRef(api.API_VERSION, "CreditBudget", spec.budget_ref) if spec.budget_ref else None


def deployment_ref(obj: Mapping[str, Any], spec: TrainingRunSpec) -> ObjectRef | None:
    if spec.deploy is None or not spec.deploy.enabled:
        return None
    name = spec.deploy.model_deployment or obj["metadata"]["name"]
    return ObjectRef(api.API_VERSION, "ModelDeployment", name, obj["metadata"]["namespace"])


def references(obj: Mapping[str, Any], spec: TrainingRunSpec) -> list[ObjectRef]:
    """What a pass reads besides the run's children: its budget and its deployment."""
    return [ref for ref in (budget_ref(spec), deployment_ref(obj, spec)) if ref is not None]


def attempt_of(job: Mapping[str, Any]) -> int:
    return int((job["metadata"].get("labels") or {}).get(build.ATTEMPT_LABEL, 1))


class _Pass:
    """The decisions of one pass; pure (it only builds the Plan)."""

    def __init__(self, spec: TrainingRunSpec, observed: Observed, facts: Facts) -> None:
        self.spec, self.observed, self.facts = spec, observed, facts
        meta = observed.obj["metadata"]
        self.name, self.namespace, self.uid = meta["name"], meta["namespace"], meta.get("uid")
        self.annotations: dict[str, str] = dict(meta.get("annotations") or {})
        self.st = StatusBuilder(observed.status, meta.get("generation"), facts.now_iso)
        self.status = self.st.status
        self.desired: dict[tuple[str, str], Child] = {}
        self.prune: tuple[str, ...] = PRUNED
        self.object_patch: Obj | None = None
        self.applies: list[Child] = []
        self.requeue: float | None = None

    # --- the pass ------------------------------------------------------------------------

    def run(self) -> Plan:
        report = self.observed.child("ConfigMap", build.report_name(self.name))
        self.status.update(status_from_report((report or {}).get("data") or {}))
        self.cost()
        if self.st.is_true(C.SUCCEEDED) or self.st.is_true(C.FAILED):
            return self.finish(suspended=False)
        jobs = self.observed.of_kind("Job")
        attempt = max([attempt_of(j) for j in jobs.values()]
                      + [int(self.status.get("attempts") or 0), 1])
        self.keep_jobs(jobs)
        job = jobs.get(build.job_name(self.name, attempt))
        if job is None:
            ref = budget_ref(self.spec)
            if ref is not None and self.observed.ref(ref) is None:
                raise DependencyNotReady(
                    f"spec.budgetRef: CreditBudget {self.spec.budget_ref} does not exist yet; "
                    "the run starts once it is created (or remove budgetRef).",
                    reason=R.BUDGET_NOT_FOUND)
            verdict = admit(self.spec, None, self.facts.capabilities)
            if not verdict.job_wanted:
                return self.held_without_job(verdict)
            held = self.budget_hold()
            if held is not None:
                return self.held_without_job(held)
            return self.start_attempt(self.spec, attempt)
        self.catch_up(jobs, attempt)
        applied = json.loads((job["metadata"].get("annotations") or {}).get(
            build.APPLIED_SPEC_ANNOTATION, "{}"))
        current = self.spec.model_dump(by_alias=True, mode="json", exclude_none=True)
        changed = build.changed_fields(applied, current)
        effective = TrainingRunSpec.model_validate(
            {**applied, **{k: current[k] for k in build.MUTABLE_FIELDS if k in current}})
        return self.observe_job(job, effective, changed, attempt)

    def cost(self) -> None:
        """``status.cost`` from the meter's snapshot (ledger plus the live part); kept as it
        was when the snapshot has no figure for this run."""
        cost = owner_cost(self.facts.metering, self.uid)
        if cost is not None:
            self.status["cost"] = cost

    def budget_hold(self) -> Admission | None:
        """The budget's verdict on a new attempt: the BudgetExceeded condition, and the
        admission that holds it when the credits are spent or no slot is free under its
        concurrency limits (looked at again shortly)."""
        budget = budget_verdict(self.spec, self.namespace, self.facts.metering)
        if budget is None:
            return None
        self.st.condition(C.BUDGET_EXCEEDED, *budget.exceeded)
        held = budget.exceeded if budget.held else limit_verdict(
            self.spec, self.observed.obj, self.facts.metering, self.facts.claims)
        if held is None:
            return None
        self.requeue = BUDGET_RECHECK_SECONDS if budget.held else LIMIT_RECHECK_SECONDS
        _, reason, message = held
        # an attempt `stop` interrupted (its Job deleted where Jobs cannot be suspended)
        stopped = budget.stop and self.annotations.get(build.INTERRUPTED_ANNOTATION) is not None
        return Admission(job_wanted=False, hold=True, admitted=(FALSE, reason, message),
                         running=(FALSE, reason, "Suspended by its CreditBudget (enforcement "
                                  "stop); it resumes from its checkpoint when credits return."
                                  if stopped else "Not admitted yet."), suspended=stopped)

    def pods_of(self, job_name: str) -> list[Obj]:
        return [p for p in self.observed.of_kind("Pod").values()
                if (p["metadata"].get("labels") or {}).get("job-name") == job_name]

    def catch_up(self, jobs: Mapping[str, Obj], attempt: int) -> None:
        """The status lags the Jobs when the operator stopped between creating an attempt's
        Job and writing the status: record the attempt (and the failure it retries) now."""
        if int(self.status.get("attempts") or 0) >= attempt:
            return
        self.record_attempt(attempt)
        previous = jobs.get(build.job_name(self.name, attempt - 1))
        if previous is None or not diag.job_condition(previous, "Failed"):
            return
        failure = diag.diagnose(previous, self.pods_of(previous["metadata"]["name"]), {})
        if failure is not None:
            fixed = bool(self.overrides(attempt)) and json.loads(self.annotations.get(
                build.OVERRIDES_ANNOTATION, "{}")).get("attempt") == attempt
            self.retrying(failure, attempt - 1, fixed, None)

    def record_attempt(self, attempt: int) -> None:
        self.status.setdefault("startTime", self.facts.now_iso)
        if int(self.status.get("attempts") or 0) < attempt:
            self.status["attempts"] = attempt
            self.st.event("AttemptStarted", f"Started attempt {attempt} as Job "
                          f"{build.job_name(self.name, attempt)}.")

    def retrying(self, failure: diag.Diagnosis, attempt: int, fixed: bool,
                 fix: Mapping[str, Any] | None) -> None:
        """Status and Event of a failed attempt that the next one retries."""
        self.status["diagnosis"] = failure.to_status(auto_fix_applied=fixed)
        self.st.condition(C.DEGRADED, TRUE, failure.reason,
                          f"Attempt {attempt} failed: {failure.message}")
        applied = f" with {json.dumps(dict(fix), sort_keys=True)}" if fix else ""
        self.st.event(R.RETRYING, f"Attempt {attempt} failed ({failure.reason}); starting "
                      f"attempt {attempt + 1}{applied}.", warning=True)

    def keep_jobs(self, jobs: Mapping[str, Obj]) -> None:
        """Every attempt's Job stays (the history of the run); none is ever re-applied."""
        for name in jobs:
            self.add(Child({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}},
                           create_only=True))

    def add(self, child: Child) -> None:
        """Desire ``child`` (replacing an earlier entry of the same kind and name)."""
        self.desired[(child.kind, child.name)] = child

    # --- attempts ------------------------------------------------------------------------

    def overrides(self, attempt: int) -> dict[str, Any]:
        """Hyperparameter fixes in force for ``attempt`` (recorded on the run)."""
        record = json.loads(self.annotations.get(build.OVERRIDES_ANNOTATION, "{}"))
        return dict(record.get("hyperparameters") or {}) if record.get(
            "attempt", 0) <= attempt else {}

    def resolution(self, spec: TrainingRunSpec, attempt: int
                   ) -> tuple[dict[str, Any], TrainerConfig]:
        """``status.resolved`` and the TrainerConfig of ``attempt``, fixes applied."""
        resolved, config, _ = self.attempt(spec, attempt, hold=False)
        return resolved, config

    def attempt_children(self, spec: TrainingRunSpec, attempt: int, hold: bool
                         ) -> tuple[list[Child], dict[str, Any]]:
        """The children of ``attempt`` (the Job created once, suspended when held)."""
        resolved, _, children = self.attempt(spec, attempt, hold)
        return list(children), resolved

    def attempt(self, spec: TrainingRunSpec, attempt: int, hold: bool
                ) -> tuple[dict[str, Any], TrainerConfig, tuple[Child, ...]]:
        best = (self.status.get("bestCheckpoint") or {}).get("uri")
        owner = Owner(api.API_VERSION, api.KIND, self.name, self.namespace, self.uid or "")
        interrupted = self.annotations.get(build.INTERRUPTED_ANNOTATION) == str(attempt)
        resume = best if attempt > 1 else (RESUME_LATEST if interrupted else None)
        resolved_json, config, children = _attempt(
            owner, spec.model_dump_json(by_alias=True), attempt, hold,
            json.dumps(self.overrides(attempt), sort_keys=True), resume,
            self.facts.trainer_image, self.facts.artifacts_claim, self.facts.mlflow_uri,
            self.facts.metering.enabled)
        return json.loads(resolved_json), config, children

    def start_attempt(self, spec: TrainingRunSpec, attempt: int) -> Plan:
        verdict = admit(spec, None, self.facts.capabilities)
        children, resolved = self.attempt_children(spec, attempt, verdict.hold)
        for child in children:
            self.add(child)
        self.status["resolved"] = resolved
        self.record_attempt(attempt)
        self.degraded(None, [], attempt)
        return self.running(verdict, [], attempt)

    def retry_or_fail(self, failure: diag.Diagnosis, spec: TrainingRunSpec, attempt: int
                      ) -> Plan:
        retry = spec.retry
        if failure.retryable and attempt < retry.max_attempts:
            fix = failure.auto_fix if retry.auto_remediate else None
            if fix:
                self.record_overrides(attempt + 1, fix)
            self.retrying(failure, attempt, bool(fix), fix)
            return self.start_attempt(spec, attempt + 1)
        self.status["diagnosis"] = failure.to_status(auto_fix_applied=False)
        self.st.condition(C.FAILED, TRUE, failure.reason, f"{failure.message} "
                          f"{' '.join(failure.suggestions)}".strip())
        self.st.condition(C.RUNNING, FALSE, failure.reason, f"Attempt {attempt} failed.")
        self.status.setdefault("completionTime", self.facts.now_iso)
        return self.finish(suspended=False)

    def record_overrides(self, attempt: int, fix: Mapping[str, Any]) -> None:
        """Record the fixes for ``attempt`` on the run (once per attempt)."""
        record = json.loads(self.annotations.get(build.OVERRIDES_ANNOTATION, "{}"))
        if record.get("attempt", 0) >= attempt:
            return
        value = json.dumps({"attempt": attempt,
                            "hyperparameters": {**(record.get("hyperparameters") or {}),
                                                **fix}}, sort_keys=True)
        self.annotations[build.OVERRIDES_ANNOTATION] = value
        self.object_patch = {"metadata": {"annotations": {build.OVERRIDES_ANNOTATION: value}}}

    def record_interruption(self, attempt: int) -> None:
        """Mark ``attempt`` as stopped mid-way (its trainer checkpoints on SIGTERM), so that
        its config resumes from the latest checkpoint from now on."""
        if self.annotations.get(build.INTERRUPTED_ANNOTATION) == str(attempt):
            return
        self.annotations[build.INTERRUPTED_ANNOTATION] = str(attempt)
        patch = (self.object_patch or {}).get("metadata", {}).get("annotations", {})
        self.object_patch = {"metadata": {"annotations": {
            **patch, build.INTERRUPTED_ANNOTATION: str(attempt)}}}

    # --- the attempt's Job ---------------------------------------------------------------

    def observe_job(self, job: Obj, spec: TrainingRunSpec, changed: list[str], attempt: int
                    ) -> Plan:
        pods = self.pods_of(job["metadata"]["name"])
        if "resolved" not in self.status or changed:
            self.status["resolved"] = self.resolution(spec, attempt)[0]
        hyperparameters = self.status["resolved"]["hyperparameters"]
        if diag.job_condition(job, "Complete"):
            self.st.condition(C.SUCCEEDED, TRUE, R.COMPLETED, f"Attempt {attempt} completed.")
            self.st.condition(C.RUNNING, FALSE, R.COMPLETED, "Training finished.")
            # a recovered run keeps no stale diagnosis; the condition says what it recovered from
            previous = self.status.pop("diagnosis", None)
            self.st.condition(C.DEGRADED, FALSE, R.COMPLETED, (
                f"Recovered: attempt {attempt - 1} failed ({previous['reason']}), attempt "
                f"{attempt} completed." if previous else "No problem detected."))
            self.status.setdefault("completionTime", self.facts.now_iso)
            return self.finish(suspended=False)
        if diag.job_condition(job, "Failed"):
            failure = diag.diagnose(job, pods, hyperparameters)
            if failure is None:  # a failed Job always has a diagnosis
                raise RuntimeError(f"Job {job['metadata']['name']} failed without a diagnosis")
            return self.retry_or_fail(failure, spec, attempt)
        children, _ = self.attempt_children(spec, attempt, hold=False)
        for child in children:
            if child.kind != "Job":
                self.add(child)
        budget = budget_verdict(self.spec, self.namespace, self.facts.metering)
        if budget is not None:
            self.st.condition(C.BUDGET_EXCEEDED, *budget.exceeded)
            if budget.stop:
                self.requeue = BUDGET_RECHECK_SECONDS
        verdict = admit(spec, job, self.facts.capabilities, budget)
        if verdict.suspended:
            self.record_interruption(attempt)
        self.keep_job(job, spec, verdict)
        problem = diag.diagnose(job, pods, hyperparameters)
        if verdict.suspended and problem is not None and problem.reason == R.PREEMPTED:
            problem = None  # the trainer stopped after a checkpoint, as it was asked to
        self.degraded(problem, changed, attempt)
        if not verdict.job_wanted:
            self.st.event(R.SUSPENDED, "Deleted the trainer Job: this cluster cannot suspend "
                          "Jobs; it is recreated when the run resumes.")
        return self.running(verdict, pods, attempt)

    def degraded(self, problem: diag.Diagnosis | None, changed: list[str], attempt: int
                 ) -> None:
        """Degraded from a refused spec change, a live problem, or the retry in progress."""
        if changed:
            fields = ", ".join(f"spec.{f}" for f in changed)
            self.st.condition(C.DEGRADED, TRUE, "SpecChangeRejected",
                              f"{fields} changed while attempt {attempt} is active; only "
                              "suspend, activeDeadlineSeconds, ttlSecondsAfterFinished and "
                              "notify can change now. Revert the change, or delete and "
                              "recreate the run.")
        elif problem is not None:
            self.st.condition(C.DEGRADED, TRUE, problem.reason,
                              f"{problem.message} {' '.join(problem.suggestions)}".strip())
            self.status["diagnosis"] = problem.to_status(auto_fix_applied=False)
        elif attempt > 1 and (self.status.get("diagnosis") or {}).get("reason") in diag.RETRYABLE:
            previous = self.status["diagnosis"]
            fixed = " with the automatic fix" if previous.get("autoFixApplied") else ""
            self.st.condition(C.DEGRADED, TRUE, R.RETRYING,
                              f"Attempt {attempt} runs{fixed} after attempt {attempt - 1} "
                              f"failed ({previous['reason']}).")
        else:
            self.status.pop("diagnosis", None)  # a recovered run keeps no stale diagnosis
            self.st.condition(C.DEGRADED, FALSE, "AsExpected", "No problem detected.")

    def keep_job(self, job: Obj, spec: TrainingRunSpec, verdict: Admission) -> None:
        """The live Job, with its mutable fields patched to the spec (or given up)."""
        name = job["metadata"]["name"]
        if not verdict.job_wanted:
            self.desired.pop(("Job", name), None)  # pruned: recreated on resume
            return
        caps = self.facts.capabilities
        wanted: dict[str, Any] = {"activeDeadlineSeconds": spec.active_deadline_seconds}
        if caps.job_suspend:  # older servers drop these fields: never patch what cannot stick
            wanted["suspend"] = verdict.hold
        if caps.job_ttl:
            wanted["ttlSecondsAfterFinished"] = spec.ttl_seconds_after_finished
        live = job.get("spec") or {}
        current = {key: bool(live.get(key)) if key == "suspend" else live.get(key)
                   for key in wanted}
        patch = {"spec": wanted} if current != wanted else None
        self.add(Child({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}},
                       create_only=True, patch=patch))

    def running(self, verdict: Admission, pods: list[Obj], attempt: int) -> Plan:
        """Admitted and Running from the admission verdict and the pods."""
        self.st.condition(C.ADMITTED, *verdict.admitted)
        if verdict.running is not None:
            self.st.condition(C.RUNNING, *verdict.running)
        elif any((p.get("status") or {}).get("phase") == "Running" for p in pods):
            self.st.condition(C.RUNNING, TRUE, R.TRAINING, f"Attempt {attempt} is training.")
        else:
            self.st.condition(C.RUNNING, FALSE, R.STARTING,
                              f"Waiting for the trainer pod of attempt {attempt} to start.")
        return self.finish(suspended=verdict.suspended)

    def held_without_job(self, verdict: Admission) -> Plan:
        self.st.condition(C.ADMITTED, *verdict.admitted)
        if verdict.running is not None:
            self.st.condition(C.RUNNING, *verdict.running)
        self.st.condition(C.DEGRADED, FALSE, "AsExpected", "No problem detected.")
        self.keep_existing_children()
        return self.finish(suspended=verdict.suspended)

    def keep_existing_children(self) -> None:
        """While no attempt runs, the children that exist stay as they are."""
        for kind in PRUNED:
            for name, child in self.observed.of_kind(kind).items():
                if (kind, name) not in self.desired:
                    self.add(Child({"apiVersion": child["apiVersion"], "kind": kind,
                                    "metadata": {"name": name}}, create_only=True))

    # --- the end of a pass ---------------------------------------------------------------

    def deploy(self) -> None:
        """``spec.deploy``: point the ModelDeployment at this run (create it if missing)."""
        ref = deployment_ref(self.observed.obj, self.spec)
        if ref is None:
            return
        child = serve_run(ref.name, self.namespace, self.name, self.observed.ref(ref))
        if child is not None:
            self.applies.append(child)
            self.st.event("Deployed", f"ModelDeployment {ref.name} now serves this run's best "
                          "checkpoint.")

    def finish(self, suspended: bool) -> Plan:
        if self.st.is_true(C.SUCCEEDED) or self.st.is_true(C.FAILED):
            self.prune = ()  # a finished run keeps its children as they are
        if self.st.is_true(C.SUCCEEDED):
            self.deploy()
        self.status["observedGeneration"] = self.st.generation
        self.status["phase"] = trainingrun_phase(self.status["conditions"], suspended)
        self.st.transition_events(WARNING_TYPES, QUIET)
        return Plan(status=self.status, children=list(self.desired.values()), prune=self.prune,
                    applies=self.applies, object_patch=self.object_patch,
                    events=self.st.events, requeue_after=self.requeue)


@functools.lru_cache(maxsize=2048)
def _attempt(owner: Owner, spec_json: str, attempt: int, hold: bool, fixes_json: str,
             resume_from: str | None, image: str, claim: str | None, mlflow_uri: str | None,
             metered: bool = False) -> tuple[str, TrainerConfig, tuple[Child, ...]]:
    """Resolution and children of one attempt: a pure function of its inputs, memoised
    because every pass of an active run asks for the same ones."""
    spec = TrainingRunSpec.model_validate_json(spec_json)
    try:
        resolved, config = resolve(spec, name=owner.name, namespace=owner.namespace or "",
                                   uid=owner.uid, attempt=attempt,
                                   settings=Facts(mlflow_uri=mlflow_uri))
    except ResolveError as exc:
        raise InvalidSpec(str(exc)) from None
    fixes = json.loads(fixes_json)
    resolved["hyperparameters"].update(fixes)
    config = with_fixes(config, fixes, resume_from)
    manifests = build.build_children(
        owner, spec, config, image=image, artifacts_claim=claim,
        resources=ResolvedResources.model_validate(resolved["resources"]), overrides=fixes,
        metered=metered)
    children = []
    for manifest in manifests:
        if manifest["kind"] == "Job":
            manifest["spec"]["suspend"] = hold
        create_only = manifest["kind"] == "Job" or \
            manifest["metadata"]["name"] == build.report_name(owner.name)
        children.append(Child(manifest, create_only=create_only))
    return json.dumps(resolved), config, tuple(children)


def plan(spec: TrainingRunSpec, observed: Observed, facts: Facts) -> Plan:
    """The plan of one pass over a TrainingRun."""
    return _Pass(spec, observed, facts).run()


def on_error(observed: Observed, error: Exception, facts: Facts) -> Plan:
    """An invalid spec (Admitted False + Degraded, a Warning) or a missing dependency
    (Admitted False with its own reason, no Warning; the frame requeues)."""
    meta = observed.obj["metadata"]
    st = StatusBuilder(observed.status, meta.get("generation"), facts.now_iso)
    if isinstance(error, DependencyNotReady):
        st.condition(C.ADMITTED, FALSE, error.reason, str(error))
    else:
        st.condition(C.ADMITTED, FALSE, R.INVALID_SPEC, str(error))
        st.condition(C.DEGRADED, TRUE, R.INVALID_SPEC, str(error))
    st.status["observedGeneration"] = meta.get("generation")
    st.status["phase"] = trainingrun_phase(st.status["conditions"], False)
    st.transition_events(WARNING_TYPES, QUIET)
    return Plan(status=st.status, events=st.events)
