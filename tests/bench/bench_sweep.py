"""Benchmark: the Sweep controller's own cost and what early stopping saves, by a
discrete-event simulation that drives the real plan (``arclight.search.kind.SWEEP``).

No cluster. Trials are simulated TrainingRuns whose status is made exactly as in a cluster:
the simulated trainer writes its report ConfigMap data with
``arclight_trainer.report.configmap_data`` (``progress`` and ``evaluations``, the latter
grown by ``evaluation_series`` as the CPU trainer does), the operator's
``arclight.training.reports.status_from_report`` turns it into status, and the conditions the
TrainingRun controller sets are added (``Running`` True while the trial trains, ``Succeeded``
True when it is done), with the trial's parameters annotation copied from the manifest the
plan created. A trial the plan prunes (a child patch: ``spec.suspend: true`` and the pruned
annotation) gets the patch and stops at once.

**The curve family** (fixed before looking at any result; not tuned to a target). The
searched parameters are the Sweep's own: ``hyperparameters.learningRate`` (log-uniform
1e-6..1e-3), ``reward.components[taskSuccess].weight`` (log-uniform 0.25..4) and
``hyperparameters.batchSize`` (int 2..16). A trial with learning rate ``lr``, weight ``w``
and batch ``b`` reports, after step ``s`` (0: the baseline before training)::

    value(s) = clip01(ceiling * (1 - exp(-s / tau)) + sigma * z_s)
    ceiling  = 0.9 * exp(-0.5 * (log10(lr / 1e-4) / 0.8) ** 2) * (1 - 0.25 * (log2(w) / 2) ** 2)
    tau      = 4 * sqrt(1e-4 / lr) * sqrt(8 / b)      (steps)
    sigma    = 0.02 * sqrt(8 / b)

so the best trials sit near lr = 1e-4 and w = 1, a higher learning rate learns faster but
saturates lower (curves cross: early leaders are not always the final ones), a bigger batch
learns a little faster with less noise. ``z_s`` (standard normal) and the trial's step
duration (uniform 2..4 virtual seconds) come from a RNG seeded by (bench seed, trial number),
so the same trial has the same curve in every variant. ``successRate`` is
``clip01(value + 0.05)``. Each trial runs ``--steps`` (20) optimizer steps and evaluates
after every one.

**The clock.** Virtual time; the controller is one worker. Whenever events are pending (a
trial's report, a trial finishing) and the worker is free, it runs ONE pass: ``SWEEP.parse``
+ ``SWEEP.plan`` over the current observed state + ``json.dumps`` of the new status (what
the frame sends), timed with ``time.perf_counter``. Its decisions (trials created, trials
pruned, the status) take effect at virtual ``t + c``, and the worker is busy until then:
events in between wait for the next pass. A created trial starts training at once, Running
with its baseline evaluation (no pod start-up latency is invented; creating it does not
trigger a pass by itself). Nothing else costs virtual time.

**The ideal schedule**: the same trials, each with the steps it actually ran, list-scheduled
greedily in trial order at the same parallelism with zero controller time. **Controller
overhead** = makespan / ideal makespan - 1 (makespan: until the status saying Succeeded
lands). Target: < 10 % at 200 trials, parallelism 10 (Ray Tune reports 14 % at 10,000
short trials).

**Early stopping**: the same seed with ``earlyStopping`` none, median (minSteps 4,
startupTrials 5) and asha (minSteps 2, reductionFactor 3). With ``--algorithm random`` (the
default) a suggestion depends only on (seed, trial number), so all variants try the same
trials; ``--algorithm bayesian`` shows TPE (its suggestions depend on the history, so the
variants try different trials). Target: at least the best objective of none with at most
half its trial-steps.

Measured pass times make the schedule (and so, rarely, a pruning verdict) vary a little
between runs; ``simulate(..., pass_seconds=X)`` charges a fixed virtual X per pass instead,
for reproducible schedules (the CI test does that).

    .venv/bin/python tests/bench/bench_sweep.py [--trials 200 --parallelism 10 --seed 1]
"""
from __future__ import annotations

import argparse
import cProfile
import datetime
import heapq
import io
import json
import math
import pstats
import random
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "operator"), str(REPO / "trainer-image")]

