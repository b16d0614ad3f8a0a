"""ModelDeployment controller: one level-triggered, idempotent ``reconcile``.

Create/update/resume handlers, a resync timer, events of the revision Deployments and
changes of TrainingRuns that a ModelDeployment serves all call ``reconcile``, which
resolves the sources to revisions and writes the children, ``status`` and Events.
"""
from __future__ import annotations

from typing import Any

import kopf
from arclight.clients import discovery
from arclight.framework import metrics
from arclight.framework import settings as arclight_settings
from arclight.api import GROUP, VERSION
from arclight.api import modeldeployment as api
from arclight.api.common import API_VERSION
from arclight.serving import builders as build
from arclight.core.names import OWNER_KIND_LABEL, OWNER_NAME_LABEL, owner_labels
from arclight.clients.kube import Kube
from arclight.framework.frame import StatusPass, reconcile_object
from arclight.core.conditions import FALSE, TRUE, UNKNOWN, now_iso, transitions
from arclight.core.errors import InvalidSpec

KIND = api.KIND
C = api.ConditionType
R = api.Reason
#: How many revisions ``status.revisions`` remembers (the live ones are always kept).
HISTORY = 10


class SourceNotReady(Exception):
    """The model of a source cannot be served yet (the message says why)."""

    def __init__(self, message: str, reason: str = R.SOURCE_NOT_READY) -> None:
        super().__init__(message)
        self.reason = reason


