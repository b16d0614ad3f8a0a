"""The report channel (trainer -> operator): JSON documents in ConfigMap `<run>-report`.

In a cluster the trainer patches the ConfigMap with its service account's in-cluster
credentials over plain HTTPS (no Kubernetes client needed); outside a cluster the same
documents go to a JSON file.
"""

from __future__ import annotations

import json
import os
import ssl
import threading
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from pathlib import Path

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
KEYS = ("progress", "metrics", "bestCheckpoint", "result")


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Reporter(ABC):
    """Writes report documents; `update` merges keys into what was written before."""

    def __init__(self) -> None:
        self.documents: dict[str, dict] = {}
        self._lock = threading.Lock()

    def update(self, **documents: dict) -> None:
        """Publish documents by key (progress, metrics, bestCheckpoint, result)."""
        unknown = set(documents) - set(KEYS)
        if unknown:
            raise KeyError(f"unknown report keys {sorted(unknown)}")
        with self._lock:
            self.documents.update(documents)
            self._write(documents)

    @abstractmethod
    def _write(self, changed: dict[str, dict]) -> None: ...


class FileReporter(Reporter):
    """All documents as one JSON object in a file (rewritten atomically)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)

    def _write(self, changed: dict[str, dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(self.documents, indent=2, sort_keys=True))
        partial.replace(self.path)


class ConfigMapReporter(Reporter):
    """Merge-patches `data` of the report ConfigMap, each key a JSON document."""

    def __init__(self, name: str, namespace: str, *, server: str, token: str,
                 ca_file: str | None, timeout: float = 10.0) -> None:
        super().__init__()
        self.url = f"{server.rstrip('/')}/api/v1/namespaces/{namespace}/configmaps/{name}"
        self._token = token
        self._context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        self.timeout = timeout
        self.failures = 0

    @classmethod
    def in_cluster(cls, name: str, namespace: str) -> "ConfigMapReporter":
        """Use the pod's service-account token and CA and KUBERNETES_SERVICE_HOST/PORT."""
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        host = f"[{host}]" if ":" in host else host
        return cls(name, namespace, server=f"https://{host}:{port}",
                   token=(SA_DIR / "token").read_text().strip(), ca_file=str(SA_DIR / "ca.crt"))

    def _write(self, changed: dict[str, dict]) -> None:
        body = json.dumps({"data": {k: json.dumps(v) for k, v in changed.items()}}).encode()
        request = urllib.request.Request(self.url, data=body, method="PATCH", headers={
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/merge-patch+json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._context):
                pass
        except urllib.error.HTTPError as exc:
            self.failures += 1
            # Never echo the request (it carries the token); the status explains enough.
            print(f"report: ConfigMap patch failed: HTTP {exc.code} {exc.reason}", flush=True)
        except (urllib.error.URLError, OSError) as exc:
            self.failures += 1
            print(f"report: ConfigMap patch failed: {exc}", flush=True)


def make_reporter(report_file: str | None, config_map: str | None,
                  namespace: str | None) -> Reporter:
    """A file reporter when `report_file` is given or no cluster is around, else the ConfigMap."""
    if report_file or not config_map or "KUBERNETES_SERVICE_HOST" not in os.environ:
        return FileReporter(report_file or "report.json")
    return ConfigMapReporter.in_cluster(config_map, namespace or "default")
