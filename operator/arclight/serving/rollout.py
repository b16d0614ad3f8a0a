"""ModelDeployment decisions (pure): the autoscaler, the replicas of each live revision, the
traffic they get, whether a revision is rolled out, and the revision history.

Without the Gateway API a canary's share of the traffic is its share of the replicas: the
Service ``<md>`` selects the pods of every live revision, so each replica gets about the same
share of connections (``status.traffic`` reports that share, not ``canary.weight``). While
such a split runs both replica counts are fixed, so autoscaling pauses until the canary is
promoted or removed. With the Gateway API an HTTPRoute splits requests by weight; the
canary runs one replica (none at weight 0) and the stable revision is autoscaled.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from arclight.api.modeldeployment import Autoscaling, ConditionType
from arclight.core.conditions import TRUE
from arclight.core.facts import KEDA_GROUP, Capabilities

#: How many revisions ``status.revisions`` remembers (the live ones are always kept).
HISTORY = 10


# --- autoscaling ---------------------------------------------------------------------------

def needs_keda(autoscaling: Autoscaling) -> bool:
    """Scaling to zero or on request concurrency needs KEDA."""
    return autoscaling.min_replicas == 0 or bool(autoscaling.target_concurrency)


def plan_autoscaler(autoscaling: Autoscaling, hpa_api_version: str | None,
                    keda_api_version: str | None) -> tuple[str | None, str | None]:
    """(apiVersion of the autoscaler to build, or None; a problem to report, or None).

    KEDA when the spec needs it and the cluster has it; else an HPA on CPU with at least
    one replica, and a problem that says what is missing.
    """
    if needs_keda(autoscaling) and keda_api_version:
        if autoscaling.min_replicas == 0 and not autoscaling.target_concurrency:
            return keda_api_version, ("autoscaling.minReplicas 0 needs targetConcurrency: CPU "
                                      "use cannot wake a model at zero replicas, so one "
                                      "replica is kept.")
        return keda_api_version, None
    problem = None
    if needs_keda(autoscaling):
        problem = ("autoscaling.minReplicas 0 and targetConcurrency need KEDA (keda.sh), which "
                   "this cluster lacks; install KEDA, or set minReplicas >= 1 and "
                   "targetCPUPercent. Scaling on CPU with at least one replica meanwhile.")
    if hpa_api_version is None:
        return None, ("the cluster serves neither autoscaling/v2 nor v2beta2; running "
                      "autoscaling.minReplicas replicas without autoscaling.")
    return hpa_api_version, problem


@dataclass(frozen=True)
class AutoscalerChoice:
    """The autoscaler of the current revision: its apiVersion (None: none) and a problem
    ``(reason, message)`` to report as Degraded."""

    api_version: str | None
    problem: tuple[str, str] | None = None

    @property
    def keda(self) -> bool:
        return self.api_version is not None and self.api_version.startswith(KEDA_GROUP + "/")

    @property
    def hpa(self) -> bool:
        return self.api_version is not None and not self.keda


def choose_autoscaler(autoscaling: Autoscaling, caps: Capabilities) -> AutoscalerChoice:
    """``plan_autoscaler`` on the cluster's capabilities, its problem with a reason."""
    version, problem = plan_autoscaler(autoscaling, caps.hpa_api_version, caps.keda_api_version)
    if problem is None:
        return AutoscalerChoice(version)
    reason = "KedaRequired" if needs_keda(autoscaling) else "AutoscalingUnavailable"
    return AutoscalerChoice(version, (reason, problem))


# --- replicas and traffic ------------------------------------------------------------------

def split_replicas(weight: int, min_replicas: int, max_replicas: int) -> tuple[int, int]:
    """(stable, canary) replicas whose ratio best approximates ``weight`` percent.

    Tries every total from ``max(2, minReplicas)`` to ``maxReplicas``; each side keeps at
    least one replica unless its weight is 0; ties go to fewer replicas.
    """
    if weight <= 0:
        return max(1, min_replicas), 0
    if weight >= 100:
        return 0, max(1, min_replicas)
    low = max(2, min_replicas)
    best: tuple[float, int, int] | None = None
    for total in range(low, max(low, max_replicas) + 1):
        canary = min(total - 1, max(1, round(total * weight / 100)))
        error = abs(100 * canary / total - weight)
        if best is None or error < best[0] - 1e-9:
            best = (error, total - canary, canary)
    assert best is not None
    return best[1], best[2]


