"""Table tests of the ModelDeployment plan: observed world in, children/status/Events out.

No cluster: a tiny in-memory world plays the API server's part (what a plan applies is
observed by the next pass, pruned children disappear; the test writes what the Deployment
controller, an autoscaler and the trainer would: ready replicas, scaled counts, a run's best
checkpoint).
"""
from __future__ import annotations

import copy
import dataclasses
import datetime
from decimal import Decimal

import pytest
from arclight.api.modeldeployment import ServingResources
from arclight.core.costs import Metering, OwnerCost
from arclight.core.errors import DependencyNotReady, InvalidSpec
from arclight.core.facts import Capabilities, Facts
from arclight.core.plan import Child, Observed, Plan
from arclight.serving import builders as build
from arclight.serving import rollout
from arclight.serving.kind import CHILDREN, MODEL_DEPLOYMENT
from arclight.serving.plan import PRUNED, SOURCE_RETRY_SECONDS, on_error, plan, references, run_ref

pytestmark = pytest.mark.unit
NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
NS = "team-a"
V1 = "pvc://models/chat/v1"
V2 = "pvc://models/chat/v2"
HPA_V2 = Capabilities(hpa_api_version="autoscaling/v2")
K8S_120 = Capabilities(hpa_api_version="autoscaling/v2beta2")
NO_HPA = Capabilities(hpa_api_version=None)
KEDA = Capabilities(hpa_api_version="autoscaling/v2", keda_api_version="keda.sh/v1alpha1")
GATEWAY = Capabilities(hpa_api_version="autoscaling/v2",
                       gateway_api_version="gateway.networking.k8s.io/v1")


# --- fixture builders ------------------------------------------------------------------------

def md_spec(source=V1, **fields) -> dict:
    """A ModelDeployment spec; ``source`` a URI, ``run:NAME`` or a source dict."""
    if isinstance(source, str):
        source = ({"trainingRun": source[4:]} if source.startswith("run:")
                  else {"mlflowModel": source} if source.startswith("models:/")
                  else {"uri": source})
    return {"source": source, **fields}


def canary(source=V2, weight=10, **fields) -> dict:
    return {"source": md_spec(source)["source"], "weight": weight, **fields}


def scaling(low=1, high=3, **fields) -> dict:
    return {"minReplicas": low, "maxReplicas": high, **fields}


def training_run(name: str, best: str | None = None, phase: str = "Running") -> dict:
    status = {"phase": phase, **({"bestCheckpoint": {"uri": best, "step": 4}} if best else {})}
    return {"apiVersion": "arclight.dev/v1alpha1", "kind": "TrainingRun",
            "metadata": {"name": name, "namespace": NS}, "status": status}


def revision_of(source: str, name: str = "chat", resources: dict | None = None) -> str:
    """The revision name the plan gives a URI or MLflow source."""
    resolved = {"mlflowModel": source} if source.startswith("models:/") else {"uri": source}
    return build.revision_name(name, resolved, "transformers",
                               ServingResources.model_validate(resources or {}))


