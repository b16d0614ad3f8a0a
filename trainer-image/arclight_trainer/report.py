"""The report channel (trainer -> operator): JSON documents in ConfigMap `<run>-report`.

In a cluster the trainer patches the ConfigMap with its service account's in-cluster
credentials over plain HTTPS (no Kubernetes client needed); outside a cluster the same
documents go to a JSON file.
"""

from __future__ import annotations

import json
import os
import ssl
import statistics
import threading
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from arclight.api.trainer import (
    MAX_EVALUATIONS,
    REPORT_DOCUMENTS,
    BestCheckpoint,
    EvaluationPoint,
    EvaluationSeries,
    ProgressReport,
    ReportKey,
    RewardStats,
    TrainingMetrics,
    TrainingResult,
)
from pydantic import BaseModel

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def now() -> datetime:
    """The current UTC time, to the second (as reports carry it)."""
    return datetime.now(UTC).replace(microsecond=0)


def now_iso() -> str:
    return now().strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the documents (arclight.api.trainer.REPORT_DOCUMENTS) ---------------------------------


def progress_report(step: int, total_steps: int, epoch: int | None,
                    seconds_per_step: float) -> ProgressReport:
    """`progress` after optimizer step `step` of `total_steps`."""
    return ProgressReport(step=step, total_steps=total_steps, epoch=epoch,
                          eta_seconds=int(seconds_per_step * (total_steps - step)),
                          updated_at=now())


def step_metrics(rewards: Sequence[float], success_rate: float, *,
                 validation_reward: float | None, policy_loss: float, loss: float,
                 steps_per_second: float, samples_per_second: float,
                 rollouts_failed: int = 0, groups_dropped: int = 0) -> TrainingMetrics:
    """`metrics` of one step: reward statistics over its rollouts, losses and throughput,
    and the failed rollouts and dropped groups of the attempt so far."""
    return TrainingMetrics(
        reward=RewardStats(mean=statistics.fmean(rewards), min=min(rewards), max=max(rewards),
                           std=statistics.pstdev(rewards)),
        validation_reward=validation_reward, success_rate=success_rate,
        policy_loss=policy_loss, value_loss=None, loss=loss,
        steps_per_second=steps_per_second, samples_per_second=samples_per_second,
        gpu_utilization=None, gpu_memory_bytes=None, rollouts_failed=rollouts_failed,
        groups_dropped=groups_dropped)


def best_checkpoint(step: int, uri: str, metric: str, value: float | None) -> BestCheckpoint:
    """`bestCheckpoint`: a loadable model directory and the metric it was ranked by."""
    return BestCheckpoint(step=step, uri=uri, metric=metric, value=value)


def evaluation_series(points: Sequence[EvaluationPoint],
                      point: EvaluationPoint) -> EvaluationSeries:
    """`evaluations`: `points` plus `point` in step order, `point` replacing one at its step
    (a resumed attempt evaluating a step again); at most MAX_EVALUATIONS points, the first (the
    baseline) and the newest."""
    kept = sorted([*(p for p in points if p.step != point.step), point], key=lambda p: p.step)
    if len(kept) > MAX_EVALUATIONS:
        kept = [kept[0], *kept[len(kept) - MAX_EVALUATIONS + 1:]]
    return EvaluationSeries(points=kept)


def training_result(validation_before: float, validation_after: float, model_uri: str,
                    best_prompt: str | None = None) -> TrainingResult:
    """`result`, written once at the end."""
    return TrainingResult(validation_reward_before=validation_before,
                          validation_reward_after=validation_after, model_uri=model_uri,
                          best_prompt=best_prompt)


def document_json(document: BaseModel) -> dict:
    """A report document as the JSON object the channel carries (camelCase, every key)."""
    return document.model_dump(by_alias=True, mode="json")


def configmap_data(documents: dict[ReportKey, BaseModel]) -> dict[str, str]:
    """`data` of the report ConfigMap for `documents`: each key a JSON text."""
    return {str(key): json.dumps(document_json(doc)) for key, doc in documents.items()}


# --- writers ---------------------------------------------------------------------------------


class Reporter(ABC):
    """Writes report documents; `update` merges keys into what was written before."""

    def __init__(self) -> None:
        self.documents: dict[ReportKey, BaseModel] = {}
        self._lock = threading.Lock()

    def update(self, **documents: BaseModel) -> None:
        """Publish documents by key (progress, metrics, bestCheckpoint, evaluations, result),
        each the model REPORT_DOCUMENTS names for its key."""
        unknown = set(documents) - set(ReportKey)
        if unknown:
            raise KeyError(f"unknown report keys {sorted(unknown)}")
        changed = {ReportKey(key): document for key, document in documents.items()}
        for key, document in changed.items():
            if not isinstance(document, REPORT_DOCUMENTS[key]):
                raise TypeError(f"report {key}: expected {REPORT_DOCUMENTS[key].__name__}, "
                                f"got {type(document).__name__}")
        with self._lock:
            self.documents.update(changed)
            self._write(changed)

    @abstractmethod
    def _write(self, changed: dict[ReportKey, BaseModel]) -> None: ...


class FileReporter(Reporter):
    """All documents as one JSON object in a file (rewritten atomically)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)

    def _write(self, changed: dict[ReportKey, BaseModel]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        documents = {str(key): document_json(doc) for key, doc in self.documents.items()}
        partial.write_text(json.dumps(documents, indent=2, sort_keys=True))
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
    def in_cluster(cls, name: str, namespace: str) -> ConfigMapReporter:
        """Use the pod's service-account token and CA and KUBERNETES_SERVICE_HOST/PORT."""
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        host = f"[{host}]" if ":" in host else host
        return cls(name, namespace, server=f"https://{host}:{port}",
                   token=(SA_DIR / "token").read_text().strip(), ca_file=str(SA_DIR / "ca.crt"))

    def _write(self, changed: dict[ReportKey, BaseModel]) -> None:
        body = json.dumps({"data": configmap_data(changed)}).encode()
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