class Reconciler(StatusPass):
    """One pass over one ModelDeployment: resolve, apply, report."""

    def __init__(self, kube: Kube, settings: arclight_settings.Settings, md: dict[str, Any]):
        super().__init__(kube, settings, md)
        self.md = md
        self.problems: list[tuple[str, str]] = []

    # --- the pass ------------------------------------------------------------------------------

    def reconcile(self) -> None:
        try:
            spec = build.validate(self.md).model_dump(by_alias=True, mode="json",
                                                      exclude_none=True)
        except InvalidSpec as exc:
            self.condition(C.READY, FALSE, R.INVALID_SPEC, str(exc))
            self.condition(C.PROGRESSING, FALSE, R.INVALID_SPEC, str(exc))
            self.problems.append((R.INVALID_SPEC, str(exc)))
            self.finish()
            raise
        self.act({**self.md, "spec": spec}, spec)

    def act(self, md: dict[str, Any], spec: dict[str, Any]) -> None:
        runtime = build.runtime_for(spec)
        if runtime not in build.SERVABLE_RUNTIMES:
            message = (f"runtime {runtime} is not available in this operator version; use "
                       f"runtime auto or {', '.join(build.SERVABLE_RUNTIMES)}.")
            self.not_serving("RuntimeUnavailable", message)
            return
        try:
            source = self.resolve(spec["source"], "spec.source")
        except SourceNotReady as exc:
            self.not_serving(exc.reason, str(exc))
            return
        current = build.revision_name(self.name, source, runtime, spec["resources"])
        current, source = self.rollback(spec, current, source)
        canary, canary_source = self.canary(spec, runtime, current)
        self.record_revision(current, source)
        if canary:
            self.record_revision(canary, canary_source)
        self.apply_children(md, spec, runtime, (current, source),
                            (canary, canary_source) if canary else None)

    def resolve(self, source: dict[str, Any], field: str) -> dict[str, str]:
        """The servable form of a spec source; SourceNotReady while it has no model."""
        run_name = source.get("trainingRun")
        if run_name is None:
            resolved = {k: source[k] for k in ("uri", "mlflowModel") if k in source}
        else:
            run = self.kube.get(API_VERSION, "TrainingRun", run_name, self.namespace)
            if run is None:
                raise SourceNotReady(f"{field}.trainingRun: TrainingRun {run_name} does not "
                                     "exist in this namespace; create it or fix the name.")
            best = ((run.get("status") or {}).get("bestCheckpoint") or {}).get("uri")
            if not best:
                phase = (run.get("status") or {}).get("phase") or "Pending"
                raise SourceNotReady(f"Waiting for TrainingRun {run_name} (phase {phase}) to "
                                     "report a best checkpoint.")
            resolved = {"uri": best, "trainingRun": run_name}
        problem = build.source_problem(resolved)
        if problem:
            raise SourceNotReady(f"{field}: {problem}", reason="SourceUnsupported")
        return resolved

    def rollback(self, spec: dict[str, Any], current: str, source: dict[str, str]
                 ) -> tuple[str, dict[str, str]]:
        """The revision to serve: ``rollbackTo``'s recorded one, else the spec's source."""
        target = spec.get("rollbackTo")
        if not target:
            self.condition(C.ROLLED_BACK, FALSE, "SpecSource", "Serving spec.source.")
            return current, source
        record = next((r for r in self.status.get("revisions") or []
                       if r["name"] == target), None)
        if record is None:
            known = ", ".join(r["name"] for r in self.status.get("revisions") or []) or "none"
            self.condition(C.ROLLED_BACK, FALSE, "UnknownRevision",
                           f"spec.rollbackTo: revision {target} is not in status.revisions "
                           f"(known: {known}); serving spec.source.")
            self.problems.append(("UnknownRevision",
                                  f"spec.rollbackTo names unknown revision {target}."))
            return current, source
        self.condition(C.ROLLED_BACK, TRUE, R.MANUAL_ROLLBACK,
                       f"Rolled back to revision {target} (spec.rollbackTo); remove rollbackTo "
                       "to serve spec.source again.")
        return target, dict(record.get("source") or {})

    def canary(self, spec: dict[str, Any], runtime: str, current: str
               ) -> tuple[str | None, dict[str, str]]:
        canary = spec.get("canary")
        if not canary or is_rolled_back(self.status):
            return None, {}
        try:
            source = self.resolve(canary["source"], "spec.canary.source")
        except SourceNotReady as exc:
            self.problems.append((exc.reason, f"Canary not started: {exc}"))
            return None, {}
        name = build.revision_name(self.name, source, runtime, spec["resources"])
        return (None, {}) if name == current else (name, source)

    def record_revision(self, name: str, source: dict[str, str]) -> None:
        revisions = list(self.status.get("revisions") or [])
        if any(r["name"] == name for r in revisions):
            return
        revisions.append({"name": name, "source": source, "createdAt": now_iso()})
        self.status["revisions"] = revisions[-HISTORY:]
        self.event("RevisionCreated", f"Revision {name} serves {build.model_ref(source)}.")

    # --- children ------------------------------------------------------------------------------

    def apply_children(self, md: dict[str, Any], spec: dict[str, Any], runtime: str,
                       current: tuple[str, dict[str, str]],
                       canary: tuple[str, dict[str, str]] | None) -> None:
        caps = discovery.capabilities(self.kube.api)
        scaling = spec["autoscaling"]
        autoscaler, problem = build.plan_autoscaler(scaling, caps.hpa_api_version,
                                                    caps.keda_api_version)
        if problem:
            self.problems.append(("KedaRequired" if build.needs_keda(scaling)
                                  else "AutoscalingUnavailable", problem))
        keda = autoscaler is not None and autoscaler.startswith(discovery.KEDA_GROUP + "/")
        base = scaling["minReplicas"] if keda else max(1, scaling["minReplicas"])
        weight = spec["canary"]["weight"] if canary else 0
        target = current[0]
        if canary is None:
            plan = [(current, base)]
        elif caps.gateway_api_version:
            plan = [(current, base), (canary, 1 if weight else 0)]
        else:
            # The replica ratio is the traffic split: both counts stay fixed meanwhile.
            autoscaler = None
            plan = list(zip((current, canary), build.split_replicas(
                weight, max(1, scaling["minReplicas"]), scaling["maxReplicas"])))
        deployments = [self.apply_deployment(md, revision, source, runtime, replicas,
                                             managed=autoscaler is not None
                                             and revision == target)
                       for (revision, source), replicas in plan]
        live = [revision for (revision, _), _ in plan]
        for removed in self.kube.prune("apps/v1", "Deployment", self.namespace,
                                       owner_labels(KIND, self.name), keep=live):
            self.event("RevisionRetired", f"Deleted the Deployment of revision {removed}.")
        self.kube.apply(build.build_service(md))
        services = [self.name]
        if caps.gateway_api_version and canary is not None:
            for revision in live:
                self.kube.apply(build.build_revision_service(md, revision))
            services += live
            self.kube.apply(build.build_http_route(
                md, caps.gateway_api_version, [(current[0], 100 - weight), (canary[0], weight)]))
        elif caps.gateway_api_version:
            self.kube.delete(caps.gateway_api_version, "HTTPRoute", self.name, self.namespace)
        self.kube.prune("v1", "Service", self.namespace, owner_labels(KIND, self.name),
                        keep=services)
        target_replicas = next(n for (revision, _), n in plan if revision == target)
        self.apply_autoscaler(md, scaling, autoscaler, caps, target, target_replicas)
        if canary is not None and caps.gateway_api_version:
            traffic = [{"revision": current[0], "percent": 100 - weight},
                       {"revision": canary[0], "percent": weight}]
        else:
            traffic = build.traffic_by_replicas(
                [(d["metadata"]["name"], int((d.get("spec") or {}).get("replicas") or 0))
                 for d in deployments])
        self.report(current[0], canary[0] if canary else None, traffic, deployments)

    def apply_deployment(self, md: dict[str, Any], revision: str, source: dict[str, str],
                         runtime: str, replicas: int, managed: bool) -> dict[str, Any]:
        """Create or update a revision's Deployment; an autoscaled one keeps its replicas."""
        manifest = build.build_deployment(
            md, revision, source, image=self.settings.trainer_image, runtime=runtime,
            replicas=replicas, mlflow_uri=self.settings.mlflow_uri)
        if not managed:
            return self.kube.apply(manifest)
        patch = {**manifest, "spec": {k: v for k, v in manifest["spec"].items()
                                      if k != "replicas"}}
        applied = self.kube.apply(manifest, patch=patch)
        if int(applied["spec"].get("replicas") or 0) < replicas:
            applied = self.kube.patch(applied, {"spec": {"replicas": replicas}})
        return applied

    def apply_autoscaler(self, md: dict[str, Any], scaling: dict[str, Any],
                         api_version: str | None, caps: discovery.Capabilities, target: str,
                         min_replicas: int) -> None:
        """The planned autoscaler on ``target``; the other kinds are deleted."""
        keda = api_version is not None and api_version.startswith(discovery.KEDA_GROUP + "/")
        if keda:
            self.kube.apply(build.build_scaled_object(md, api_version, target, scaling))
        elif caps.keda_api_version:
            self.kube.delete(caps.keda_api_version, "ScaledObject", self.name, self.namespace)
        if api_version is not None and not keda:
            self.kube.apply(build.build_hpa(
                md, api_version, target, min_replicas, scaling["maxReplicas"],
                scaling.get("targetCPUPercent"), scaling["scaleDownDelaySeconds"]))
        elif caps.hpa_api_version:
            self.kube.delete(caps.hpa_api_version, "HorizontalPodAutoscaler", self.name,
                             self.namespace)

    # --- status --------------------------------------------------------------------------------

    def report(self, current: str, canary: str | None, traffic: list[dict[str, Any]],
               deployments: list[dict[str, Any]]) -> None:
        self.status.update(currentRevision=current, canaryRevision=canary, traffic=traffic,
                           url=build.service_url(self.md))
        by_name = {d["metadata"]["name"]: d for d in deployments}
        ready = {name: int((d.get("status") or {}).get("readyReplicas") or 0)
                 for name, d in by_name.items()}
        self.status["readyReplicas"] = sum(ready.values())
        rolling = [name for name, d in by_name.items() if not rolled_out(d)]
        split = (f" Canary {canary} gets {traffic[-1]['percent']}% of the traffic."
                 if canary else "")
        if rolling:
            self.condition(C.PROGRESSING, TRUE, R.ROLLING_OUT, f"Waiting for revision "
                           f"{', '.join(rolling)} to become available.{split}")
        else:
            self.condition(C.PROGRESSING, FALSE, R.AVAILABLE,
                           f"All revisions are rolled out.{split}")
        if ready[current] > 0:
            self.condition(C.READY, TRUE, R.AVAILABLE, f"Revision {current} serves at "
                           f"{self.status['url']} with {ready[current]} ready replica(s).")
        elif all(int((d.get("spec") or {}).get("replicas") or 0) == 0 for d in deployments):
            self.condition(C.READY, TRUE, R.SCALED_TO_ZERO, f"Revision {current} is scaled to "
                           "zero; it starts on the next request.")
        else:
            self.condition(C.READY, FALSE, R.REPLICAS_UNAVAILABLE,
                           f"No ready replica of revision {current} yet.")
        self.finish()

    def not_serving(self, reason: str, message: str) -> None:
        """The source cannot be served: keep what runs, say why nothing new is rolled out."""
        self.condition(C.PROGRESSING, FALSE, reason, message)
        if not self.status.get("currentRevision"):
            self.condition(C.READY, FALSE, reason, message)
        if reason != R.SOURCE_NOT_READY:
            self.problems.append((reason, message))
        self.finish()

    def finish(self) -> None:
        if self.problems:
            self.condition(C.DEGRADED, TRUE, self.problems[0][0],
                           " ".join(message for _, message in self.problems))
        else:
            self.condition(C.DEGRADED, FALSE, "AsExpected", "No problem detected.")
        for type_ in (C.READY, C.PROGRESSING, C.ROLLED_BACK):
            if not any(c["type"] == type_ for c in self.status["conditions"]):
                self.condition(type_, UNKNOWN, "Reconciling", "Not observed yet.")
        self.status["observedGeneration"] = self.generation
        for cond in transitions(self.old_status.get("conditions") or [],
                                self.status["conditions"]):
            metrics.TRANSITIONS.labels(KIND, cond["type"], cond["status"], cond["reason"]).inc()
            if cond["status"] != UNKNOWN and not (cond["type"] == C.DEGRADED
                                                   and cond["status"] == FALSE):
                warning = cond["status"] == TRUE and cond["type"] == C.DEGRADED
                self.event(cond["reason"], f"{cond['type']}={cond['status']}: "
                           f"{cond['message']}", warning=warning)
        if self.status != self.old_status:
            self.kube.patch_status(self.md, self.status)
        for type_, reason, message in self.events:
            self.kube.emit_event(self.md, reason, message, type_)


