"""Property tests: generated specs of every kind through validation, resolve and plan.

The documents come from the pydantic models' JSON Schemas (``strategies.from_schema``) and
from near misses of them (``strategies.near_miss``: one field of the wrong type, an unknown
field, a required field removed, a number out of range, a string outside its pattern).

1. Validation raises nothing but InvalidSpec (ValidationError for kinds without a parse
   function yet), and every InvalidSpec message starts with a field path (``spec...`` or
   ``metadata.name``) that names a field of the spec.
2. For every spec that validates, ``plan`` over an empty world, the world its first pass
   made, and (TrainingRun) that world after the trainer Job finished, returns a Plan or
   raises InvalidSpec (naming a field) or DependencyNotReady; the status the pass (or the
   kind's ``on_error``) writes fits the status model and has ``observedGeneration``, a
   ``phase`` (TrainingRun) and well-formed conditions; the children's names are valid
   Kubernetes names for their kinds.
3. ``resolve`` returns a TrainerConfig that round-trips through the JSON the trainer parses,
   or raises ResolveError naming a spec field.

The parse functions are the kinds' own (``validate_trainingrun``, ``serving.builders.validate``);
the plan properties check 1 (and 3) on their specs too. Examples per kind: TrainingRun
1000 + 600 + 300, ModelDeployment 1000 + 700, Sweep 300 (each holds a TrainingRunSpec),
CreditBudget 600; about 30 s of CPU. Derandomized: every run draws the same examples.
"""
from __future__ import annotations

import copy
import datetime
import json
import re
from typing import Any

import pytest
from arclight.api import (
    CreditBudgetSpec,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    SweepSpec,
    TrainingRunSpec,
    TrainingRunStatus,
)
from arclight.api.common import API_VERSION, DNS_SUBDOMAIN_PATTERN, REASON_PATTERN
from arclight.api.trainer import ExitCode, TrainerConfig
from arclight.api.trainingrun import DATASET_URI_PATTERN, Phase
from arclight.core.errors import DependencyNotReady, InvalidSpec
from arclight.core.facts import GATEWAY_GROUP, HPA_VERSIONS, KEDA_GROUP, Capabilities, Facts
from arclight.core.plan import Observed, Plan
from arclight.serving import builders as serving_builders
from arclight.serving import plan as serving
from arclight.training import builders as training_builders
from arclight.training import plan as training
from arclight.training.resolve import ResolveError, resolve
from arclight.training.validation import validate_trainingrun
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from strategies import branches, documents, from_schema, regex

pytestmark = pytest.mark.unit


def examples(n: int) -> settings:
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
NAMESPACE = "team-a"
SCHEMAS = {model: model.model_json_schema(by_alias=True)
           for model in (TrainingRunSpec, ModelDeploymentSpec, SweepSpec, CreditBudgetSpec)}
TR, MD = SCHEMAS[TrainingRunSpec], SCHEMAS[ModelDeploymentSpec]

#: Object names as the API server admits them (DNS subdomains of up to 253 characters),
#: mostly short DNS labels such as users write.
NAMES = st.tuples(st.integers(0, 3), regex(r"^[a-z]([-a-z0-9]*[a-z0-9])?$"),
                  regex(DNS_SUBDOMAIN_PATTERN).filter(lambda n: len(n) <= 253)
                  ).map(lambda drawn: drawn[2] if drawn[0] == 3 else drawn[1])
CAPABILITIES = st.builds(
    Capabilities,
    hpa_api_version=st.sampled_from((None, *HPA_VERSIONS)),
    keda_api_version=st.sampled_from((None, f"{KEDA_GROUP}/v1alpha1")),
    gateway_api_version=st.sampled_from((None, f"{GATEWAY_GROUP}/v1")),
    job_suspend=st.booleans(), job_ttl=st.booleans())
FACTS = st.builds(Facts, trainer_image=st.just("docker.io/arclight/trainer:1"),
                  artifacts_claim=st.sampled_from((None, "arclight-artifacts")),
                  mlflow_uri=st.sampled_from((None, "http://mlflow.mlops:5000")),
                  capabilities=CAPABILITIES, now=st.just(NOW))


DATASET_URIS = regex(DATASET_URI_PATTERN)


@st.composite
def with_agent_datasets(draw: st.DrawFn, specs: st.SearchStrategy[dict[str, Any]]
                        ) -> dict[str, Any]:
    """The one TrainingRunSpec rule the schema cannot express (a custom agent needs
    ``dataset.uri``: it has no sample dataset), kept by most specs with an agent."""
    spec = draw(specs)
    dataset = spec.get("dataset", {})
    if "agent" in spec and "uri" not in dataset and draw(st.sampled_from((True, True, False))):
        spec = {**spec, "dataset": {**dataset, "uri": draw(DATASET_URIS)}}
    return spec


