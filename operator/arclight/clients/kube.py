"""Kubernetes access: apply (create-or-patch), prune, reads, status patches and Events.

Policy: create; on 409 (exists) merge-patch the fields we own (or leave it, for
create-only objects); on 404 during a patch (deleted meanwhile) create again.
"""
from __future__ import annotations

import datetime
import functools
import logging
import os
import socket
from collections.abc import Iterable, Mapping
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

log = logging.getLogger(__name__)
MERGE_PATCH = "application/merge-patch+json"
COMPONENT = "arclight-operator"


def load_config() -> client.ApiClient:
    """An ApiClient from in-cluster credentials, else from KUBECONFIG / ~/.kube/config."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


class Kube:
    """A thin wrapper over the dynamic client with the operator's apply policy."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.dynamic = DynamicClient(api)

    def _resource(self, api_version: str, kind: str) -> Any:
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None
            ) -> dict[str, Any] | None:
        """The object, or None when it does not exist (or its kind is not installed)."""
        try:
            resource = self._resource(api_version, kind)
            return resource.get(name=name, namespace=namespace).to_dict()
        except ResourceNotFoundError:
            return None
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str, labels: Mapping[str, str]
             ) -> list[dict[str, Any]]:
        """Objects of a kind in a namespace matching all ``labels``."""
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        resource = self._resource(api_version, kind)
        return [item.to_dict() for item in
                resource.get(namespace=namespace, label_selector=selector).items]

    def apply(self, manifest: Mapping[str, Any], patch: Mapping[str, Any] | None = None,
              create_only: bool = False) -> dict[str, Any]:
        """Create ``manifest``; when it exists, merge-patch ``patch`` (default: the manifest).

        With ``create_only`` an existing object is returned untouched.
        """
        resource = self._resource(manifest["apiVersion"], manifest["kind"])
        meta = manifest["metadata"]
        namespace = meta.get("namespace")
        for _ in range(2):
            try:
                return resource.create(body=dict(manifest), namespace=namespace).to_dict()
            except ApiException as exc:
                if exc.status != 409:
                    raise
            if create_only:
                existing = self.get(manifest["apiVersion"], manifest["kind"], meta["name"],
                                    namespace)
                if existing is not None:
                    return existing
                continue
            try:
                return resource.patch(body=dict(patch if patch is not None else manifest),
                                      name=meta["name"], namespace=namespace,
                                      content_type=MERGE_PATCH).to_dict()
            except ApiException as exc:
                if exc.status != 404:
                    raise
        raise RuntimeError(f"{manifest['kind']} {meta['name']} kept changing while applied")

    def patch(self, obj: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch an existing object (``obj`` gives apiVersion, kind, name, namespace)."""
        meta = obj["metadata"]
        return self._resource(obj["apiVersion"], obj["kind"]).patch(
            body=dict(body), name=meta["name"], namespace=meta.get("namespace"),
            content_type=MERGE_PATCH).to_dict()

    def delete(self, api_version: str, kind: str, name: str, namespace: str) -> bool:
        """Delete (background propagation); False when it was already gone."""
        try:
            self._resource(api_version, kind).delete(
                name=name, namespace=namespace,
                body={"propagationPolicy": "Background"})
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    def prune(self, api_version: str, kind: str, namespace: str, labels: Mapping[str, str],
              keep: Iterable[str]) -> list[str]:
        """Delete objects matching ``labels`` whose names are not in ``keep``."""
        wanted = set(keep)
        removed = []
        for item in self.list(api_version, kind, namespace, labels):
            name = item["metadata"]["name"]
            if name not in wanted and self.delete(api_version, kind, name, namespace):
                removed.append(name)
        return removed

    def patch_status(self, obj: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch the status subresource of a custom object."""
        group, version = obj["apiVersion"].split("/")
        meta = obj["metadata"]
        custom = client.CustomObjectsApi(self.api)
        plural = self._resource(obj["apiVersion"], obj["kind"]).name
        return custom.patch_namespaced_custom_object_status(
            group, version, meta["namespace"], plural, meta["name"], {"status": dict(status)})

    def emit_event(self, obj: Mapping[str, Any], reason: str, message: str,
                   type_: str = "Normal") -> None:
        """Record a Kubernetes Event about ``obj`` (failures are logged, never raised)."""
        meta = obj["metadata"]
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
                               "name": meta["name"], "namespace": meta["namespace"],
                               "uid": meta.get("uid")},
            "reason": reason, "message": message[:1024], "type": type_,
            "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
            "reportingInstance": _instance(), "firstTimestamp": now, "lastTimestamp": now,
            "count": 1,
        }
        try:
            self._resource("v1", "Event").create(body=body, namespace=meta["namespace"])
        except ApiException as exc:
            log.warning("could not record event %s on %s: %s", reason, meta["name"], exc.reason)


@functools.cache
def _instance() -> str:
    return os.environ.get("POD_NAME") or socket.gethostname()