class World:
    """One ModelDeployment, its children and the TrainingRuns it reads, as the API server
    would hold them."""

    def __init__(self, caps: Capabilities = HPA_V2, name: str = "chat", **spec) -> None:
        self.md = {"apiVersion": "arclight.dev/v1alpha1", "kind": "ModelDeployment",
                   "metadata": {"name": name, "namespace": NS, "uid": "uid-md",
                                "generation": 1},
                   "spec": spec or md_spec(), "status": {}}
        self.children: dict[str, dict[str, dict]] = {}
        self.runs: dict[str, dict] = {}
        self.facts = Facts(trainer_image="img:1", capabilities=caps, now=NOW)

    # --- what users, controllers and trainers write -----------------------------------------

    def edit(self, **spec) -> None:
        """Change the spec (a key set to None is removed) and bump the generation."""
        for key, value in spec.items():
            if value is None:
                self.md["spec"].pop(key, None)
            else:
                self.md["spec"][key] = value
        self.md["metadata"]["generation"] += 1

    def run(self, name: str, best: str | None = None, phase: str = "Running") -> None:
        self.runs[name] = training_run(name, best, phase)

    def rolled_out(self, revision: str, ready: int | None = None) -> None:
        """The Deployment controller has rolled ``revision`` out (``ready`` pods ready)."""
        dep = self.deployment(revision)
        n = dep["spec"]["replicas"] if ready is None else ready
        dep["status"] = {"observedGeneration": dep["metadata"]["generation"], "replicas": n,
                         "updatedReplicas": n, "availableReplicas": n, "readyReplicas": n}

    def scale(self, revision: str, replicas: int) -> None:
        """An autoscaler (or ``kubectl scale``) sets the replicas of ``revision``."""
        dep = self.deployment(revision)
        dep["spec"]["replicas"] = replicas
        dep["metadata"]["generation"] += 1

    # --- the operator -----------------------------------------------------------------------

    def observed(self) -> Observed:
        spec = build.validate(self.md)
        refs = {ref: copy.deepcopy(self.runs.get(ref.name)) for ref in references(self.md, spec)}
        return Observed(copy.deepcopy(self.md), copy.deepcopy(self.children), refs)

    def plan(self) -> Plan:
        """One pass's plan (the frame's part: an InvalidSpec or DependencyNotReady becomes
        the kind's error plan), not applied."""
        observed = Observed(copy.deepcopy(self.md), copy.deepcopy(self.children))
        try:
            spec = build.validate(self.md)
            observed = self.observed()
            return plan(spec, observed, self.facts)
        except (InvalidSpec, DependencyNotReady) as exc:
            result = on_error(observed, exc, self.facts)
            if isinstance(exc, DependencyNotReady) and result.requeue_after is None:
                result.requeue_after = exc.retry_after
            return result

    def step(self) -> Plan:
        """One pass, its plan applied to the world (applies, patches, prunes, status)."""
        result = self.plan()
        for child in result.children:
            kind = self.children.setdefault(child.kind, {})
            seen = kind.get(child.name)
            if seen is None or not child.create_only:
                new = copy.deepcopy(child.manifest)
                if seen is not None:  # the status and generation are the server's
                    new["status"] = seen.get("status", {})
                    changed = new["spec"] != seen["spec"]
                    new["metadata"]["generation"] = seen["metadata"]["generation"] + changed
                else:
                    new["metadata"]["generation"] = 1
                kind[child.name] = new
            elif child.patch:
                seen["spec"].update(child.patch["spec"])
                seen["metadata"]["generation"] += 1
        wanted = {(c.kind, c.name) for c in result.children}
        for kind in result.prune:
            for name in list(self.children.get(kind, {})):
                if (kind, name) not in wanted:
                    del self.children[kind][name]
        self.md["status"] = copy.deepcopy(result.status)
        return result

    # --- reading the outcome ----------------------------------------------------------------

    def deployment(self, revision: str) -> dict:
        return self.children["Deployment"][revision]

    def names(self, kind: str) -> set[str]:
        return set(self.children.get(kind, {}))

    def replicas(self) -> dict[str, int]:
        return {n: d["spec"]["replicas"] for n, d in self.children.get("Deployment", {}).items()}

    def condition(self, type_: str) -> dict:
        return next(c for c in self.md["status"]["conditions"] if c["type"] == type_)

    def status_of(self, type_: str) -> tuple[str, str]:
        cond = self.condition(type_)
        return cond["status"], cond["reason"]

    @property
    def status(self) -> dict:
        return self.md["status"]


def desired(result: Plan, kind: str) -> dict[str, Child]:
    return {c.name: c for c in result.children if c.kind == kind}


def reasons(result: Plan) -> list[str]:
    return [e.reason for e in result.events]


def model_arg(deployment: dict) -> str:
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    return command[command.index("--model") + 1]


# --- sources -------------------------------------------------------------------------------

@pytest.mark.parametrize("runs, message", [
    ({}, ("spec.source.trainingRun: TrainingRun tuned does not exist in this namespace; "
          "create it or fix the name.")),
    ({"tuned": (None, "Suspended")},
     "Waiting for TrainingRun tuned (phase Suspended) to report a best checkpoint."),
    ({"tuned": (None, None)},
     "Waiting for TrainingRun tuned (phase Pending) to report a best checkpoint."),
])
def test_training_run_source_not_ready_waits_without_children(runs, message):
    world = World(**md_spec("run:tuned"))
    for name, (best, phase) in runs.items():
        world.runs[name] = training_run(name, best, phase)
        if phase is None:
            del world.runs[name]["status"]["phase"]
    with pytest.raises(DependencyNotReady) as raised:
        plan(build.validate(world.md), world.observed(), world.facts)
    assert raised.value.reason == "SourceNotReady"
    result = world.step()
    assert (result.children, result.prune) == ([], ())
    assert result.requeue_after == SOURCE_RETRY_SECONDS
    assert world.status_of("Progressing") == ("False", "SourceNotReady")
    assert world.condition("Progressing")["message"] == message
    assert world.status_of("Ready") == ("False", "SourceNotReady")
    assert world.status_of("Degraded") == ("False", "AsExpected")
    assert world.status_of("RolledBack") == ("Unknown", "Reconciling")
    assert world.status["observedGeneration"] == 1
    assert not any(e.warning for e in result.events)
    assert "Degraded" not in {e.message.split("=")[0] for e in result.events}