from arclight.api.trainer import EvaluationPoint, EvaluationSeries, ReportKey
from arclight.core.facts import Facts
from arclight.core.plan import Observed
from arclight.search.kind import SWEEP
from arclight.search.trials import (
    FINISHED,
    PARAMETERS_ANNOTATION,
    trial_number,
)
from arclight.training.reports import status_from_report
from arclight_trainer import report

LR = "hyperparameters.learningRate"
WEIGHT = "reward.components[taskSuccess].weight"
BATCH = "hyperparameters.batchSize"
LR_OPT = 1e-4
EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
NAMESPACE = "bench"
#: earlyStopping of each variant.
EARLY_STOPPING = {
    "none": {"algorithm": "none"},
    "median": {"algorithm": "median", "minSteps": 4, "startupTrials": 5},
    "asha": {"algorithm": "asha", "minSteps": 2, "reductionFactor": 3},
}
OVERHEAD_TARGET = 0.10
STEPS_RATIO_TARGET = 0.5


# --- the curve family ------------------------------------------------------------------------

@dataclass(frozen=True)
class Curve:
    ceiling: float
    tau: float
    sigma: float
    step_seconds: float
    z: tuple[float, ...]

    def value(self, step: int) -> float:
        raw = self.ceiling * (1 - math.exp(-step / self.tau)) + self.sigma * self.z[step]
        return min(1.0, max(0.0, raw))


def curve(values: dict[str, str], seed: int, number: int, steps: int) -> Curve:
    """Trial ``number``'s learning curve: the shape from its parameters, the noise and the
    step duration from (seed, number) alone."""
    lr, w, b = float(values[LR]), float(values[WEIGHT]), int(values[BATCH])
    ceiling = 0.9 * math.exp(-0.5 * (math.log10(lr / LR_OPT) / 0.8) ** 2) \
        * (1 - 0.25 * (math.log2(w) / 2) ** 2)
    tau = 4.0 * math.sqrt(LR_OPT / lr) * math.sqrt(8 / b)
    sigma = 0.02 * math.sqrt(8 / b)
    rng = random.Random(f"bench-sweep/{seed}/{number}")
    step_seconds = rng.uniform(2.0, 4.0)
    z = tuple(rng.gauss(0.0, 1.0) for _ in range(steps + 1))
    return Curve(ceiling, tau, sigma, step_seconds, z)


# --- the report channel, as the trainer writes it and the operator reads it ------------------

def evaluations(points: Sequence[EvaluationPoint], point: EvaluationPoint) -> EvaluationSeries:
    helper = getattr(report, "evaluation_series", None)
    if helper is not None:
        return helper(points, point)
    kept = sorted([*(p for p in points if p.step != point.step), point], key=lambda p: p.step)
    return EvaluationSeries(points=kept)


@dataclass
class SimTrial:
    """One trial: its TrainingRun object and the simulated trainer behind it."""

    number: int
    name: str
    values: dict[str, str]
    curve: Curve
    total_steps: int
    start: float
    run: dict[str, Any]
    series: EvaluationSeries = field(default_factory=EvaluationSeries)
    step: int = 0
    stopped_at: float | None = None  # pruned: when the patch landed
    judged_step: int | None = None  # pruned: its last reported step when the pass ran
    finished_at: float | None = None

    @property
    def active(self) -> bool:
        return self.stopped_at is None and self.finished_at is None

    def report(self, step: int, now: float) -> None:
        """The trainer's report after ``step`` (0: the baseline), turned into status."""
        self.step = step
        value = self.curve.value(step)
        self.series = evaluations(self.series.points, EvaluationPoint(
            step=step, validation_reward=value, success_rate=min(1.0, value + 0.05)))
        data = report.configmap_data({
            ReportKey.PROGRESS: report.progress_report(step, self.total_steps, None,
                                                       self.curve.step_seconds),
            ReportKey.EVALUATIONS: self.series})
        status = status_from_report(data)
        done = step >= self.total_steps
        if done:
            self.finished_at = now
        status["conditions"] = conditions(done, now)
        status["cost"] = {"credits": 0}
        self.run["status"] = status

    def prune(self, patch: dict[str, Any], now: float) -> None:
        meta = self.run["metadata"]
        meta["annotations"] = {**meta.get("annotations", {}),
                               **patch.get("metadata", {}).get("annotations", {})}
        self.run["spec"] = {**self.run["spec"], **patch.get("spec", {})}
        if self.active:
            self.stopped_at = now
            self.run["status"]["conditions"] = [
                {"type": "Running", "status": "False", "reason": "Suspended",
                 "lastTransitionTime": iso(now)}]