def rolled_out(deployment: dict[str, Any]) -> bool:
    """Whether a Deployment's pods all run its current template and are available."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    wanted = int(spec.get("replicas") or 0)
    return (int(status.get("observedGeneration") or 0) >= int(
        deployment["metadata"].get("generation") or 0)
        and int(status.get("updatedReplicas") or 0) >= wanted
        and int(status.get("availableReplicas") or 0) >= wanted)


def is_rolled_back(status: dict[str, Any]) -> bool:
    return any(c["type"] == C.ROLLED_BACK and c["status"] == TRUE
               for c in status.get("conditions") or [])


def _run(memo: kopf.Memo, namespace: str, name: str, trigger: str) -> None:
    """Reconcile the ModelDeployment ``namespace/name`` (see arclight.reconciling)."""
    settings = memo["settings"]
    reconcile_object(memo["kube"], API_VERSION, KIND, namespace, name, trigger,
                     lambda md: Reconciler(memo["kube"], settings, md).reconcile())


@kopf.on.resume(GROUP, VERSION, api.PLURAL)
@kopf.on.create(GROUP, VERSION, api.PLURAL)
@kopf.on.update(GROUP, VERSION, api.PLURAL)
def on_change(namespace: str, name: str, memo: kopf.Memo, reason: str, **_: Any) -> None:
    """Spec or metadata changed (or the operator started): reconcile."""
    _run(memo, namespace, name, getattr(reason, "value", str(reason)))


@kopf.timer(GROUP, VERSION, api.PLURAL,
            interval=arclight_settings.get().resync_seconds, initial_delay=5)
def resync(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    """Periodic resync: catches anything the watches missed."""
    try:
        _run(memo, namespace, name, "resync")
    except kopf.PermanentError:
        pass  # already reported as a condition and an Event


@kopf.on.event("apps", "v1", "deployments",
               labels={OWNER_KIND_LABEL: KIND, OWNER_NAME_LABEL: kopf.PRESENT})
def on_revision(namespace: str, labels: kopf.Labels, memo: kopf.Memo, **_: Any) -> None:
    """A revision Deployment changed (replicas became ready, ...): reconcile its owner."""
    try:
        _run(memo, namespace, labels[OWNER_NAME_LABEL], "deployments")
    except kopf.PermanentError:
        pass


@kopf.on.field(GROUP, VERSION, "trainingruns", field="status.bestCheckpoint")
def on_best_checkpoint(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    """A TrainingRun has a new best checkpoint: reconcile the ModelDeployments serving it."""
    for md in memo["kube"].list(API_VERSION, KIND, namespace, {}):
        spec = md.get("spec") or {}
        sources = [spec.get("source") or {}, (spec.get("canary") or {}).get("source") or {}]
        if any(s.get("trainingRun") == name for s in sources):
            try:
                _run(memo, namespace, md["metadata"]["name"], "trainingruns")
            except kopf.PermanentError:
                pass
