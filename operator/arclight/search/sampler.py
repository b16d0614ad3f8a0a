"""The search and the early stopping, both Optuna's, on a study rebuilt from the trials.

Each pass builds an in-memory study from the trials' own records (see ``trials``), so the
study cannot drift from what the cluster holds and survives any restart: a finished trial is
added as COMPLETE (its objective), FAIL or PRUNED with its evaluation series as intermediate
values; a trial not finished as RUNNING. Optuna then suggests the next trial (``suggest``)
or judges the running ones (``pruned``). Every sampler is seeded per trial number from the
Sweep's seed, so the same history gives the same suggestion after a restart.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState, create_trial

from arclight.api.sweep import Parameter, SweepSpec
from arclight.search import params as p
from arclight.search.trials import TrialRecord

optuna.logging.set_verbosity(optuna.logging.WARNING)
logging.getLogger("optuna").propagate = False
SEED_MODULUS = 2**31 - 1


def base_seed(spec: SweepSpec, uid: str) -> int:
    """``spec.seed``, or one derived from the Sweep's uid (stable across restarts)."""
    if spec.seed is not None:
        return spec.seed
    return int(hashlib.sha256(uid.encode()).hexdigest(), 16) % SEED_MODULUS


def trial_seed(seed: int, number: int) -> int:
    """The seed of the sampler that suggests trial ``number``."""
    return (seed * 1_000_003 + number) % SEED_MODULUS


def distribution(parameter: Parameter) -> BaseDistribution:
    """The Optuna distribution of a parameter (explicit values are a categorical choice)."""
    if parameter.values:
        return CategoricalDistribution([p.typed(parameter, v) for v in parameter.values])
    low, high = float(parameter.min or 0), float(parameter.max or 0)
    if parameter.type == "int":
        return IntDistribution(int(low), int(high), log=parameter.log)
    return FloatDistribution(low, high, log=parameter.log)


def distributions(spec: SweepSpec) -> dict[str, BaseDistribution]:
    if spec.algorithm == "grid":
        return {name: CategoricalDistribution(values)
                for name, values in p.grid(spec.parameters).items()}
    return {parameter.name: distribution(parameter) for parameter in spec.parameters}


def _sampler(spec: SweepSpec, seed: int, number: int) -> optuna.samplers.BaseSampler:
    if spec.algorithm == "bayesian":
        return optuna.samplers.TPESampler(seed=trial_seed(seed, number))
    if spec.algorithm == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=trial_seed(seed, number))
    return optuna.samplers.RandomSampler(seed=trial_seed(seed, number))


def _typed_values(spec: SweepSpec, values: Mapping[str, str]) -> dict[str, Any] | None:
    """A trial's values as Optuna holds them; None when they do not fit this search space
    (a warm-start trial of another space)."""
    dists = distributions(spec)
    typed: dict[str, Any] = {}
    for parameter in spec.parameters:
        if parameter.name not in values:
            return None
        try:
            value = p.typed(parameter, values[parameter.name])
        except ValueError:
            return None
        if not dists[parameter.name]._contains(dists[parameter.name].to_internal_repr(value)):
            return None
        typed[parameter.name] = value
    return typed


def _frozen(spec: SweepSpec, trial: TrialRecord, attrs: Mapping[str, float] | None = None
            ) -> FrozenTrial | None:
    values = _typed_values(spec, trial.values)
    if values is None:
        return None
    state = {"Succeeded": TrialState.COMPLETE, "Failed": TrialState.FAIL,
             "Pruned": TrialState.PRUNED, "Stopped": TrialState.PRUNED}.get(
                 trial.state, TrialState.RUNNING)
    if state == TrialState.COMPLETE and trial.objective is None:
        state = TrialState.FAIL
    return create_trial(state=state, params=values, distributions=distributions(spec),
                        value=trial.objective if state == TrialState.COMPLETE else None,
                        intermediate_values=dict(trial.series) if state.is_finished() else None,
                        system_attrs=dict(attrs or {}))


def _study(spec: SweepSpec, sampler: optuna.samplers.BaseSampler | None = None,
           pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    return optuna.create_study(direction=spec.objective.direction, sampler=sampler,
                               pruner=pruner)


@functools.lru_cache(maxsize=64)
def _grid_order(space_json: str, seed: int) -> tuple[tuple[tuple[str, Any], ...], ...]:
    """Every grid point in the order Optuna's GridSampler (seeded) visits them: trial ``i`` of
    a fresh study gets point ``i`` of its shuffled grid."""
    space = json.loads(space_json)
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(space, seed=seed))
    dists: dict[str, BaseDistribution] = {
        name: CategoricalDistribution(values) for name, values in space.items()}
    points = []
    for _ in range(math.prod(len(values) for values in space.values())):
        trial = study.ask(dists)
        points.append(tuple(sorted(trial.params.items())))  # left running: no stop()
    return tuple(points)


