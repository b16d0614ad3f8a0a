"""The operator's API client on a real API server: server-side apply that removes what a
manifest stops saying, create-only, status writes and Events for cluster-scoped objects."""
from __future__ import annotations

import secrets

import pytest
from arclight.clients.kube import Kube
from kube import wait_until
from kubernetes import client

pytestmark = pytest.mark.controller
GROUP, VERSION = "arclight.dev", "v1alpha1"


def test_apply_owns_its_fields_and_removes_what_it_no_longer_says(cluster, namespace):
    kube = Kube(cluster.api)
    manifest = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": namespace, "labels": {"a": "1"}},
                "data": {"keep": "1", "drop": "2"}}
    kube.apply(manifest)
    kube.apply({**manifest, "data": {"keep": "1"}, "metadata": {**manifest["metadata"],
                                                               "labels": {}}})
    live = client.CoreV1Api(cluster.api).read_namespaced_config_map("c", namespace)
    assert live.data == {"keep": "1"} and not live.metadata.labels
    assert kube.create(manifest) is None  # exists: create-only leaves it alone
    assert kube.delete("v1", "ConfigMap", "c", namespace) is True
    assert kube.delete("v1", "ConfigMap", "c", namespace) is False
    assert kube.get("v1", "ConfigMap", "c", namespace) is None


def test_cluster_scoped_status_and_events_where_describe_shows_them(cluster, crds):
    kube = Kube(cluster.api)
    name = f"b-{secrets.token_hex(3)}"
    custom = client.CustomObjectsApi(cluster.api)
    budget = custom.create_cluster_custom_object(GROUP, VERSION, "creditbudgets", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CreditBudget", "metadata": {"name": name},
        "spec": {"namespaceSelector": {}, "credits": 100}})
    try:
        kube.merge_patch(budget, {"status": {"observedGeneration": 1}}, subresource="status")
        status = kube.get(f"{GROUP}/{VERSION}", "CreditBudget", name)["status"]
        assert status["observedGeneration"] == 1
        kube.emit_event(budget, "Tested", "an event about a cluster-scoped object")
        # kubectl describe lists Events by the involved object's kind, name and uid.
        selector = (f"involvedObject.kind=CreditBudget,involvedObject.name={name},"
                    f"involvedObject.uid={budget['metadata']['uid']}")
        events = wait_until(lambda: client.CoreV1Api(cluster.api).list_event_for_all_namespaces(
            field_selector=selector).items, 15, what="the Event")
        assert [e.reason for e in events] == ["Tested"]
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "creditbudgets", name)
