"""The local control plane serves what the operator relies on: structural CRDs with
server-side validation, the status subresource, and a least-privileged operator identity."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest
from kube import wait_condition, wait_until
from kubernetes import client, config
from kubernetes.client.rest import ApiException

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.controller

KIND, PLURAL, VERSION = "Widget", "widgets", "v1"


def widget_crd(group: str) -> dict:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["replicas"],
                "properties": {
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
                    "color": {"type": "string", "enum": ["red", "green"]},
                },
            },
            "status": {
                "type": "object",
                "properties": {"observedReplicas": {"type": "integer"}},
            },
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "plural": PLURAL,
                "singular": "widget",
                "listKind": "WidgetList",
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def widget_group(cluster) -> str:
    """A throwaway CRD in its own group, Established, deleted after the module."""
    ext = client.ApiextensionsV1Api(cluster.api)
    group = f"t{secrets.token_hex(4)}.test.arclight.dev"
    name = f"{PLURAL}.{group}"
    ext.create_custom_resource_definition(widget_crd(group))
    wait_condition(lambda: ext.read_custom_resource_definition(name), "Established", timeout=30)
    yield group
    ext.delete_custom_resource_definition(name)


def widget(name: str, **spec) -> dict:
    return {"apiVersion": "", "kind": KIND, "metadata": {"name": name}, "spec": spec}


def create_widget(cluster, group: str, namespace: str, body: dict) -> dict:
    body = {**body, "apiVersion": f"{group}/{VERSION}"}
    objs = client.CustomObjectsApi(cluster.api)

    # Discovery of a just-established CRD can lag by a moment: retry only a 404, briefly.
    def attempt():
        try:
            return objs.create_namespaced_custom_object(group, VERSION, namespace, PLURAL, body)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    return wait_until(attempt, timeout=15, what=f"{PLURAL}.{group} to be served", ignore=())


def test_crd_rejects_an_invalid_object_naming_the_field(cluster, widget_group, namespace):
    create_widget(cluster, widget_group, namespace, widget("ok", replicas=3, color="red"))

    for spec, field in (
        ({"replicas": 0}, "spec.replicas"),
        ({"replicas": 2, "color": "blue"}, "spec.color"),
        ({"color": "red"}, "spec.replicas"),
    ):
        with pytest.raises(ApiException) as err:
            create_widget(cluster, widget_group, namespace, widget("bad", **spec))
        assert err.value.status == 422
        assert field in err.value.body, err.value.body

    names = [
        o["metadata"]["name"]
        for o in client.CustomObjectsApi(cluster.api).list_namespaced_custom_object(
            widget_group, VERSION, namespace, PLURAL
        )["items"]
    ]
    assert names == ["ok"]


def test_status_subresource_is_separate_from_spec(cluster, widget_group, namespace):
    objs = client.CustomObjectsApi(cluster.api)
    args = (widget_group, VERSION, namespace, PLURAL, "w")
    created = create_widget(cluster, widget_group, namespace, widget("w", replicas=2))
    assert created["metadata"]["generation"] == 1

    # Status written through the main resource is dropped.
    objs.patch_namespaced_custom_object(*args, {"status": {"observedReplicas": 99}})
    assert "status" not in objs.get_namespaced_custom_object(*args)

    # Through /status it sticks, spec changes there are ignored, and generation does not move.
    objs.patch_namespaced_custom_object_status(
        *args, {"spec": {"replicas": 7}, "status": {"observedReplicas": 2}}
    )
    got = objs.get_namespaced_custom_object(*args)
    assert got["status"] == {"observedReplicas": 2}
    assert got["spec"]["replicas"] == 2
    assert got["metadata"]["generation"] == 1

    # A spec change bumps generation and keeps the status.
    objs.patch_namespaced_custom_object(*args, {"spec": {"replicas": 4}})
    got = objs.get_namespaced_custom_object(*args)
    assert got["metadata"]["generation"] == 2
    assert got["status"] == {"observedReplicas": 2}


def test_operator_kubeconfig_is_the_development_service_account(cluster):
    """`hack/cluster.sh kubeconfig --operator`: a fresh token of the tooling's own account (not
    the chart's, so installing and uninstalling the chart leaves it working), no role of its own."""
    local = subprocess.run([str(REPO / "hack" / "cluster.sh"), "kubeconfig"],
                           capture_output=True, text=True, timeout=60, check=False)
    if local.returncode != 0 or Path(local.stdout.strip()).resolve() != Path(
            cluster.kubeconfig).resolve():
        pytest.skip("KUBECONFIG names another cluster: hack/cluster.sh's account is not there")
    done = subprocess.run([str(REPO / "hack" / "cluster.sh"), "kubeconfig", "--operator"],
                          capture_output=True, text=True, timeout=60, check=True)
    path = Path(done.stdout.strip().splitlines()[-1])
    assert "token-secret" not in path.read_text() and "client-certificate" not in path.read_text()
    op = config.new_client_from_config(config_file=str(path))
    authz = client.AuthorizationV1Api(op)

    def allowed(verb: str, resource: str, group: str = "") -> bool:
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    verb=verb, resource=resource, group=group
                )
            )
        )
        return authz.create_self_subject_access_review(review).status.allowed

    assert not allowed("delete", "nodes")
    assert not allowed("create", "clusterrolebindings", "rbac.authorization.k8s.io")
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(op).list_secret_for_all_namespaces()
    assert err.value.status == 403
    assert "system:serviceaccount:arclight-system:arclight-operator-dev" in err.value.body
    op.close()
