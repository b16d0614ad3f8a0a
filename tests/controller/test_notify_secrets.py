"""The notifier's default Secret reader (through the operator's API client) on a real API
server: a CreditBudget's notify Secrets are read from the operator's namespace."""
from __future__ import annotations

import pytest
from arclight.api.common import SecretKeyRef
from arclight.clients.kube import Kube
from arclight.clients.ledger import Ledger
from arclight.framework.context import OperatorContext
from arclight.framework.notifier import Notifier, Undeliverable
from arclight.framework.settings import Settings
from kubernetes import client

pytestmark = pytest.mark.controller


def test_notify_secrets_come_from_the_operator_namespace(cluster, namespace):
    client.CoreV1Api(cluster.api).create_namespaced_secret(namespace, {
        "metadata": {"name": "hooks"},
        "stringData": {"url": "https://hooks.example/x?token=t\n", "blank": " "}})
    ctx = OperatorContext(settings=Settings(namespace=namespace), kube=Kube(cluster.api),
                          kinds={})
    notifier = Notifier(ctx, Ledger("postgresql://unused@127.0.0.1:1/none"))  # never reached
    read = notifier.secret_value
    assert read(SecretKeyRef(name="hooks", key="url")) == "https://hooks.example/x?token=t"
    for ref in (SecretKeyRef(name="hooks", key="other"), SecretKeyRef(name="hooks", key="blank"),
                SecretKeyRef(name="gone", key="url")):
        with pytest.raises(Undeliverable, match=f"Secret {namespace}/{ref.name} key {ref.key} "
                                                "is missing or empty"):
            read(ref)