def _suggest_grid(spec: SweepSpec, seed: int, trials: Sequence[TrialRecord],
                  warm: Sequence[TrialRecord]) -> dict[str, str] | None:
    """The first point of the seeded grid order that no trial (nor a warm-start trial) has
    taken; None once every point is taken."""
    taken = set()
    for trial in (*warm, *trials):
        values = _typed_values(spec, trial.values)
        if values is not None:
            taken.add(tuple(sorted(values.items())))
    order = _grid_order(json.dumps(p.grid(spec.parameters), sort_keys=True), seed)
    point = next((point for point in order if point not in taken), None)
    if point is None:
        return None
    chosen = dict(point)
    return {parameter.name: p.render(parameter, chosen[parameter.name])
            for parameter in spec.parameters}


def suggest(spec: SweepSpec, seed: int, trials: Sequence[TrialRecord],
            warm: Sequence[TrialRecord] = ()) -> dict[str, str] | None:
    """The next trial's values given every trial so far (``warm``: finished trials of the
    sweeps this one starts from); None when a grid has no point left."""
    if spec.algorithm == "grid":
        return _suggest_grid(spec, seed, trials, warm)
    number = len(trials)
    study = _study(spec, _sampler(spec, seed, number))
    for trial in (*warm, *trials):
        frozen = _frozen(spec, trial)
        if frozen is not None and (trial in trials or frozen.state.is_finished()):
            study.add_trial(frozen)
    asked = study.ask(distributions(spec))
    return {parameter.name: p.render(parameter, asked.params[parameter.name])
            for parameter in spec.parameters}


def _pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    rule = spec.early_stopping
    if rule.algorithm == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=rule.min_steps, reduction_factor=rule.rung_factor,
            bootstrap_count=0)
    return optuna.pruners.MedianPruner(n_startup_trials=rule.startup,
                                       n_warmup_steps=rule.min_steps)


def _rung_step(spec: SweepSpec, rung: int) -> int:
    return spec.early_stopping.min_steps * spec.early_stopping.rung_factor ** rung


def rung_attrs(spec: SweepSpec, trial: TrialRecord, before: int | None = None
               ) -> dict[str, float]:
    """ASHA's record of the rungs a trial completed (those whose first evaluation at or past
    the rung's step came before step ``before``): that evaluation's figure, as the pruner
    writes it when it judges each report as it comes."""
    rung = 0
    attrs: dict[str, float] = {}
    while True:
        reached = next(((at, value) for at, value in trial.series
                        if at >= _rung_step(spec, rung)), None)
        if reached is None or (before is not None and reached[0] >= before):
            return attrs
        attrs[f"completed_rung_{rung}"] = reached[1]
        rung += 1


def _judges_a_rung(spec: SweepSpec, trial: TrialRecord, attrs: Mapping[str, float]) -> bool:
    """Whether the trial's newest evaluation completes a rung that can promote: one whose
    next rung still lies within the trial's steps (as in ASHA, the last stretch before
    maxSteps is not cut; unknown maxSteps: every rung)."""
    step = _rung_step(spec, len(attrs))
    if trial.series[-1][0] < step:
        return False
    return trial.total_steps is None or \
        step * spec.early_stopping.rung_factor <= trial.total_steps


def pruned(spec: SweepSpec, trials: Sequence[TrialRecord]) -> dict[str, str]:
    """The running trials Optuna's pruner stops now, each with the reason. Each running
    trial's evaluations are reported in order and the pruner judges the newest one (the
    earlier ones were judged when they came), against the finished trials and the running
    trials numbered before it."""
    rule = spec.early_stopping
    if rule.algorithm == "none":
        return {}
    study = _study(spec, optuna.samplers.RandomSampler(seed=0), _pruner(spec))
    for trial in trials:
        if trial.finished:
            attrs = rung_attrs(spec, trial) if rule.algorithm == "asha" else {}
            frozen = _frozen(spec, trial, attrs)
            if frozen is not None:
                study.add_trial(frozen)
    verdicts: dict[str, str] = {}
    metric = spec.objective.metric
    for trial in trials:
        values = _typed_values(spec, trial.values)
        if trial.finished or not trial.series or values is None:
            continue
        study.enqueue_trial(values)
        live = study.ask(distributions(spec))
        for step, value in trial.series:
            live.report(value, step)
        step, value = trial.series[-1]
        if rule.algorithm == "asha":
            attrs = rung_attrs(spec, trial, before=step)
            for key, figure in attrs.items():  # the rungs judged in earlier passes
                study._storage.set_trial_system_attr(live._trial_id, key, figure)
            if not _judges_a_rung(spec, trial, attrs):
                continue
        if live.should_prune():
            verdicts[trial.name] = (
                f"{rule.algorithm} rule at step {step}: {metric} {value:.4g} "
                + ("below the median of the finished trials" if rule.algorithm == "median"
                   else f"not in the top 1/{rule.rung_factor} of its rung"))
    return verdicts