def iso(now: float) -> str:
    return (EPOCH + datetime.timedelta(seconds=now)).strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions(done: bool, now: float) -> list[dict[str, str]]:
    """The conditions the TrainingRun controller sets (see run() in test_plan_sweep.py)."""
    at = iso(now)
    if done:
        return [{"type": "Running", "status": "False", "reason": "Completed",
                 "lastTransitionTime": at},
                {"type": "Succeeded", "status": "True", "reason": "Completed",
                 "lastTransitionTime": at}]
    return [{"type": "Running", "status": "True", "reason": "Training",
             "lastTransitionTime": at}]


# --- the Sweep -------------------------------------------------------------------------------

def sweep_object(trials: int, parallelism: int, seed: int, early_stopping: str,
                 algorithm: str, steps: int) -> dict[str, Any]:
    return {
        "apiVersion": "arclight.dev/v1alpha1", "kind": "Sweep",
        "metadata": {"name": f"sw-{early_stopping}", "namespace": NAMESPACE,
                     "uid": f"uid-{early_stopping}", "generation": 1},
        "spec": {
            "trainingRunTemplate": {"template": "math-solver",
                                    "evaluation": {"everySteps": 1},
                                    "hyperparameters": {"maxSteps": steps}},
            "parameters": [
                {"name": LR, "type": "double", "min": "1e-6", "max": "1e-3", "log": True},
                {"name": WEIGHT, "type": "double", "min": "0.25", "max": "4", "log": True},
                {"name": BATCH, "type": "int", "min": "2", "max": "16"}],
            "algorithm": algorithm, "maxTrials": trials, "parallelism": parallelism,
            "seed": seed, "earlyStopping": EARLY_STOPPING[early_stopping]}}


def trial_run(manifest: dict[str, Any]) -> dict[str, Any]:
    """The TrainingRun as created from the plan's manifest (Pending: no status yet)."""
    meta = manifest["metadata"]
    return {"apiVersion": manifest["apiVersion"], "kind": "TrainingRun",
            "metadata": {"name": meta["name"], "namespace": meta.get("namespace", NAMESPACE),
                         "labels": dict(meta.get("labels") or {}),
                         "annotations": {PARAMETERS_ANNOTATION:
                                         meta["annotations"][PARAMETERS_ANNOTATION]},
                         "ownerReferences": list(meta.get("ownerReferences") or [])},
            "spec": json.loads(json.dumps(manifest["spec"])), "status": {}}


@dataclass
class TrialResult:
    number: int
    name: str
    values: dict[str, str]
    steps: int
    step_seconds: float
    state: str
    objective: float | None
    reason: str | None = None
    judged_step: int | None = None

    @property
    def verdict_step(self) -> int | None:
        """The step a pruning verdict names (``... rule at step N: ...``)."""
        match = re.search(r"rule at step (\d+)", self.reason or "")
        return int(match.group(1)) if match and self.state == "Pruned" else None

    @property
    def retroactive(self) -> bool:
        """Pruned for a step it had already passed in earlier passes."""
        verdict = self.verdict_step
        return verdict is not None and self.judged_step is not None \
            and verdict < self.judged_step


@dataclass
class Result:
    early_stopping: str
    algorithm: str
    trials: list[TrialResult]
    status: dict[str, Any]
    passes: int
    pass_seconds: list[float]
    makespan: float
    ideal_makespan: float

    @property
    def trial_steps(self) -> int:
        return sum(t.steps for t in self.trials)

    @property
    def overhead(self) -> float:
        return self.makespan / self.ideal_makespan - 1 if self.ideal_makespan else 0.0

    @property
    def best(self) -> float | None:
        return self.status.get("bestObjective")

    @property
    def pruned(self) -> int:
        return int(self.status.get("pruned") or 0)

    @property
    def retroactive(self) -> int:
        return sum(1 for t in self.trials if t.retroactive)

    def summary(self) -> dict[str, Any]:
        times = sorted(self.pass_seconds)
        return {
            "earlyStopping": self.early_stopping, "algorithm": self.algorithm,
            "phase": self.status.get("phase"), "progress": self.status.get("progress"),
            "trialSteps": self.trial_steps, "bestObjective": self.best,
            "bestTrial": self.status.get("bestTrial"), "pruned": self.pruned,
            "prunedRetroactively": self.retroactive,
            "passes": self.passes, "passMeanMs": 1e3 * statistics.fmean(times) if times else 0,
            "passP95Ms": 1e3 * percentile(times, 0.95), "passMaxMs": 1e3 * max(times, default=0),
            "controllerSeconds": sum(times), "makespanS": self.makespan,
            "idealMakespanS": self.ideal_makespan, "overhead": self.overhead,
            "trials": [asdict(t) for t in self.trials]}


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def ideal_makespan(durations: Sequence[float], parallelism: int) -> float:
    """Greedy list scheduling in order on ``parallelism`` slots, no controller time."""
    slots = [0.0] * parallelism
    for duration in durations:
        start = heapq.heappop(slots)
        heapq.heappush(slots, start + duration)
    return max(slots, default=0.0)


