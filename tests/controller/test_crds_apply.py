"""The generated CRDs on a real API server: samples apply, defaults land, bad specs are refused
naming the field, and status, printer columns, categories and scale behave as API.md says."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import yaml
from arclight.api import GROUP, KIND_MODULES, VERSION, TrainingRun, sweep, trainingrun
from arclight.framework.settings import Settings
from arclight.training.resolve import resolve
from kubernetes import client
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.controller

SAMPLES = Path(__file__).resolve().parents[2] / "crds" / "samples"


def _sample(module) -> dict:
    return yaml.safe_load((SAMPLES / f"{module.SINGULAR}.yaml").read_text())


def _create(api: client.CustomObjectsApi, module, namespace: str, body: dict) -> dict:
    if module.SCOPE == "Cluster":
        return api.create_cluster_custom_object(GROUP, VERSION, module.PLURAL, body)
    return api.create_namespaced_custom_object(GROUP, VERSION, namespace, module.PLURAL, body)


def _without_nulls(value):
    """A JSON document without null members (a merge patch drops them)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def _rejection(api: client.CustomObjectsApi, namespace: str, spec: dict) -> str:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingRun",
        "metadata": {"name": f"bad-{secrets.token_hex(3)}"},
        "spec": spec,
    }
    with pytest.raises(ApiException) as caught:
        _create(api, trainingrun, namespace, body)
    assert caught.value.status == 422, caught.value.body
    return json.loads(caught.value.body)["message"]


@pytest.mark.parametrize("module", KIND_MODULES, ids=lambda module: module.KIND)
def test_sample_applies_and_reads_back_valid(cluster, crds, namespace, module):
    api = client.CustomObjectsApi(cluster.api)
    body = _sample(module)
    if module.SCOPE == "Cluster":  # cluster-scoped names are shared between tests
        body["metadata"]["name"] = f"{body['metadata']['name']}-{namespace}"
    created = _create(api, module, namespace, body)
    try:
        model = getattr(module, module.KIND).model_validate(created)
        assert model.metadata.name == body["metadata"]["name"]
        for key, value in body["spec"].items():
            if not isinstance(value, dict):
                assert created["spec"][key] == value, key
    finally:
        if module.SCOPE == "Cluster":
            api.delete_cluster_custom_object(
                GROUP, VERSION, module.PLURAL, body["metadata"]["name"]
            )


def test_server_fills_scalar_defaults(cluster, crds, namespace):
    api = client.CustomObjectsApi(cluster.api)
    created = _create(api, trainingrun, namespace, _sample(trainingrun))
    hyperparameters = created["spec"]["hyperparameters"]
    assert hyperparameters["maxSteps"] == 4
    assert hyperparameters["learningRate"] == "auto"
    assert hyperparameters["batchSize"] == "auto"
    assert created["spec"]["algorithm"] == "auto"
    assert created["spec"]["resources"]["nodes"] == 1


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (
            {"template": "math-solver", "hyperparameters": {"batchSize": 0}},
            "spec.hyperparameters.batchSize",
        ),
        (
            {"template": "math-solver", "hyperparameters": {"batchSize": "many"}},
            "spec.hyperparameters.batchSize",
        ),
        (
            {"template": "math-solver", "hyperparameters": {"learningRate": "fast"}},
            "spec.hyperparameters.learningRate",
        ),
        ({"template": "chess-bot"}, "spec.template"),
        ({"template": "math-solver", "resources": {"memory": "lots"}}, "spec.resources.memory"),
        ({"template": "math-solver", "retry": {"maxAttempts": 0}}, "spec.retry.maxAttempts"),
        (
            {"hyperparameters": {"maxSteps": 4}},
            '"spec" must validate one and only one schema (oneOf). Found none valid',
        ),
    ],
)
def test_invalid_training_run_is_rejected_naming_the_field(cluster, crds, namespace, spec, field):
    message = _rejection(client.CustomObjectsApi(cluster.api), namespace, spec)
    assert field in message


def test_template_and_agent_together_are_rejected(cluster, crds, namespace):
    spec = {
        "template": "math-solver",
        "agent": {"image": "ghcr.io/acme/agent:1", "entrypoint": "acme.agent:run"},
    }
    message = _rejection(client.CustomObjectsApi(cluster.api), namespace, spec)
    assert '"spec" must validate one and only one schema (oneOf). Found 2 valid' in message


def test_status_subresource_keeps_the_resolved_document(cluster, crds, namespace):
    api = client.CustomObjectsApi(cluster.api)
    created = _create(api, trainingrun, namespace, _sample(trainingrun))
    name = created["metadata"]["name"]
    resolved, _ = resolve(
        created["spec"],
        name=name,
        namespace=namespace,
        uid=created["metadata"]["uid"],
        attempt=1,
        settings=Settings(),
    )
    status = {
        "observedGeneration": created["metadata"]["generation"],
        "phase": "Running",
        "resolved": resolved,
        "progress": {"step": 1, "totalSteps": 4, "percent": 25},
        "metrics": {"reward": {"mean": 0.5}},
        "cost": {"gpuSeconds": 0, "credits": 3},
        "conditions": [
            {
                "type": "Running",
                "status": "True",
                "reason": "Training",
                "message": "Step 1 of 4.",
                "lastTransitionTime": "2025-01-01T00:00:00Z",
            }
        ],
    }
    api.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, trainingrun.PLURAL, name, {"status": status}
    )
    stored = api.get_namespaced_custom_object(GROUP, VERSION, namespace, trainingrun.PLURAL, name)
    assert _without_nulls(stored["status"]["resolved"]) == _without_nulls(resolved)
    assert stored["status"]["resolved"]["hyperparameters"]["learningRate"] == "1e-4"
    assert TrainingRun.model_validate(stored).status.progress.percent == 25

    table = cluster.kubectl("get", "tr", name, "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "TEMPLATE", "PHASE", "PROGRESS", "REWARD", "CREDITS", "AGE"]
    assert table[1].split()[:6] == [name, "math-solver", "Running", "25", "0.5", "3"]


def test_category_lists_every_kind(cluster, crds, namespace):
    api = client.CustomObjectsApi(cluster.api)
    for module in KIND_MODULES:
        if module.SCOPE == "Namespaced":
            _create(api, module, namespace, _sample(module))
    output = cluster.kubectl("get", "arclight", "-n", namespace, "-o", "name").stdout
    # CreditBudgets are cluster-scoped: the category lists every one in the cluster (another
    # test's, say) beside this namespace's objects
    namespaced = [o for o in output.split() if not o.startswith("creditbudget.")]
    assert sorted(namespaced) == sorted(
        [
            "trainingrun.arclight.dev/math-demo",
            "sweep.arclight.dev/math-lr",
            "modeldeployment.arclight.dev/math-demo",
        ]
    )


def test_sweep_scale_sets_parallelism(cluster, crds, namespace):
    api = client.CustomObjectsApi(cluster.api)
    _create(api, sweep, namespace, _sample(sweep))
    cluster.kubectl("scale", "sweep", "math-lr", "-n", namespace, "--replicas", "5")
    stored = api.get_namespaced_custom_object(GROUP, VERSION, namespace, sweep.PLURAL, "math-lr")
    assert stored["spec"]["parallelism"] == 5