def traffic_by_replicas(replicas: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    """``traffic[]`` from (revision, replicas): each revision's share of all replicas."""
    total = sum(n for _, n in replicas)
    if total == 0:
        return [{"revision": name, "percent": 100 if i == 0 else 0}
                for i, (name, _) in enumerate(replicas)]
    shares = [round(100 * n / total) for _, n in replicas]
    shares[0] = 100 - sum(shares[1:])
    return [{"revision": name, "percent": share}
            for (name, _), share in zip(replicas, shares)]


@dataclass(frozen=True)
class Placement:
    """A live revision: its replicas (the minimum when ``autoscaled``: the autoscaler owns
    the count above it) and whether the autoscaler targets it."""

    revision: str
    source: Mapping[str, str]
    replicas: int
    autoscaled: bool = False


def place(autoscaling: Autoscaling, choice: AutoscalerChoice, gateway: bool,
          current: tuple[str, Mapping[str, str]],
          canary: tuple[str, Mapping[str, str], int] | None
          ) -> tuple[list[Placement], AutoscalerChoice]:
    """The live revisions and the autoscaler that stays: ``canary`` is (revision, source,
    weight). A replica-ratio split (no Gateway API) fixes both counts: no autoscaler."""
    base = autoscaling.min_replicas if choice.keda else max(1, autoscaling.min_replicas)
    scaled = choice.api_version is not None
    if canary is None:
        return [Placement(*current, base, scaled)], choice
    revision, source, weight = canary
    if gateway:
        return [Placement(*current, base, scaled),
                Placement(revision, source, 1 if weight else 0)], choice
    stable_n, canary_n = split_replicas(weight, max(1, autoscaling.min_replicas),
                                        autoscaling.max_replicas)
    return [Placement(*current, stable_n), Placement(revision, source, canary_n)], \
        AutoscalerChoice(None, choice.problem)


def replicas_to_apply(placement: Placement, live: Mapping[str, Any] | None) -> int:
    """The count a revision's Deployment gets: fixed counts as placed; an autoscaled one
    keeps what the autoscaler set, raised to the minimum (a new one starts at it)."""
    if not placement.autoscaled or live is None:
        return placement.replicas
    return max(live_replicas(live), placement.replicas)


def live_replicas(deployment: Mapping[str, Any]) -> int:
    """``spec.replicas`` of a Deployment as read (the API server defaults it to 1)."""
    value = (deployment.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


# --- rollout state -------------------------------------------------------------------------

def rolled_out(deployment: Mapping[str, Any], replicas: int | None = None) -> bool:
    """Whether a Deployment's pods all run its current template and are available
    (``replicas``: the count it is about to get, default its own)."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    wanted = int(spec.get("replicas") or 0) if replicas is None else replicas
    return (int(status.get("observedGeneration") or 0) >= int(
        deployment["metadata"].get("generation") or 0)
        and int(status.get("updatedReplicas") or 0) >= wanted
        and int(status.get("availableReplicas") or 0) >= wanted)


def ready_replicas(deployment: Mapping[str, Any] | None) -> int:
    return int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0)


def is_rolled_back(status: Mapping[str, Any]) -> bool:
    return any(c["type"] == ConditionType.ROLLED_BACK and c["status"] == TRUE
               for c in status.get("conditions") or [])


# --- history -------------------------------------------------------------------------------

def record_revision(revisions: Sequence[Mapping[str, Any]], name: str,
                    source: Mapping[str, str], now: str, live: Sequence[str] = ()
                    ) -> list[dict[str, Any]] | None:
    """``status.revisions`` with ``name`` appended (None when it is already recorded): the
    newest ``HISTORY`` entries, the oldest ones dropped first unless they are ``live``."""
    if any(r.get("name") == name for r in revisions):
        return None
    entries = [dict(r) for r in revisions] + [
        {"name": name, "source": dict(source), "createdAt": now}]
    keep = {name, *live}
    while len(entries) > HISTORY:
        drop = next((i for i, r in enumerate(entries) if r.get("name") not in keep), 0)
        del entries[drop]
    return entries