TR_VALID = with_agent_datasets(from_schema(TR))
TR_DOCS = documents(TR, valid=TR_VALID)
MD_DOCS = documents(MD)
#: Mostly valid documents for the plan and resolve properties (near misses may validate too).
TR_SPECS = st.one_of(TR_VALID, TR_DOCS)
MD_SPECS = st.one_of(from_schema(MD), MD_DOCS)


# --- field paths -----------------------------------------------------------------------------

PATH = re.compile(r"^(spec|metadata)([.\[].*)?$", re.DOTALL)
SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def names_field(message: str, schema: dict[str, Any]) -> bool:
    """Whether ``message`` starts with ``PATH: `` naming a field of ``schema``: every
    segment a property or an index, except that the last may name an unknown field of an
    object (``Extra inputs are not permitted``) and a map's key ends the path."""
    path = message.split(": ", 1)[0]
    if ": " not in message or not PATH.match(path):
        return False
    if path.startswith("metadata"):
        return path == "metadata.name"
    defs, nodes, rest, pos = schema.get("$defs", {}), [schema], path[len("spec"):], 0
    while pos < len(rest):
        match = SEGMENT.match(rest, pos)
        if match is None:
            return False
        pos, key = match.end(), match.group(1)
        options = [b for node in nodes for b in branches(node, defs)]
        if any(b.get("type") == "object" and not b.get("properties") for b in options):
            return True  # a map: the rest is its key
        if key is None:
            nodes = [b["items"] for b in options if b.get("type") == "array"]
        else:
            nodes = [b["properties"][key] for b in options if key in b.get("properties", {})]
            if not nodes and pos == len(rest):
                return any("properties" in b for b in options)  # an unknown field
        if not nodes:
            return False
    return True


def assert_names_field(error: Exception, schema: dict[str, Any]) -> None:
    assert names_field(str(error), schema), f"message names no spec field: {error}"


def test_names_field_accepts_fields_and_refuses_union_tags_and_bare_messages():
    assert names_field("spec.hyperparameters.batchSize: Input should be ...", TR)
    assert names_field("spec.notify[0].url: String should match ...", TR)
    assert names_field("spec.resources.nodeSelector.a.b: Input should be ...", TR)
    assert names_field("spec.hyperparameters.typo: Extra inputs are not permitted", TR)
    assert names_field("metadata.name: too long", TR)
    assert not names_field("spec.hyperparameters.batchSize.literal['auto']: Input ...", TR)
    assert not names_field("spec.typo.deeper: Extra inputs are not permitted", TR)
    assert not names_field("dataset.format: cannot tell", TR)
    assert not names_field("something went wrong", TR)


# --- 1. validation -----------------------------------------------------------------------------

def kind_object(kind: str, name: str, spec: Any, generation: int = 1) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind,
            "metadata": {"name": name, "namespace": NAMESPACE, "uid": f"uid-{name[:8]}",
                         "generation": generation, "annotations": {}},
            "spec": spec, "status": {}}


@examples(1000)
@given(name=NAMES, spec=TR_DOCS)
def test_trainingrun_validation_refuses_only_with_a_field_path(name, spec):
    try:
        validate_trainingrun(kind_object("TrainingRun", name, spec))
    except InvalidSpec as exc:
        assert_names_field(exc, TR)


@examples(1000)
@given(name=NAMES, spec=MD_DOCS)
def test_modeldeployment_validation_refuses_only_with_a_field_path(name, spec):
    try:
        serving_builders.validate(kind_object("ModelDeployment", name, spec))
    except InvalidSpec as exc:
        assert_names_field(exc, MD)


def spec_paths(schema: dict[str, Any]) -> list[str]:
    """Every dotted field path of a spec schema (``hyperparameters.learningRate``, ...)."""
    defs, found = schema.get("$defs", {}), []

    def walk(node: dict[str, Any], prefix: str) -> None:
        for option in branches(node, defs):
            for key, sub in option.get("properties", {}).items():
                found.append(prefix + key)
                walk(sub, f"{prefix}{key}.")

    walk(schema, "")
    return sorted(set(found))


#: Rules of a Sweep's validators the schema cannot express, kept by many specs: parameters
#: name TrainingRun spec fields (most names are real ones), and ``values`` when set are
#: not empty (so that categorical parameters can validate).
SWEEP_SPECS = documents(SCHEMAS[SweepSpec], overrides={
    "SweepSpec.trainingRunTemplate": TR_VALID,
    "Parameter.values": st.lists(st.text(max_size=8), min_size=1, max_size=3),
    "Parameter.name": st.one_of(st.sampled_from(spec_paths(TR)),
                                regex(r"^[a-zA-Z][a-zA-Z0-9]*(\.[a-zA-Z][a-zA-Z0-9]*)*$"))})