STEP, APPLY = 0, 1


def simulate(trials: int = 200, parallelism: int = 10, seed: int = 1,
             early_stopping: str = "none", algorithm: str = "random", steps: int = 20,
             pass_seconds: float | None = None, profile: cProfile.Profile | None = None
             ) -> Result:
    """Run one Sweep to its end against simulated trials. ``pass_seconds``: charge this
    fixed virtual time per pass instead of the measured one (reproducible schedules)."""
    obj = sweep_object(trials, parallelism, seed, early_stopping, algorithm, steps)
    runs: dict[str, dict[str, Any]] = {}
    sims: dict[str, SimTrial] = {}
    events: list[tuple[float, int, int, Any]] = []
    order = 0
    now, busy_until, dirty = 0.0, 0.0, True  # the Sweep's creation is the first event
    measured: list[float] = []
    makespan: float | None = None

    def push(at: float, kind: int, payload: Any) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (at, order, kind, payload))

    while True:
        if dirty and now >= busy_until:
            facts = Facts(now=EPOCH + datetime.timedelta(seconds=now))
            if profile is not None:
                profile.enable()
            began = time.perf_counter()
            spec = SWEEP.parse(obj)
            plan = SWEEP.plan(spec, Observed(obj, {"TrainingRun": runs}, {}), facts)
            json.dumps(plan.status)
            cost = time.perf_counter() - began
            if profile is not None:
                profile.disable()
            measured.append(cost)
            for child in plan.children:
                if child.patch is not None and child.name in sims:
                    sims[child.name].judged_step = sims[child.name].step
            dirty = False
            busy_until = now + (cost if pass_seconds is None else pass_seconds)
            push(busy_until, APPLY, plan)
        if not events:
            break
        now, _, kind, payload = heapq.heappop(events)
        if kind == STEP:
            sim, step = payload
            if not sim.active:  # pruned before this step ended
                continue
            sim.report(step, now)
            dirty = True
            if step < sim.total_steps:
                push(now + sim.curve.step_seconds, STEP, (sim, step + 1))
            continue
        plan = payload
        for child in plan.children:
            if child.patch is not None:
                sims[child.name].prune(child.patch, now)
                continue
            run = trial_run(child.manifest)
            values = json.loads(run["metadata"]["annotations"][PARAMETERS_ANNOTATION])
            number = trial_number(child.name)
            assert number is not None, child.name
            sim = SimTrial(number, child.name, values, curve(values, seed, number, steps),
                           steps, now, run)
            sim.report(0, now)  # Running, with its baseline evaluation
            runs[child.name] = run
            sims[child.name] = sim
            push(now + sim.curve.step_seconds, STEP, (sim, 1))
        obj = {**obj, "status": plan.status}
        if plan.status.get("phase") in ("Succeeded", "Failed") and makespan is None:
            makespan = now
    states = {t["name"]: t for t in obj.get("status", {}).get("trials", [])}
    results = [TrialResult(s.number, s.name, s.values, s.step, s.curve.step_seconds,
                           states.get(s.name, {}).get("state", "?"),
                           states.get(s.name, {}).get("objective"),
                           states.get(s.name, {}).get("reason"), s.judged_step)
               for s in sorted(sims.values(), key=lambda s: s.number)]
    ideal = ideal_makespan([t.steps * t.step_seconds for t in results], parallelism)
    return Result(early_stopping, algorithm, results, obj.get("status", {}), len(measured),
                  measured, makespan if makespan is not None else now, ideal)


def all_finished(result: Result) -> bool:
    return all(t.state in FINISHED for t in result.trials)


