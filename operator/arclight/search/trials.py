"""Trials: the TrainingRuns a Sweep owns, read back as records, and built from the template.

Everything the search knows about a trial lives on its TrainingRun, so that a pass (after a
restart too) rebuilds the study from the trials themselves: the parameter values and the
sampler's bookkeeping in annotations written at creation, the state from the run's
conditions, the objective series from ``status.evaluations``, the credits from
``status.cost``, and the search's own decisions (pruned, stopped) as annotations it adds.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from arclight.api.common import API_VERSION
from arclight.api.sweep import SweepSpec, TrialState
from arclight.api.trainingrun import TrainingRunSpec
from arclight.core.conditions import get_condition, is_true
from arclight.core.names import GROUP, Owner, child_metadata

PARAMETERS_ANNOTATION = f"{GROUP}/trial-parameters"
PRUNED_ANNOTATION = f"{GROUP}/pruned"
STOPPED_ANNOTATION = f"{GROUP}/stopped"
NUMBER_LABEL = f"{GROUP}/trial"
TRIAL_SUFFIX = re.compile(r"-t(\d{3,})$")
#: Characters a trial's name adds to the Sweep's (``-t`` and three digits).
SUFFIX_LENGTH = 5
FINISHED: tuple[TrialState, ...] = ("Succeeded", "Failed", "Pruned", "Stopped")


def trial_name(sweep: str, number: int) -> str:
    """The deterministic name of trial ``number``: ``<sweep>-t007``."""
    return f"{sweep}-t{number:03d}"


def trial_number(name: str) -> int | None:
    match = TRIAL_SUFFIX.search(name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class TrialRecord:
    """One trial as a pass sees it."""

    name: str
    number: int
    values: Mapping[str, str]
    state: TrialState
    series: tuple[tuple[int, float], ...] = ()
    step: int | None = None
    total_steps: int | None = None
    credits: int = 0
    reason: str | None = None
    diagnosis: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def objective(self) -> float | None:
        """The last evaluation's figure (a finished run's last one is its final result)."""
        return self.series[-1][1] if self.series else None


def _series(status: Mapping[str, Any], metric: str) -> tuple[tuple[int, float], ...]:
    """(step, figure) of each evaluation; a run that reports no series (a backend without
    one) contributes its latest figure from ``status.metrics`` at its last step."""
    points = ((status.get("evaluations") or {}).get("points")) or []
    by_step = {int(p["step"]): float(p[metric]) for p in points
               if isinstance(p, Mapping) and p.get(metric) is not None and "step" in p}
    latest = (status.get("metrics") or {}).get(metric)
    if not by_step and latest is not None:
        by_step[int((status.get("progress") or {}).get("step") or 0)] = float(latest)
    return tuple(sorted(by_step.items()))


def _state(annotations: Mapping[str, str], conditions: list[Mapping[str, Any]]
           ) -> tuple[TrialState, str | None]:
    if is_true(conditions, "Succeeded"):
        return "Succeeded", None
    if is_true(conditions, "Failed"):
        failed = get_condition(conditions, "Failed") or {}
        return "Failed", str(failed.get("message") or failed.get("reason") or "")
    if PRUNED_ANNOTATION in annotations:
        return "Pruned", annotations[PRUNED_ANNOTATION]
    if STOPPED_ANNOTATION in annotations:
        return "Stopped", annotations[STOPPED_ANNOTATION]
    if is_true(conditions, "Running"):
        return "Running", None
    admitted = get_condition(conditions, "Admitted")
    if admitted is not None and admitted.get("status") == "False":
        return "Pending", f"{admitted.get('reason')}: {admitted.get('message')}"
    return "Pending", None


def record(run: Mapping[str, Any], metric: str) -> TrialRecord | None:
    """A trial record from a child TrainingRun (None for a run that is not a trial)."""
    meta = run.get("metadata") or {}
    number = trial_number(meta.get("name", ""))
    annotations = meta.get("annotations") or {}
    if number is None or PARAMETERS_ANNOTATION not in annotations:
        return None
    status = run.get("status") or {}
    state, reason = _state(annotations, list(status.get("conditions") or []))
    progress = status.get("progress") or {}
    return TrialRecord(
        name=meta["name"], number=number,
        values=json.loads(annotations[PARAMETERS_ANNOTATION]),
        state=state, reason=reason, series=_series(status, metric),
        step=progress.get("step"), total_steps=progress.get("totalSteps"), credits=int((status.get("cost") or {}).get("credits") or 0),
        diagnosis=(status.get("diagnosis") or {}).get("reason"))


def records(children: Mapping[str, Mapping[str, Any]], spec: SweepSpec) -> list[TrialRecord]:
    """The Sweep's trials by number."""
    found = (record(run, spec.objective.metric) for run in children.values())
    return sorted((r for r in found if r is not None), key=lambda r: r.number)


def build_trial(sweep: Owner, number: int, spec: TrainingRunSpec, values: Mapping[str, str]
                ) -> dict[str, Any]:
    """The TrainingRun of trial ``number``: the template with the trial's values, owned by
    the Sweep (deleting the Sweep deletes its trials)."""
    meta = child_metadata(sweep, trial_name(sweep.name, number), "trial",
                          {NUMBER_LABEL: str(number)})
    meta["annotations"] = {PARAMETERS_ANNOTATION: json.dumps(dict(values), sort_keys=True)}
    return {"apiVersion": API_VERSION, "kind": "TrainingRun", "metadata": meta,
            "spec": spec.model_dump(by_alias=True, mode="json", exclude_none=True)}