EXAMPLES = {SweepSpec: 300, CreditBudgetSpec: 600}  # a Sweep holds a whole TrainingRunSpec


@pytest.mark.parametrize(("model", "specs"), [
    (SweepSpec, SWEEP_SPECS), (CreditBudgetSpec, documents(SCHEMAS[CreditBudgetSpec]))],
    ids=["Sweep", "CreditBudget"])
def test_kinds_without_a_controller_refuse_only_with_validation_errors(model, specs):
    """No parse function yet: model_validate raises ValidationError and nothing else, each
    error located at a spec field, an unknown field, or the spec itself."""
    properties = SCHEMAS[model]["properties"]

    @examples(EXAMPLES[model])
    @given(spec=specs)
    def check(spec):
        try:
            model.model_validate(spec)
        except ValidationError as exc:
            for error in exc.errors():
                assert (not error["loc"] or error["loc"][0] in properties
                        or error["type"] == "extra_forbidden"), error

    check()


# --- 2. plan -----------------------------------------------------------------------------------

RFC1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
RFC1123 = re.compile(DNS_SUBDOMAIN_PATTERN)
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def assert_well_formed(result: Plan, status_model: type, generation: int) -> None:
    """What the framework sends must be acceptable to the API server."""
    assert isinstance(result, Plan)
    status = result.status
    assert status["observedGeneration"] == generation
    status_model.model_validate(status)  # the CRD's status schema is generated from it
    for cond in status.get("conditions", []):
        assert {"type", "status", "reason", "message"} <= set(cond), cond
        assert cond["status"] in ("True", "False", "Unknown"), cond
        assert re.fullmatch(REASON_PATTERN, cond["reason"]), cond
    json.dumps([status, [c.manifest for c in result.children + result.applies]])
    for child in result.children:
        meta = child.manifest["metadata"]
        name = meta["name"]
        if child.kind == "Service":
            assert RFC1035.fullmatch(name) and len(name) <= 63, f"invalid Service name {name}"
        else:
            assert RFC1123.fullmatch(name) and len(name) <= 253, f"invalid {child.kind} {name}"
        for key, value in (meta.get("labels") or {}).items():
            assert LABEL_VALUE.fullmatch(value) and len(value) <= 63, f"label {key}={value}"


class World:
    """One object, its children and the objects it references, as the API server holds
    them; ``step`` runs one pass (the frame's part included) and applies its plan."""

    def __init__(self, obj: dict[str, Any], parse, plan, on_error, schema: dict[str, Any],
                 status_model: type, facts: Facts, refs: dict) -> None:
        self.obj, self.parse, self.plan, self.on_error = obj, parse, plan, on_error
        self.schema, self.status_model, self.facts, self.refs = schema, status_model, facts, refs
        self.children: dict[str, dict[str, dict[str, Any]]] = {}

    def step(self, spec: Any) -> Plan:
        observed = Observed(copy.deepcopy(self.obj), copy.deepcopy(self.children), self.refs)
        try:
            result = self.plan(spec, observed, self.facts)
        except (InvalidSpec, DependencyNotReady) as exc:
            if isinstance(exc, InvalidSpec):
                assert_names_field(exc, self.schema)
            result = self.on_error(observed, exc, self.facts)
        assert_well_formed(result, self.status_model, self.obj["metadata"]["generation"])
        for child in result.children:
            kind = self.children.setdefault(child.kind, {})
            if child.name not in kind or not child.create_only:
                kind[child.name] = {**copy.deepcopy(child.manifest),
                                    "status": (kind.get(child.name) or {}).get("status", {})}
            elif child.patch:
                kind[child.name].setdefault("spec", {}).update(child.patch.get("spec", {}))
        wanted = {(c.kind, c.name) for c in result.children}
        for kind_name in result.prune:
            for name in list(self.children.get(kind_name, {})):
                if (kind_name, name) not in wanted:
                    del self.children[kind_name][name]
        if result.object_patch:
            self.obj["metadata"]["annotations"].update(
                result.object_patch.get("metadata", {}).get("annotations", {}))
        self.obj["status"] = copy.deepcopy(result.status)
        return result


JOB_OUTCOMES = st.one_of(
    st.none(), st.just(("Complete", None)),
    st.tuples(st.just("Failed"), st.one_of(st.sampled_from(list(ExitCode)), st.integers(0, 255))))


