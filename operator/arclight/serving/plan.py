"""ModelDeployment: the pure plan of one pass (observed world -> children, status, Events).

The spec's source (and the canary's) resolve to a servable model: a ``pvc://`` URI or an
MLflow model as written, or a TrainingRun's best checkpoint. A model, runtime and resources
name a revision (``<md>-<hash>``); ``rollbackTo`` serves a recorded revision instead. Each
live revision runs as a Deployment behind the Service ``<md>``; the current one is
autoscaled (an HPA, or KEDA for scale-to-zero and concurrency), except during a
replica-ratio canary, which fixes both counts. With the Gateway API an HTTPRoute splits the
traffic by weight over one Service per revision. Deployments of revisions no longer live are
deleted (``RevisionRetired``), and so are the autoscaler and route no longer wanted.

A source that cannot be served yet (no such TrainingRun, no best checkpoint) leaves what
runs as it is: ``DependencyNotReady``, requeued, and healed when the run changes (the
framework queues the readers of a TrainingRun).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from arclight.api import modeldeployment as api
from arclight.api.common import API_VERSION
from arclight.api.modeldeployment import ModelDeploymentSpec, ModelSource
from arclight.core.conditions import FALSE, TRUE, UNKNOWN, StatusBuilder
from arclight.core.errors import DependencyNotReady
from arclight.core.facts import Facts
from arclight.core.plan import Child, Obj, ObjectRef, Observed, Plan
from arclight.metering.enforcement import budget_verdict
from arclight.metering.standing import owner_cost
from arclight.serving import builders as build
from arclight.serving import rollout

C, R = api.ConditionType, api.Reason
#: Owned kinds whose undesired children are deleted while a model is served.
PRUNED = ("Deployment", "Service", "HorizontalPodAutoscaler", "ScaledObject", "HTTPRoute")
WARNING_TYPES = (C.DEGRADED,)
QUIET = ((C.DEGRADED, FALSE, None),)
#: How soon a pass waiting for a TrainingRun is repeated (the run's own changes queue the
#: pass at once; this is the safety net).
SOURCE_RETRY_SECONDS = 30.0
#: How often a deployment whose scale-ups its budget holds looks again.
BUDGET_RECHECK_SECONDS = 30.0


# --- references and sources ----------------------------------------------------------------

def run_ref(namespace: str | None, name: str) -> ObjectRef:
    return ObjectRef(API_VERSION, "TrainingRun", name, namespace)


def references(obj: Mapping[str, Any], spec: ModelDeploymentSpec) -> list[ObjectRef]:
    """The TrainingRuns the spec serves (its source and its canary's)."""
    namespace = obj["metadata"].get("namespace")
    names = [spec.source.training_run, spec.canary.source.training_run if spec.canary else None]
    return [run_ref(namespace, name) for name in dict.fromkeys(names) if name]


@dataclass(frozen=True)
class NotServable:
    """Why a source has no servable model (yet): a condition reason and message."""

    reason: str
    message: str


def resolve(source: ModelSource, field: str, observed: Observed) -> dict[str, str] | NotServable:
    """The servable form of a spec source (what ``status.revisions[].source`` records)."""
    run_name = source.training_run
    if run_name is None:
        resolved = {"uri": source.uri} if source.uri else {"mlflowModel": str(source.mlflow_model)}
    else:
        run = observed.ref(run_ref(observed.namespace, run_name))
        if run is None:
            return NotServable(R.SOURCE_NOT_READY, f"{field}.trainingRun: TrainingRun {run_name} "
                               "does not exist in this namespace; create it or fix the name.")
        status = run.get("status") or {}
        best = (status.get("bestCheckpoint") or {}).get("uri")
        if not best:
            phase = status.get("phase") or "Pending"
            return NotServable(R.SOURCE_NOT_READY, f"Waiting for TrainingRun {run_name} (phase "
                               f"{phase}) to report a best checkpoint.")
        resolved = {"uri": best, "trainingRun": run_name}
    problem = build.source_problem(resolved)
    if problem:
        return NotServable("SourceUnsupported", f"{field}: {problem}")
    return resolved


# --- one pass ------------------------------------------------------------------------------

def deployment_child(manifest: Obj, live: Obj | None, replicas: int) -> Child:
    """A revision's Deployment. The framework re-applies a child only when its manifest
    changed, so a count changed by someone else under an unchanged manifest (an autoscaler
    that has just been removed, ``kubectl scale``) is set back with a merge patch of
    ``spec.replicas`` alone; the pass that follows applies the manifest if it changed.
    ``replicas`` is always in the manifest: server-side apply would drop an omitted count
    that the operator applied before to the default of 1."""
    if live is not None and rollout.live_replicas(live) != replicas:
        return Child(manifest, create_only=True, patch={"spec": {"replicas": replicas}})
    return Child(manifest)


class _Pass:
    """The decisions of one pass; pure (it only builds the Plan)."""

    def __init__(self, spec: ModelDeploymentSpec, observed: Observed, facts: Facts) -> None:
        self.spec, self.observed, self.facts = spec, observed, facts
        meta = observed.obj["metadata"]
        self.name = meta["name"]
        self.st = StatusBuilder(observed.status, meta.get("generation"), facts.now_iso)
        self.status = self.st.status
        self.old_revisions = list(self.status.get("revisions") or [])
        self.problems: list[tuple[str, str]] = []
        self.children: list[Child] = []
        self.requeue_after: float | None = None

    def run(self) -> Plan:
        cost = owner_cost(self.facts.metering, self.observed.obj["metadata"].get("uid"))
        if cost is not None:
            self.status["cost"] = cost
        runtime = build.runtime_for(self.spec)
        if runtime not in build.SERVABLE_RUNTIMES:
            return not_serving(self.st, "RuntimeUnavailable",
                               f"runtime {runtime} is not available in this operator version; "
                               f"use runtime auto or {', '.join(build.SERVABLE_RUNTIMES)}.")
        source = resolve(self.spec.source, "spec.source", self.observed)
        if isinstance(source, NotServable):
            if source.reason == R.SOURCE_NOT_READY:
                raise DependencyNotReady(source.message, reason=source.reason,
                                         retry_after=SOURCE_RETRY_SECONDS)
            return not_serving(self.st, source.reason, source.message)
        current = build.revision_name(self.name, source, runtime, self.spec.resources)
        current, source = self.rollback(current, source)
        canary = self.canary(runtime, current)
        live = [current] + ([canary[0]] if canary else [])
        self.record_revision(current, source, live)
        if canary:
            self.record_revision(canary[0], canary[1], live)
        return self.serve(runtime, (current, source), canary)

    def rollback(self, current: str, source: dict[str, str]) -> tuple[str, dict[str, str]]:
        """The revision to serve: ``rollbackTo``'s recorded one, else the spec's source."""
        target = self.spec.rollback_to
        if not target:
            self.st.condition(C.ROLLED_BACK, FALSE, "SpecSource", "Serving spec.source.")
            return current, source
        record = next((r for r in self.old_revisions if r.get("name") == target), None)
        if record is None:
            known = ", ".join(r["name"] for r in self.old_revisions) or "none"
            self.st.condition(C.ROLLED_BACK, FALSE, "UnknownRevision",
                              f"spec.rollbackTo: revision {target} is not in status.revisions "
                              f"(known: {known}); serving spec.source.")
            self.problems.append(("UnknownRevision",
                                  f"spec.rollbackTo names unknown revision {target}."))
            return current, source
        self.st.condition(C.ROLLED_BACK, TRUE, R.MANUAL_ROLLBACK,
                          f"Rolled back to revision {target} (spec.rollbackTo); remove "
                          "rollbackTo to serve spec.source again.")
        return target, dict(record.get("source") or {})

    def canary(self, runtime: str, current: str) -> tuple[str, dict[str, str], int] | None:
        """(revision, source, weight) of the canary, or None (none, rolled back, not ready,
        or the same revision as the current one)."""
        canary = self.spec.canary
        if canary is None or rollout.is_rolled_back(self.status):
            return None
        source = resolve(canary.source, "spec.canary.source", self.observed)
        if isinstance(source, NotServable):
            self.problems.append((source.reason, f"Canary not started: {source.message}"))
            if source.reason == R.SOURCE_NOT_READY:
                self.requeue_after = SOURCE_RETRY_SECONDS
            return None
        name = build.revision_name(self.name, source, runtime, self.spec.resources)
        return None if name == current else (name, source, canary.weight)

    def record_revision(self, name: str, source: dict[str, str], live: list[str]) -> None:
        revisions = rollout.record_revision(self.status.get("revisions") or [], name, source,
                                            self.facts.now_iso, live)
        if revisions is not None:
            self.status["revisions"] = revisions
            self.st.event("RevisionCreated", f"Revision {name} serves {build.model_ref(source)}.")

    # --- children ------------------------------------------------------------------------

    def serve(self, runtime: str, current: tuple[str, dict[str, str]],
              canary: tuple[str, dict[str, str], int] | None) -> Plan:
        md, caps, scaling = self.observed.obj, self.facts.capabilities, self.spec.autoscaling
        choice = rollout.choose_autoscaler(scaling, caps)
        if choice.problem:
            self.problems.append(choice.problem)
        gateway = caps.gateway_api_version
        placements, choice = rollout.place(scaling, choice, bool(gateway), current, canary)
        held = self.budget_held()
        counts: dict[str, int] = {}
        for placement in placements:
            live = self.observed.child("Deployment", placement.revision)
            replicas = rollout.replicas_to_apply(placement, live)
            if held:  # no scale-up: at most what runs now (a new revision gets none)
                replicas = min(replicas, rollout.live_replicas(live) if live else 0)
            counts[placement.revision] = replicas
            manifest = build.build_deployment(
                md, placement.revision, placement.source, image=self.facts.trainer_image,
                runtime=runtime, replicas=replicas, mlflow_uri=self.facts.mlflow_uri,
                metered=self.facts.metering.enabled,
                spec=self.spec)
            self.children.append(deployment_child(manifest, live, replicas))
        for name in self.observed.of_kind("Deployment"):
            if name not in counts:
                self.st.event("RevisionRetired", f"Deleted the Deployment of revision {name}.")
        self.children.append(Child(build.build_service(md)))
        weight = canary[2] if canary else 0
        if gateway and canary is not None:
            for placement in placements:
                self.children.append(Child(build.build_revision_service(md, placement.revision)))
            self.children.append(Child(build.build_http_route(
                md, gateway, [(current[0], 100 - weight), (canary[0], weight)])))
            traffic = [{"revision": current[0], "percent": 100 - weight},
                       {"revision": canary[0], "percent": weight}]
        else:
            traffic = rollout.traffic_by_replicas([(p.revision, counts[p.revision])
                                                   for p in placements])
        target = placements[0]
        if held:  # the autoscaler may scale down, never above what runs now
            cap = counts[target.revision]
            scaling = scaling.model_copy(update={"min_replicas": min(scaling.min_replicas, cap),
                                                 "max_replicas": max(cap, 1)})
            if cap == 0:
                choice = rollout.AutoscalerChoice(None, choice.problem)
        if choice.keda and choice.api_version:
            self.children.append(Child(build.build_scaled_object(
                md, choice.api_version, target.revision, scaling)))
        elif choice.hpa and choice.api_version:
            self.children.append(Child(build.build_hpa(
                md, choice.api_version, target.revision, min(target.replicas,
                                                             scaling.max_replicas),
                scaling.max_replicas,
                scaling.target_cpu_percent, scaling.scale_down_delay_seconds)))
        return self.report(current[0], canary[0] if canary else None, traffic, counts)

    def budget_held(self) -> bool:
        """The budget's say (the BudgetExceeded condition): whether scale-ups are held."""
        verdict = budget_verdict(None, self.observed.namespace or "", self.facts.metering,
                                 waiting="scale-ups wait and resume by themselves",
                                 can_name=False)
        if verdict is None:
            return False
        self.st.condition(C.BUDGET_EXCEEDED, *verdict.exceeded)
        if verdict.held:
            self.requeue_after = BUDGET_RECHECK_SECONDS
        return verdict.held

    # --- status --------------------------------------------------------------------------

    def report(self, current: str, canary: str | None, traffic: list[dict[str, Any]],
               counts: dict[str, int]) -> Plan:
        self.status.update(currentRevision=current, traffic=traffic,
                           url=build.service_url(self.observed.obj))
        if canary:
            self.status["canaryRevision"] = canary
        else:
            self.status.pop("canaryRevision", None)
        lives = {name: self.observed.child("Deployment", name) for name in counts}
        ready = {name: rollout.ready_replicas(live) for name, live in lives.items()}
        self.status["readyReplicas"] = sum(ready.values())
        rolling = [name for name, live in lives.items()
                   if live is None or not rollout.rolled_out(live, counts[name])]
        split = (f" Canary {canary} gets {traffic[-1]['percent']}% of the traffic."
                 if canary else "")
        if rolling:
            self.st.condition(C.PROGRESSING, TRUE, R.ROLLING_OUT, f"Waiting for revision "
                              f"{', '.join(rolling)} to become available.{split}")
        else:
            self.st.condition(C.PROGRESSING, FALSE, R.AVAILABLE,
                              f"All revisions are rolled out.{split}")
        if ready[current] > 0:
            self.st.condition(C.READY, TRUE, R.AVAILABLE, f"Revision {current} serves at "
                              f"{self.status['url']} with {ready[current]} ready replica(s).")
        elif self.st.is_true(C.BUDGET_EXCEEDED) and all(n == 0 for n in counts.values()):
            self.st.condition(C.READY, FALSE, R.BUDGET_EXHAUSTED, f"Revision {current} gets "
                              "no replica while its CreditBudget holds scale-ups (see the "
                              "BudgetExceeded condition).")
        elif all(n == 0 for n in counts.values()):
            self.st.condition(C.READY, TRUE, R.SCALED_TO_ZERO, f"Revision {current} is scaled "
                              "to zero; it starts on the next request.")
        else:
            self.st.condition(C.READY, FALSE, R.REPLICAS_UNAVAILABLE,
                              f"No ready replica of revision {current} yet.")
        return finish(self.st, self.problems, Plan(
            status=self.status, children=self.children, prune=PRUNED,
            requeue_after=self.requeue_after))


# --- the end of a pass ---------------------------------------------------------------------

def not_serving(st: StatusBuilder, reason: str, message: str) -> Plan:
    """The source cannot be served: keep what runs (no children planned, nothing pruned),
    say why nothing new is rolled out."""
    st.condition(C.PROGRESSING, FALSE, reason, message)
    if not st.status.get("currentRevision"):
        st.condition(C.READY, FALSE, reason, message)
    problems = [] if reason == R.SOURCE_NOT_READY else [(reason, message)]
    return finish(st, problems, Plan(status=st.status))


def finish(st: StatusBuilder, problems: list[tuple[str, str]], plan: Plan) -> Plan:
    """Degraded from the problems, Unknown for conditions not decided yet, the observed
    generation, and an Event per transition (a Warning for Degraded=True)."""
    if problems:
        st.condition(C.DEGRADED, TRUE, problems[0][0], " ".join(m for _, m in problems))
    else:
        st.condition(C.DEGRADED, FALSE, "AsExpected", "No problem detected.")
    for type_ in (C.READY, C.PROGRESSING, C.ROLLED_BACK):
        if not any(c["type"] == type_ for c in st.status["conditions"]):
            st.condition(type_, UNKNOWN, "Reconciling", "Not observed yet.")
    st.status["observedGeneration"] = st.generation
    st.transition_events(WARNING_TYPES, QUIET)
    plan.status, plan.events = st.status, [*plan.events, *st.events]
    return plan


def plan(spec: ModelDeploymentSpec, observed: Observed, facts: Facts) -> Plan:
    """The plan of one pass over a ModelDeployment."""
    return _Pass(spec, observed, facts).run()


def on_error(observed: Observed, error: Exception, facts: Facts) -> Plan:
    """An invalid spec (Ready and Progressing False, Degraded True: a Warning) or a source
    not ready yet (``not_serving``: what runs stays; the frame requeues)."""
    meta = observed.obj["metadata"]
    st = StatusBuilder(observed.status, meta.get("generation"), facts.now_iso)
    if isinstance(error, DependencyNotReady):
        return not_serving(st, error.reason, str(error))
    st.condition(C.READY, FALSE, R.INVALID_SPEC, str(error))
    st.condition(C.PROGRESSING, FALSE, R.INVALID_SPEC, str(error))
    return finish(st, [(R.INVALID_SPEC, str(error))], Plan(status=st.status))