def test_training_run_checkpoint_is_served_once_reported():
    world = World(**md_spec("run:tuned"))
    world.run("tuned")
    world.step()
    world.run("tuned", best="pvc://artifacts/runs/tuned/step-4")
    result = world.step()
    revision = world.status["currentRevision"]
    assert world.status["revisions"] == [{
        "name": revision, "createdAt": "2026-12-01T12:00:00Z",
        "source": {"uri": "pvc://artifacts/runs/tuned/step-4", "trainingRun": "tuned"}}]
    assert revision == revision_of("pvc://artifacts/runs/tuned/step-4")
    assert model_arg(world.deployment(revision)) == "/models/runs/tuned/step-4"
    assert "RevisionCreated" in reasons(result)
    assert world.status_of("Progressing") == ("True", "RollingOut")


def test_source_lost_while_serving_keeps_what_runs():
    world = World(**md_spec("run:tuned"))
    world.run("tuned", best="pvc://artifacts/runs/tuned/step-4")
    world.step()
    serving = world.status["currentRevision"]
    world.rolled_out(serving)
    world.step()
    del world.runs["tuned"]
    result = world.step()
    assert (result.children, result.prune) == ([], ())
    assert world.names("Deployment") == {serving}
    assert world.status["currentRevision"] == serving
    assert world.status_of("Ready") == ("True", "Available")  # what runs still serves
    assert world.status_of("Progressing") == ("False", "SourceNotReady")


@pytest.mark.parametrize("spec, reason, text", [
    (md_spec("file:///tmp/model"), "SourceUnsupported",
     "spec.source: model file:///tmp/model cannot be mounted into a serving pod"),
    (md_spec(V1, runtime="vllm"), "RuntimeUnavailable",
     ("runtime vllm is not available in this operator version; use runtime auto or "
      "transformers.")),
])
def test_unservable_source_or_runtime_is_degraded_without_children(spec, reason, text):
    world = World(**spec)
    result = world.step()
    assert (result.children, result.prune, result.requeue_after) == ([], (), None)
    assert world.status_of("Progressing") == ("False", reason)
    assert world.status_of("Ready") == ("False", reason)
    assert world.status_of("Degraded") == ("True", reason)
    assert world.condition("Degraded")["message"].startswith(text)
    assert [e.reason for e in result.events if e.warning] == [reason]


def test_references_are_the_source_and_canary_runs():
    spec = build.validate({"metadata": {"name": "chat"}, "spec": md_spec(
        "run:a", canary=canary("run:b"))})
    assert references({"metadata": {"namespace": NS}}, spec) == [run_ref(NS, "a"),
                                                                   run_ref(NS, "b")]
    same = build.validate({"metadata": {"name": "chat"}, "spec": md_spec(
        "run:a", canary=canary("run:a"))})
    assert references({"metadata": {"namespace": NS}}, same) == [run_ref(NS, "a")]
    assert references({"metadata": {"namespace": NS}}, build.validate(
        {"metadata": {"name": "chat"}, "spec": md_spec(V1)})) == []


# --- a served source -----------------------------------------------------------------------