def finish_job(world: World, name: str, outcome: tuple[str, int | None]) -> None:
    """The job controller and the kubelet: the attempt's Job completed or failed."""
    jobs = world.children.get("Job") or {}
    attempts = [training.attempt_of(job) for job in jobs.values()]
    if not attempts:
        return
    job_name = training_builders.job_name(name, max(attempts))
    state, code = outcome
    jobs[job_name]["status"] = {"conditions": [
        {"type": state, "status": "True", "reason": "BackoffLimitExceeded", "message": ""}]}
    if code is not None:
        world.children.setdefault("Pod", {})[f"{job_name}-x"] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{job_name}-x", "labels": {"job-name": job_name}},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "trainer", "state": {
                "terminated": {"exitCode": code, "reason": "OOMKilled" if code == 137
                               else "Error", "message": ""}}}]}}


@examples(600)
@given(name=NAMES, spec=TR_SPECS, facts=FACTS, budget=st.booleans(), outcome=JOB_OUTCOMES)
def test_trainingrun_plan_returns_a_well_formed_plan(name, spec, facts, budget, outcome):
    obj = kind_object("TrainingRun", name, spec)
    try:
        parsed = validate_trainingrun(obj)
    except InvalidSpec as exc:
        assert_names_field(exc, TR)  # property 1, for these specs too
        return
    check_resolve(parsed, name, 1, facts.mlflow_uri)  # property 3, likewise
    refs = {ref: ({"apiVersion": API_VERSION, "kind": ref.kind,
                   "metadata": {"name": ref.name}, "spec": {"credits": 100}} if budget else None)
            for ref in training.references(obj, parsed)}
    world = World(obj, validate_trainingrun, training.plan, training.on_error, TR,
                  TrainingRunStatus, facts, refs)
    for _ in range(2):
        assert world.step(parsed).status["phase"] in Phase.__args__
    if outcome is not None:
        finish_job(world, name, outcome)
        assert world.step(parsed).status["phase"] in Phase.__args__


RUN_STATES = st.sampled_from((None, "pending", "pvc://models/run/step-4", "s3://bucket/step-4"))


def training_run(name: str, best: str | None) -> dict[str, Any] | None:
    if best is None:
        return None
    status = {"phase": "Running"}
    if best != "pending":
        status = {"phase": "Succeeded", "bestCheckpoint": {"uri": best, "step": 4,
                                                           "metric": "reward"}}
    return {"apiVersion": API_VERSION, "kind": "TrainingRun",
            "metadata": {"name": name, "namespace": NAMESPACE}, "status": status}


@examples(700)
@given(name=NAMES, spec=MD_SPECS, facts=FACTS, runs=st.lists(RUN_STATES, min_size=2,
                                                              max_size=2))
def test_modeldeployment_plan_returns_a_well_formed_plan(name, spec, facts, runs):
    obj = kind_object("ModelDeployment", name, spec)
    try:
        parsed = serving_builders.validate(obj)
    except InvalidSpec as exc:
        assert_names_field(exc, MD)  # property 1, for these specs too
        return
    refs = {ref: training_run(ref.name, state)
            for ref, state in zip(serving.references(obj, parsed), runs, strict=False)}
    world = World(obj, serving_builders.validate, serving.plan, serving.on_error, MD,
                  ModelDeploymentStatus, facts, refs)
    world.step(parsed)
    for deployment in (world.children.get("Deployment") or {}).values():
        replicas = deployment["spec"].get("replicas", 1)
        deployment["status"] = {"observedGeneration": 1, "replicas": replicas,
                                "updatedReplicas": replicas, "availableReplicas": replicas,
                                "readyReplicas": replicas}
    world.step(parsed)


# --- 3. resolve --------------------------------------------------------------------------------

def check_resolve(spec: TrainingRunSpec, name: str, attempt: int, mlflow: str | None) -> None:
    try:
        resolved, config = resolve(spec, name=name, namespace=NAMESPACE, uid="uid-1",
                                   attempt=attempt, settings=Facts(mlflow_uri=mlflow))
    except ResolveError as exc:
        assert_names_field(exc, TR)
        return
    assert isinstance(config, TrainerConfig)
    assert TrainerConfig.model_validate_json(config.model_dump_json(by_alias=True)) == config
    assert json.loads(json.dumps(resolved)) == resolved


@examples(300)
@given(name=NAMES, spec=TR_SPECS, attempt=st.integers(1, 10),
       mlflow=st.sampled_from((None, "http://mlflow.mlops:5000")))
def test_resolve_gives_a_trainer_config_that_round_trips_or_names_the_field(
        name, spec, attempt, mlflow):
    """(The plan property checks this too, for its specs and Facts.)"""
    try:
        parsed = validate_trainingrun(kind_object("TrainingRun", name, spec))
    except InvalidSpec as exc:
        assert_names_field(exc, TR)
        return
    check_resolve(parsed, name, attempt, mlflow)
