"""Facts about the platform a plan may depend on: operator settings, the cluster's optional
APIs (found by discovery), and the time of the pass. Plans read time only from here."""
from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from arclight.core.costs import Metering, RunClaim

HPA_VERSIONS = ("autoscaling/v2", "autoscaling/v2beta2")
KEDA_GROUP = "keda.sh"
GATEWAY_GROUP = "gateway.networking.k8s.io"


@dataclass(frozen=True)
class Capabilities:
    """Optional APIs found on the server (``None``: that API is missing)."""

    hpa_api_version: str | None = "autoscaling/v2"
    keda_api_version: str | None = None
    gateway_api_version: str | None = None
    job_suspend: bool = True
    job_ttl: bool = True


def from_groups(groups: Mapping[str, Sequence[str]], server_minor: int = 99) -> Capabilities:
    """Decide from ``{group: [version, ...]}`` and the server's minor version.

    The HPA version is the newest of ``autoscaling/v2`` and ``v2beta2``; KEDA and the
    Gateway API are taken at their preferred (first listed) version; Job ``suspend`` exists
    from Kubernetes 1.21 (older servers drop the field).
    """
    autoscaling = set(groups.get("autoscaling", ()))
    hpa = next((v for v in HPA_VERSIONS if v.split("/")[1] in autoscaling), None)

    def preferred(group: str) -> str | None:
        versions = list(groups.get(group, ()))
        return f"{group}/{versions[0]}" if versions else None

    return Capabilities(hpa_api_version=hpa, keda_api_version=preferred(KEDA_GROUP),
                        gateway_api_version=preferred(GATEWAY_GROUP),
                        job_suspend=server_minor >= 21, job_ttl=server_minor >= 21)


@dataclass(frozen=True)
class Facts:
    """What a pass knows besides the object: settings, capabilities, the time, the newest
    metering snapshot and the work that budgets with limits pay for."""

    trainer_image: str = "docker.io/arclight/trainer:dev"
    artifacts_claim: str | None = None
    mlflow_uri: str | None = None
    capabilities: Capabilities = Capabilities()
    now: datetime.datetime = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    metering: Metering = field(default_factory=Metering)
    #: The TrainingRuns each budget with concurrency limits pays for (only those budgets).
    claims: Mapping[str, tuple[RunClaim, ...]] = field(default_factory=dict)

    @property
    def now_iso(self) -> str:
        """The pass's time as an RFC 3339 timestamp with second precision."""
        return self.now.strftime("%Y-%m-%dT%H:%M:%SZ")