def test_ready_source_desires_deployment_service_and_hpa():
    world = World(**md_spec(V1, autoscaling=scaling(1, 3, targetCPUPercent=70)))
    result = world.step()
    revision = revision_of(V1)
    assert set(desired(result, "Deployment")) == {revision}
    assert set(desired(result, "Service")) == {"chat"}
    (hpa,) = desired(result, "HorizontalPodAutoscaler").values()
    assert hpa.manifest["apiVersion"] == "autoscaling/v2"
    assert hpa.manifest["spec"]["scaleTargetRef"]["name"] == revision
    assert (hpa.manifest["spec"]["minReplicas"], hpa.manifest["spec"]["maxReplicas"]) == (1, 3)
    assert hpa.manifest["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert not any(c.create_only for c in result.children)
    assert result.prune == PRUNED
    dep = world.deployment(revision)
    assert dep["spec"]["replicas"] == 1 and model_arg(dep) == "/models/chat/v1"
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "img:1"
    assert dep["metadata"]["ownerReferences"][0]["uid"] == "uid-md"
    assert world.status["currentRevision"] == revision
    assert "canaryRevision" not in world.status
    assert None not in world.status.values()  # a None would be a status patch every pass
    assert world.status["traffic"] == [{"revision": revision, "percent": 100}]
    assert world.status["url"] == f"http://chat.{NS}.svc.cluster.local"
    assert world.status["readyReplicas"] == 0
    assert world.status["revisions"] == [{"name": revision, "source": {"uri": V1},
                                          "createdAt": "2026-12-01T12:00:00Z"}]
    assert world.status_of("Ready") == ("False", "ReplicasUnavailable")
    assert world.status_of("Progressing") == ("True", "RollingOut")
    assert world.status_of("Degraded") == ("False", "AsExpected")
    assert world.status_of("RolledBack") == ("False", "SpecSource")
    assert reasons(result)[0] == "RevisionCreated"
    assert result.events[0].message == f"Revision {revision} serves {V1}."


def test_mlflow_source_is_served_with_the_tracking_uri():
    world = World(**md_spec("models:/chat@prod"))
    world.facts = Facts(trainer_image="img:1", mlflow_uri="http://mlflow:5000", now=NOW)
    world.step()
    dep = world.deployment(revision_of("models:/chat@prod"))
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert model_arg(dep) == "models:/chat@prod"
    assert {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow:5000"} in container["env"]


@pytest.mark.parametrize("deployment_status, ready, progressing, ready_replicas", [
    ({}, ("False", "ReplicasUnavailable"), ("True", "RollingOut"), 0),
    ({"observedGeneration": 1, "updatedReplicas": 1, "availableReplicas": 1,
      "readyReplicas": 1}, ("True", "Available"), ("False", "Available"), 1),
    ({"observedGeneration": 0, "updatedReplicas": 1, "availableReplicas": 1,
      "readyReplicas": 1}, ("True", "Available"), ("True", "RollingOut"), 1),
    ({"observedGeneration": 1, "updatedReplicas": 1, "availableReplicas": 0,
      "readyReplicas": 0}, ("False", "ReplicasUnavailable"), ("True", "RollingOut"), 0),
])
def test_ready_and_progressing_follow_the_deployment_status(deployment_status, ready,
                                                            progressing, ready_replicas):
    world = World()
    world.step()
    revision = world.status["currentRevision"]
    world.deployment(revision)["status"] = deployment_status
    world.step()
    assert world.status_of("Ready") == ready
    assert world.status_of("Progressing") == progressing
    assert world.status["readyReplicas"] == ready_replicas
    if ready[0] == "True":
        assert world.condition("Ready")["message"] == (
            f"Revision {revision} serves at http://chat.{NS}.svc.cluster.local with 1 ready "
            "replica(s).")
    else:
        assert world.condition("Progressing")["message"] == \
            f"Waiting for revision {revision} to become available."


def test_transitions_become_events_once():
    world = World()
    first = world.step()
    assert reasons(first) == ["RevisionCreated", "RollingOut", "ReplicasUnavailable",
                              "SpecSource"]  # Degraded=False is quiet
    world.rolled_out(world.status["currentRevision"])
    second = world.step()
    assert sorted(reasons(second)) == ["Available", "Available"]
    assert world.step().events == []
    status = copy.deepcopy(world.status)
    assert world.step().status == status  # a steady state writes nothing


def test_changed_source_rolls_a_new_revision_and_retires_the_old_one():
    world = World()
    world.step()
    world.edit(source={"uri": V2})
    result = world.step()
    old, new = revision_of(V1), revision_of(V2)
    assert world.names("Deployment") == {new}
    assert f"Deleted the Deployment of revision {old}." in [e.message for e in result.events]
    assert [r["name"] for r in world.status["revisions"]] == [old, new]
    assert world.status["observedGeneration"] == 2


def test_invalid_spec_sets_conditions_and_keeps_children():
    world = World()
    world.step()
    serving = world.status["currentRevision"]
    world.edit(source={"uri": V1, "trainingRun": "tuned"})
    result = world.step()
    assert (result.children, result.prune, result.requeue_after) == ([], (), None)
    assert world.names("Deployment") == {serving}
    message = world.condition("Degraded")["message"]
    assert message.startswith("spec.source: ") and "exactly one of" in message
    for type_ in ("Ready", "Progressing", "Degraded"):
        assert world.condition(type_)["reason"] == "InvalidSpec"
        assert world.condition(type_)["observedGeneration"] == 2
    assert world.status_of("Degraded")[0] == "True"
    assert world.status["currentRevision"] == serving  # the rest of the status stays
    assert [e.reason for e in result.events if e.warning] == ["InvalidSpec"]


def test_on_error_for_an_invalid_name():
    world = World(name="x" * 60)
    result = world.step()
    assert result.children == []
    assert world.status_of("Ready") == ("False", "InvalidSpec")
    assert world.condition("Ready")["message"].startswith("metadata.name:")
    assert world.status_of("RolledBack") == ("Unknown", "Reconciling")


# --- autoscaling ---------------------------------------------------------------------------

@pytest.mark.parametrize("caps, spec_scaling, kind, api_version, problem", [
    (HPA_V2, scaling(1, 3), "HorizontalPodAutoscaler", "autoscaling/v2", None),
    (K8S_120, scaling(2, 5), "HorizontalPodAutoscaler", "autoscaling/v2beta2", None),
    (KEDA, scaling(1, 3, targetCPUPercent=60), "HorizontalPodAutoscaler", "autoscaling/v2",
     None),
    (KEDA, scaling(0, 4, targetConcurrency=3), "ScaledObject", "keda.sh/v1alpha1", None),
    (KEDA, scaling(1, 4, targetConcurrency=3), "ScaledObject", "keda.sh/v1alpha1", None),
    (KEDA, scaling(0, 2), "ScaledObject", "keda.sh/v1alpha1", "KedaRequired"),
    (K8S_120, scaling(0, 2, targetConcurrency=2), "HorizontalPodAutoscaler",
     "autoscaling/v2beta2", "KedaRequired"),
    (NO_HPA, scaling(1, 3), None, None, "AutoscalingUnavailable"),
])
def test_autoscaler_follows_the_spec_and_the_clusters_apis(caps, spec_scaling, kind,
                                                           api_version, problem):
    world = World(caps, **md_spec(V1, autoscaling=spec_scaling))
    result = world.step()
    scalers = [c for c in result.children
               if c.kind in ("HorizontalPodAutoscaler", "ScaledObject")]
    assert [(c.kind, c.manifest["apiVersion"]) for c in scalers] == \
        ([(kind, api_version)] if kind else [])
    revision = world.status["currentRevision"]
    for scaler in scalers:
        assert scaler.manifest["spec"]["scaleTargetRef"]["name"] == revision
    if problem:
        assert world.status_of("Degraded") == ("True", problem)
    else:
        assert world.status_of("Degraded") == ("False", "AsExpected")


def test_keda_scales_to_zero():
    world = World(KEDA, **md_spec(V1, autoscaling=scaling(0, 4, targetConcurrency=3)))
    result = world.step()
    (scaled,) = desired(result, "ScaledObject").values()
    assert scaled.manifest["spec"]["minReplicaCount"] == 0
    revision = world.status["currentRevision"]
    assert world.replicas() == {revision: 0}
    assert "HorizontalPodAutoscaler" not in world.children
    world.rolled_out(revision)
    world.step()
    assert world.status_of("Ready") == ("True", "ScaledToZero")
    assert world.condition("Ready")["message"] == \
        f"Revision {revision} is scaled to zero; it starts on the next request."
    world.scale(revision, 2)  # a request arrived: KEDA scales up
    world.rolled_out(revision)
    world.step()
    assert world.replicas() == {revision: 2}
    assert world.status_of("Ready") == ("True", "Available")


def test_scale_to_zero_without_keda_runs_one_replica_on_cpu():
    world = World(K8S_120, **md_spec("models:/lazy@prod", autoscaling=scaling(
        0, 2, targetConcurrency=2)))
    result = world.step()
    assert world.replicas() == {world.status["currentRevision"]: 1}
    (hpa,) = desired(result, "HorizontalPodAutoscaler").values()
    assert hpa.manifest["spec"]["minReplicas"] == 1
    assert "KEDA" in world.condition("Degraded")["message"]
    assert [e.reason for e in result.events if e.warning] == ["KedaRequired"]


def test_autoscaled_replicas_are_kept_not_reset():
    world = World(**md_spec(V1, autoscaling=scaling(2, 5)))
    world.step()
    revision = world.status["currentRevision"]
    assert world.replicas() == {revision: 2}
    world.scale(revision, 4)  # the HPA scaled up
    result = world.step()
    (dep,) = desired(result, "Deployment").values()
    assert not dep.create_only and dep.manifest["spec"]["replicas"] == 4  # applied as is
    assert world.replicas() == {revision: 4}
    world.scale(revision, 1)  # below the minimum (kubectl scale)
    result = world.step()
    (dep,) = desired(result, "Deployment").values()
    assert dep.create_only and dep.patch == {"spec": {"replicas": 2}}
    assert world.replicas() == {revision: 2}
    (dep,) = desired(world.step(), "Deployment").values()
    assert not dep.create_only and dep.manifest["spec"]["replicas"] == 2


# --- canary --------------------------------------------------------------------------------

@pytest.mark.parametrize("weight, low, high, stable_n, canary_n, percents", [
    (10, 1, 3, 2, 1, (67, 33)),
    (50, 1, 3, 1, 1, (50, 50)),
    (25, 1, 10, 3, 1, (75, 25)),
    (30, 4, 10, 7, 3, (70, 30)),
    (0, 1, 3, 1, 0, (100, 0)),
    (100, 2, 3, 0, 2, (0, 100)),
])
def test_canary_without_gateway_api_splits_by_replicas(weight, low, high, stable_n, canary_n,
                                                       percents):
    world = World(**md_spec(V1, autoscaling=scaling(low, high)))
    world.step()
    stable = world.status["currentRevision"]
    assert "HorizontalPodAutoscaler" in world.children
    world.edit(canary=canary(V2, weight))
    result = world.step()
    candidate = revision_of(V2)
    assert world.status["canaryRevision"] == candidate
    assert world.status["currentRevision"] == stable
    assert world.replicas() == {stable: stable_n, candidate: canary_n}
    assert world.status["traffic"] == [{"revision": stable, "percent": percents[0]},
                                       {"revision": candidate, "percent": percents[1]}]
    assert "HorizontalPodAutoscaler" not in desired(result, "HorizontalPodAutoscaler")
    assert world.names("HorizontalPodAutoscaler") == set()  # counts are fixed meanwhile
    assert world.names("Service") == {"chat"} and "HTTPRoute" not in world.children
    assert model_arg(world.deployment(candidate)) == "/models/chat/v2"
    assert world.condition("Progressing")["message"].endswith(
        f" Canary {candidate} gets {percents[1]}% of the traffic.")
    assert [r["name"] for r in world.status["revisions"]] == [stable, candidate]


def test_replica_split_resets_a_count_the_autoscaler_changed():
    world = World(**md_spec(V1, autoscaling=scaling(1, 3)))
    world.step()
    stable = world.status["currentRevision"]
    world.scale(stable, 3)  # the HPA scaled up just before the canary started
    world.edit(canary=canary(V2, 10))
    result = world.step()
    assert desired(result, "Deployment")[stable].patch == {"spec": {"replicas": 2}}
    assert world.replicas() == {stable: 2, revision_of(V2): 1}


def test_canary_with_gateway_api_splits_by_route_weights():
    world = World(GATEWAY, **md_spec(V1, autoscaling=scaling(2, 5)))
    world.step()
    stable = world.status["currentRevision"]
    assert world.names("HTTPRoute") == set()
    world.edit(canary=canary(V2, 10))
    result = world.step()
    candidate = revision_of(V2)
    (route,) = desired(result, "HTTPRoute").values()
    assert route.manifest["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route.manifest["spec"]["rules"][0]["backendRefs"] == [
        {"name": stable, "port": 80, "weight": 90},
        {"name": candidate, "port": 80, "weight": 10}]
    assert world.names("Service") == {"chat", stable, candidate}
    assert world.replicas() == {stable: 2, candidate: 1}
    (hpa,) = desired(result, "HorizontalPodAutoscaler").values()
    assert hpa.manifest["spec"]["scaleTargetRef"]["name"] == stable
    assert hpa.manifest["spec"]["minReplicas"] == 2
    assert world.status["traffic"] == [{"revision": stable, "percent": 90},
                                       {"revision": candidate, "percent": 10}]
    # Promoted: the route and the revision Services go, the old revision is retired.
    world.edit(source={"uri": V2}, canary=None)
    result = world.step()
    assert world.names("HTTPRoute") == set() and world.names("Service") == {"chat"}
    assert world.names("Deployment") == {candidate}
    assert "RevisionRetired" in reasons(result)
    assert world.status["traffic"] == [{"revision": candidate, "percent": 100}]
    assert "canaryRevision" not in world.status


def test_canary_at_weight_zero_with_gateway_api_runs_no_canary_pod():
    world = World(GATEWAY, **md_spec(V1, canary=canary(V2, 0)))
    world.step()
    assert world.replicas() == {revision_of(V1): 1, revision_of(V2): 0}


def test_canary_source_not_ready_serves_the_stable_revision():
    world = World(**md_spec(V1, canary=canary("run:next")))
    world.run("next")
    result = world.step()
    assert world.names("Deployment") == {revision_of(V1)}
    assert "canaryRevision" not in world.status
    assert world.status_of("Degraded") == ("True", "SourceNotReady")
    assert world.condition("Degraded")["message"] == (
        "Canary not started: Waiting for TrainingRun next (phase Running) to report a best "
        "checkpoint.")
    assert result.requeue_after == SOURCE_RETRY_SECONDS
    world.run("next", best="pvc://artifacts/next/step-2")
    world.step()
    assert world.status["canaryRevision"] == revision_of("pvc://artifacts/next/step-2")
    assert world.status_of("Degraded") == ("False", "AsExpected")


def test_canary_of_the_current_model_is_no_canary():
    world = World(**md_spec(V1, canary=canary(V1)))
    world.step()
    assert world.names("Deployment") == {revision_of(V1)}
    assert "canaryRevision" not in world.status


# --- rollback ------------------------------------------------------------------------------

def test_rollback_to_a_known_revision_then_an_unknown_one():
    world = World()
    world.step()
    stable = world.status["currentRevision"]
    world.edit(source={"uri": V2}, canary=canary("pvc://models/chat/v3"))
    world.step()
    newer = revision_of(V2)
    assert world.names("Deployment") == {newer, revision_of("pvc://models/chat/v3")}
    world.edit(rollbackTo=stable)
    result = world.step()
    assert world.status["currentRevision"] == stable
    assert "canaryRevision" not in world.status  # a rollback stops the canary
    assert world.names("Deployment") == {stable}
    assert model_arg(world.deployment(stable)) == "/models/chat/v1"
    assert world.status_of("RolledBack") == ("True", "ManualRollback")
    assert world.condition("RolledBack")["message"] == (
        f"Rolled back to revision {stable} (spec.rollbackTo); remove rollbackTo to serve "
        "spec.source again.")
    assert reasons(result).count("RevisionRetired") == 2
    assert (desired(result, "HorizontalPodAutoscaler")["chat"].manifest["spec"]
            ["scaleTargetRef"]["name"]) == stable

    world.edit(rollbackTo="chat-00000000")
    world.step()
    assert world.status_of("RolledBack") == ("False", "UnknownRevision")
    known = ", ".join(r["name"] for r in world.status["revisions"])
    assert world.condition("RolledBack")["message"] == (
        f"spec.rollbackTo: revision chat-00000000 is not in status.revisions (known: {known}); "
        "serving spec.source.")
    assert world.status_of("Degraded") == ("True", "UnknownRevision")
    assert world.condition("Degraded")["message"] == \
        "spec.rollbackTo names unknown revision chat-00000000."
    assert world.status["currentRevision"] == newer  # spec.source again, with its canary
    assert world.status["canaryRevision"] == revision_of("pvc://models/chat/v3")


def test_rollback_with_no_history_names_none():
    world = World(**md_spec(V1, rollbackTo="chat-00000000"))
    world.step()
    assert "(known: none)" in world.condition("RolledBack")["message"]


# --- history -------------------------------------------------------------------------------

def test_history_keeps_the_newest_revisions_and_the_live_ones():
    revisions = [{"name": f"r{i}", "source": {"uri": f"pvc://m/{i}"}, "createdAt": "t"}
                 for i in range(10)]
    assert rollout.record_revision(revisions, "r3", {"uri": "x"}, "now") is None
    added = rollout.record_revision(revisions, "r10", {"uri": "pvc://m/10"}, "now",
                                    live=["r10"])
    assert [r["name"] for r in added] == [f"r{i}" for i in range(1, 11)]
    assert added[-1] == {"name": "r10", "source": {"uri": "pvc://m/10"}, "createdAt": "now"}
    kept = rollout.record_revision(revisions, "r10", {"uri": "pvc://m/10"}, "now",
                                   live=["r0", "r10"])
    assert [r["name"] for r in kept] == ["r0"] + [f"r{i}" for i in range(2, 11)]


def test_status_revisions_are_capped_at_ten():
    world = World()
    for i in range(12):
        world.edit(source={"uri": f"pvc://models/chat/v{i}"})
        world.step()
    names = [r["name"] for r in world.status["revisions"]]
    assert len(names) == rollout.HISTORY and names[-1] == world.status["currentRevision"]
    assert names == [revision_of(f"pvc://models/chat/v{i}") for i in range(2, 12)]


# --- the kind ------------------------------------------------------------------------------

def test_kind_owns_every_pruned_kind_and_watches_training_runs():
    assert {c.kind for c in CHILDREN if c.prune} == set(PRUNED)
    assert [c.kind for c in CHILDREN if not c.prune] == ["Pod"]  # observed for metering
    assert MODEL_DEPLOYMENT.kind == "ModelDeployment" and MODEL_DEPLOYMENT.namespaced
    assert [(w.group, w.kind) for w in MODEL_DEPLOYMENT.watches] == [
        ("arclight.dev", "TrainingRun")]
    optional = {c.kind: c.version for c in CHILDREN if c.group not in ("", "apps")}
    assert optional == {"HorizontalPodAutoscaler": "", "ScaledObject": "", "HTTPRoute": ""}


def test_cost_of_its_replicas_comes_from_the_meter_and_metered_pods_are_held():
    world = World()
    world.facts = dataclasses.replace(world.facts, metering=Metering(
        enabled=True, owners={"uid-md": OwnerCost(Decimal(7200 * 3 + 1800), 3600)}))
    plan = world.step()
    assert plan.status["cost"] == {"gpuSeconds": 3600, "credits": 7}  # 6.5 rounds half up
    (deployment,) = [c for c in plan.children if c.kind == "Deployment"]
    meta = deployment.manifest["spec"]["template"]["metadata"]
    assert meta["finalizers"] == ["arclight.dev/metering"]
    assert meta["labels"]["arclight.dev/owner-uid"] == "uid-md"


# --- the budget's say ------------------------------------------------------------------------

def spent(enforcement: str = "hold", used: int = 1000) -> Metering:
    from arclight.core.costs import BudgetUsage
    usage = BudgetUsage(datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC), None, 1000,
                        {NS: Decimal(used) * 3600}, enforcement=enforcement)
    return Metering(enabled=True, measured_at=NOW, budgets={"team-budget": usage},
                    namespace_budgets={NS: ("team-budget",)})


def test_a_spent_budget_holds_scale_ups_never_what_runs():
    world = World(**md_spec(V1, autoscaling=scaling(1, 5)))
    world.step()
    revision = world.status["currentRevision"]
    world.scale(revision, 2)  # the HPA scaled up before the credits ran out
    world.facts = dataclasses.replace(world.facts, metering=spent())
    result = world.step()
    assert world.status_of("BudgetExceeded") == ("True", "BudgetExhausted")
    assert "scale-ups wait and resume by themselves" in world.condition(
        "BudgetExceeded")["message"]
    assert "spec.budgetRef" not in world.condition("BudgetExceeded")["message"]
    (hpa,) = desired(result, "HorizontalPodAutoscaler").values()
    assert (hpa.manifest["spec"]["minReplicas"], hpa.manifest["spec"]["maxReplicas"]) == (1, 2)
    assert world.replicas() == {revision: 2}
    assert result.requeue_after == 30.0
    world.facts = dataclasses.replace(world.facts, metering=spent(used=10))
    result = world.step()
    assert world.status_of("BudgetExceeded") == ("False", "BudgetAvailable")
    (hpa,) = desired(result, "HorizontalPodAutoscaler").values()
    assert hpa.manifest["spec"]["maxReplicas"] == 5


def test_a_new_deployment_under_a_spent_budget_gets_no_replica_and_says_why():
    world = World()
    world.facts = dataclasses.replace(world.facts, metering=spent())
    result = world.step()
    assert set(world.replicas().values()) == {0}
    assert not desired(result, "HorizontalPodAutoscaler")
    assert world.status_of("Ready") == ("False", "BudgetExhausted")
    warn = dataclasses.replace(world.facts, metering=spent("warn"))
    world.facts = warn
    world.step()
    assert set(world.replicas().values()) == {1}


def test_cost_per_thousand_requests_is_shown_once_requests_are_counted():
    world = World()
    world.facts = dataclasses.replace(world.facts, metering=Metering(
        enabled=True, owners={"uid-md": OwnerCost(Decimal(3600 * 5), 0, 0)}))
    assert world.step().status["cost"] == {"gpuSeconds": 0, "credits": 5, "requests": 0}
    world.facts = dataclasses.replace(world.facts, metering=Metering(
        enabled=True, owners={"uid-md": OwnerCost(Decimal(3600 * 5), 0, 3000)}))
    assert world.step().status["cost"] == {"gpuSeconds": 0, "credits": 5, "requests": 3000,
                                           "creditsPer1000Requests": "1.67"}
