"""Kubernetes access, the operator's only way to the API server.

Writes are server-side apply (``fieldManager=arclight``, conflicts forced: the operator owns
what it builds), create-only POSTs, merge patches (objects' metadata and status) and
deletes. Requests go through the generated client's REST layer and return plain dicts, which
is several times cheaper than the dynamic client's object wrappers at a thousand objects.
"""
from __future__ import annotations

import datetime
import functools
import json
import logging
import os
import socket
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

log = logging.getLogger(__name__)
ApiError = ApiException  # what callers outside clients/ catch
FIELD_MANAGER = "arclight"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
COMPONENT = "arclight-operator"


def load_config(pool_size: int = 32) -> client.ApiClient:
    """An ApiClient from in-cluster credentials, else from KUBECONFIG / ~/.kube/config."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)


class Kube:
    """Plain-dict access to any kind: resolve paths once, then raw REST calls."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._dynamic: DynamicClient | None = None
        self._paths: dict[tuple[str, str], tuple[str, bool]] = {}
        self._lock = threading.Lock()

    # --- paths ---------------------------------------------------------------------------

    def resource(self, api_version: str, kind: str) -> tuple[str, bool] | None:
        """``(plural, namespaced)`` of a kind, from discovery (cached); None if not served."""
        key = (api_version, kind)
        with self._lock:
            if key in self._paths:
                return self._paths[key]
        try:
            if self._dynamic is None:
                self._dynamic = DynamicClient(self.api)
            found = self._dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            return None
        with self._lock:
            self._paths[key] = (found.name, bool(found.namespaced))
        return self._paths[key]

    def path(self, api_version: str, kind: str, namespace: str | None = None,
             name: str | None = None, subresource: str | None = None) -> str:
        """The REST path of a collection or an object."""
        found = self.resource(api_version, kind)
        if found is None:
            raise ApiException(status=404, reason=f"{kind}.{api_version} is not served")
        plural, namespaced = found
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        path = f"{base}/{plural}"
        if name:
            path += f"/{quote(name)}"
        if subresource:
            path += f"/{subresource}"
        return path

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json",
                query: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One API call; the decoded JSON answer. Raises ApiException on a non-2xx status."""
        url = path + ("?" + urlencode(dict(query)) if query else "")
        _, full_url, headers, _, _ = self.api.param_serialize(
            method, url, header_params={"Content-Type": content_type,
                                        "Accept": "application/json"},
            auth_settings=["BearerToken"])
        response = self.api.call_api(method, full_url, header_params=headers, body=body,
                                     _request_timeout=30)
        data = response.read()
        if not 200 <= response.status < 300:
            exc = ApiException(status=response.status, reason=response.reason)
            exc.body = data.decode(errors="replace") if data else ""
            raise exc
        return json.loads(data) if data else {}

    # --- reads ---------------------------------------------------------------------------

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None,
            subresource: str | None = None) -> dict[str, Any] | None:
        """The object, or None when it (or its kind) does not exist."""
        try:
            return self.request("GET", self.path(api_version, kind, namespace, name,
                                                 subresource))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str | None,
             labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Objects of a kind (in a namespace, or everywhere) matching all ``labels``."""
        query = {"labelSelector": ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
                 } if labels else None
        answer = self.request("GET", self.path(api_version, kind, namespace), query=query)
        return list(answer.get("items") or [])

    # --- writes --------------------------------------------------------------------------

    def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply ``manifest`` as the operator's field manager (create or update)."""
        meta = manifest["metadata"]
        path = self.path(manifest["apiVersion"], manifest["kind"], meta.get("namespace"),
                         meta["name"])
        return self.request("PATCH", path, dict(manifest), APPLY_PATCH,
                            {"fieldManager": FIELD_MANAGER, "force": "true"})

    def create(self, manifest: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create ``manifest``; None when an object of that name already exists."""
        meta = manifest["metadata"]
        path = self.path(manifest["apiVersion"], manifest["kind"], meta.get("namespace"))
        try:
            return self.request("POST", path, dict(manifest),
                                query={"fieldManager": FIELD_MANAGER})
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise

    def merge_patch(self, obj: Mapping[str, Any], body: Mapping[str, Any],
                    subresource: str | None = None) -> dict[str, Any]:
        """Merge-patch an existing object (``obj`` gives apiVersion, kind, name, namespace)."""
        meta = obj["metadata"]
        path = self.path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"],
                         subresource)
        return self.request("PATCH", path, dict(body), MERGE_PATCH,
                            {"fieldManager": FIELD_MANAGER})

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
        """Delete (background propagation); False when it was already gone."""
        try:
            self.request("DELETE", self.path(api_version, kind, namespace, name),
                         {"propagationPolicy": "Background"})
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    def emit_event(self, obj: Mapping[str, Any], reason: str, message: str,
                   type_: str = "Normal") -> None:
        """Record an Event about ``obj`` where ``kubectl describe`` shows it (cluster-scoped
        objects: namespace ``default``). Failures are logged, never raised."""
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        involved = {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
                    "name": meta["name"], "uid": meta.get("uid")}
        if meta.get("namespace"):
            involved["namespace"] = meta["namespace"]
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
            "involvedObject": involved,
            "reason": reason, "message": message[:1024], "type": type_,
            "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
            "reportingInstance": _instance(), "firstTimestamp": now, "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.request("POST", f"/api/v1/namespaces/{quote(namespace)}/events", body)
        except ApiException as exc:
            log.warning("could not record event %s on %s: %s", reason, meta["name"], exc.reason)


@functools.cache
def _instance() -> str:
    return os.environ.get("POD_NAME") or socket.gethostname()