# --- the report ------------------------------------------------------------------------------

def fmt(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--parallelism", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--algorithm", choices=["random", "bayesian"], default="random")
    parser.add_argument("--variants", default="none,median,asha",
                        help="comma-separated earlyStopping algorithms (none first)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="print the N top entries (cumulative) of a cProfile of the passes")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(EARLY_STOPPING)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}")

    print(f"Sweep bench: {args.trials} trials, parallelism {args.parallelism}, seed {args.seed}, "
          f"{args.steps} steps per trial, algorithm {args.algorithm}")
    results: dict[str, Result] = {}
    profiles: dict[str, cProfile.Profile] = {}
    for variant in variants:
        profile = cProfile.Profile() if args.profile else None
        began = time.perf_counter()
        results[variant] = simulate(args.trials, args.parallelism, args.seed, variant,
                                    args.algorithm, args.steps, profile=profile)
        if profile is not None:
            profiles[variant] = profile
        r = results[variant]
        print(f"  {variant}: {r.passes} passes, simulated in "
              f"{time.perf_counter() - began:.1f} s wall", flush=True)

    print()
    header = (f"{'earlyStopping':<14}{'phase':<11}{'progress':>9}{'trial-steps':>12}"
              f"{'best':>8}{'pruned':>7}{'passes':>7}{'mean ms':>8}{'p95 ms':>8}"
              f"{'max ms':>8}{'makespan s':>11}{'ideal s':>9}{'overhead':>9}")
    print(header)
    for variant, r in results.items():
        s = r.summary()
        print(f"{variant:<14}{s['phase'] or '-':<11}{s['progress'] or '-':>9}"
              f"{s['trialSteps']:>12}{fmt(s['bestObjective']):>8}{s['pruned']:>7}"
              f"{s['passes']:>7}{s['passMeanMs']:>8.2f}{s['passP95Ms']:>8.2f}"
              f"{s['passMaxMs']:>8.2f}{s['makespanS']:>11.1f}{s['idealMakespanS']:>9.1f}"
              f"{100 * s['overhead']:>8.2f}%")

    print()
    for variant, r in results.items():
        ratio = r.overhead / OVERHEAD_TARGET
        verdict = "target met" if r.overhead < OVERHEAD_TARGET else "target missed"
        print(f"controller overhead ({variant}): {100 * r.overhead:.2f} % "
              f"(target < {100 * OVERHEAD_TARGET:.0f} % at 200 trials, parallelism 10; "
              f"ratio {ratio:.3f}): {verdict}")
        if r.retroactive:
            lags = [t.judged_step - t.verdict_step for t in r.trials if t.retroactive]
            print(f"  {variant}: {r.retroactive} of {r.pruned} pruned trials were pruned for a "
                  f"step they had already passed in earlier passes (verdict step < the step "
                  f"reached when judged; by {min(lags)}..{max(lags)} steps, mean "
                  f"{statistics.fmean(lags):.1f})")
        if not all_finished(r):
            print(f"  PROBLEM: {variant}: trials not in a final state: "
                  + ", ".join(t.name for t in r.trials if t.state not in FINISHED))
    base = results.get("none")
    if base is not None:
        for variant, r in results.items():
            if variant == "none":
                continue
            steps_ratio = r.trial_steps / base.trial_steps if base.trial_steps else 0.0
            diff = (r.best - base.best) if r.best is not None and base.best is not None \
                else None
            met = diff is not None and diff >= 0 and steps_ratio <= STEPS_RATIO_TARGET
            print(f"early stopping {variant} vs none: trial-steps {r.trial_steps}/"
                  f"{base.trial_steps} = {steps_ratio:.3f}, best {fmt(r.best)} vs "
                  f"{fmt(base.best)} (difference {fmt(diff, '+.4f')}), {r.pruned} pruned "
                  f"(target: best difference >= 0 with steps ratio <= {STEPS_RATIO_TARGET}): "
                  + ("target met" if met else "target missed"))
    for variant, profile in profiles.items():
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(args.profile)
        print(f"\ncProfile of the passes ({variant}), top {args.profile} by cumulative time:")
        print(out.getvalue())

    if args.json:
        args.json.write_text(json.dumps({
            "trials": args.trials, "parallelism": args.parallelism, "seed": args.seed,
            "steps": args.steps, "algorithm": args.algorithm,
            "variants": {v: r.summary() for v, r in results.items()}}, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
