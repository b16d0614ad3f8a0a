"""The CPU backend: GRPO on the in-process torch policy, rollouts through Agent Lightning.

Per step: `batchSize` training items x `groupSize` rollouts run as real agent subprocesses
(agl-controller) whose model calls go through agl-server to the policy server, which
records token ids and behaviour log-probs. The triplets and rewards come back from the
gateway; rewards are shaped and normalised per group, and one optimizer step is taken
(split into `gradientAccumulation` micro-batches). SIGTERM stops it between steps (the
rollouts in flight are dropped), checkpoints the last completed step and exits Preempted.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import time
from pathlib import Path

import torch
from arclight.api.trainer import (
    BestCheckpoint,
    EvaluationPoint,
    EvaluationSeries,
    FailureReason,
    ReportKey,
    TrainingMetrics,
    decimal_value,
)
from pydantic import BaseModel
from transformers import get_scheduler

from ..agent_descriptor import write_agent_descriptor
from ..checkpoints import checkpoint_uri, load_state, resolve_resume, save_checkpoint
from ..failures import TrainerFailure
from ..grpo import policy_loss, sequence_logprobs
from ..modeling import attach_adapter, load_base, load_trainable_state, reference_copy, save_merged
from ..phases import Phases, cpu_limit, memory_line
from ..policy_server import PolicyServer
from ..report import (
    best_checkpoint,
    document_json,
    evaluation_series,
    progress_report,
    step_metrics,
)
from ..rollouts import RolloutClient, RolloutResult, Task
from ..samples import Sample, collate, failed_groups, make_samples, micro_batches
from ..stopping import Stopped, StopSignal
from ..topology import AglTopology, print_log_tail
from .base import Backend, RunContext, RunOutcome

MAX_ABS_LOSS = 100.0
MAX_GRAD_NORM = 1.0
MAX_RELATIVE_UPDATE = 0.5  # ||delta weights|| / ||weights|| in one step
DIVERGED_HINTS = ["Lower hyperparameters.learningRate (for example by 10x).",
                  "Raise hyperparameters.warmupSteps or lower rewardScale."]


def build_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """AdamW, Adam or SGD over the trainable parameters."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def scheduler_name(name: str) -> str:
    """transformers' scheduler name for the API's `constant|linear|cosine` (warmup included)."""
    return "constant_with_warmup" if name == "constant" else name


def relative_update(before: list[torch.Tensor], after: list[torch.Tensor]) -> float:
    """||after - before|| / ||before|| over all tensors (the size of one optimizer step)."""
    delta = math.sqrt(sum(float((a.detach() - b).pow(2).sum()) for a, b in zip(after, before)))
    norm = math.sqrt(sum(float(b.pow(2).sum()) for b in before))
    return delta / max(norm, 1e-12)


class ItemSampler:
    """Deterministic epochs over the training items (reshuffled each epoch from the seed)."""

    def __init__(self, count: int, seed: int) -> None:
        self.count, self.rng = count, random.Random(seed)
        self.order: list[int] = []
        self.epoch = 0

    def take(self, n: int) -> list[int]:
        picked: list[int] = []
        while len(picked) < n:
            if not self.order:
                self.order = list(range(self.count))
                self.rng.shuffle(self.order)
                self.epoch += 1
            picked.append(self.order.pop())
        return picked

    def state(self) -> dict:
        """What a checkpoint keeps of the sampler (`restore` puts it back)."""
        return {"sampler_rng": self.rng.getstate(), "sampler_order": list(self.order),
                "sampler_epoch": self.epoch}

    def restore(self, state: dict) -> None:
        self.rng.setstate(state["sampler_rng"])
        self.order, self.epoch = list(state["sampler_order"]), state["sampler_epoch"]


class CpuBackend(Backend):
    name = "cpu"

    def run(self, ctx: RunContext) -> RunOutcome:
        stop = StopSignal()
        with stop.on_sigterm():
            return self._run(ctx, stop)

    def _run(self, ctx: RunContext, stop: StopSignal) -> RunOutcome:
        config, hp = ctx.config, ctx.config.hyperparameters
        torch.manual_seed(config.seed)
        limit = cpu_limit()
        cores = os.cpu_count() or 1
        threads = max(1, min(cores, math.ceil(limit))) if limit else cores
        torch.set_num_threads(threads)
        phases = Phases()
        with phases.timed("model load"):
            model, tokenizer = load_base(config.model.base)
            model = attach_adapter(model, config.model.adapter)
            kl_coef = decimal_value(hp.kl_coef)
            reference = reference_copy(model) if kl_coef > 0 else None
        print(f"torch threads: {threads} (CPU limit: {limit or 'none'})", flush=True)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = build_optimizer(hp.optimizer, params, decimal_value(hp.learning_rate))
        total = hp.total_steps(len(ctx.train_items))
        scheduler = get_scheduler(scheduler_name(hp.scheduler), optimizer,
                                  num_warmup_steps=hp.warmup_steps, num_training_steps=total)
        sampler = ItemSampler(len(ctx.train_items), config.seed)
        root = Path(config.checkpoint.dir)
        start_step, saved_before, saved_evaluations = 0, None, None
        path = resolve_resume(config.resume_from, root) if config.resume_from else None
        if path is not None:
            state = load_state(path)
            load_trainable_state(model, state["trainable"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            start_step = int(state["step"])
            sampler.restore(state)
            saved_before = state.get("validation_before")
            saved_evaluations = state.get("evaluations")
            print(f"resumed from {path} at step {start_step}", flush=True)
        elif config.resume_from:
            print(f"resumeFrom {config.resume_from}: no checkpoint under {root} yet, "
                  "starting at step 0", flush=True)

        temperature = decimal_value(hp.temperature)
        server = PolicyServer(model, tokenizer, model_name="policy",
                              default_max_tokens=hp.max_new_tokens, seed=config.seed,
                              max_batch=config.rollouts.total)
        server.start()
        topology = AglTopology(ctx.workdir / "agl", policy_url=server.base_url,
                               train_temperature=temperature,
                               concurrency=config.rollouts.total,
                               workers=config.rollouts.workers)
        stopped = False
        try:
            with topology, topology.client(timeout=60) as api:
                client = RolloutClient(api, template=ctx.template.name, components=ctx.components,
                                       max_tokens=hp.max_new_tokens, temperature=temperature,
                                       timeout_s=config.rollouts.timeout_seconds, stop=stop,
                                       wakeups=topology, live=server.expect)
                loop = _Loop(ctx, model, tokenizer, reference, optimizer, scheduler, sampler,
                             server, client, kl_coef, total, phases, stop, start_step)
                stop.armed = True  # from here a stop request is honoured at a step boundary
                try:
                    before = loop.baseline(saved_before, saved_evaluations)
                    steps = loop.train()
                    after = loop.evaluate("after")
                except Stopped:
                    stopped = True  # leaving the `with` stops the Agent Lightning processes
        except TrainerFailure:
            print_log_tail(topology.log_path)
            raise
        finally:
            server.stop()
        if stopped:
            raise loop.preempted()
        with phases.timed("final save"):
            final_dir = save_merged(model, tokenizer, root / "final")
            write_agent_descriptor(final_dir, ctx.template.name, ctx.components)
        print(phases.line(), flush=True)
        ctx.reporter.update(bestCheckpoint=best_checkpoint(
            steps, checkpoint_uri(root, final_dir), "validationReward", after))
        return RunOutcome(validation_before=before, validation_after=after,
                          model_dir=final_dir, steps=steps)


class _Loop:
    """The training loop's state for one run (rollouts, updates, reports)."""

    def __init__(self, ctx: RunContext, model, tokenizer, reference, optimizer, scheduler,
                 sampler: ItemSampler, server: PolicyServer, client: RolloutClient,
                 kl_coef: float, total: int, phases: Phases, stop: StopSignal,
                 start_step: int) -> None:
        self.phases, self.stop = phases, stop
        self.ctx, self.model, self.tokenizer, self.reference = ctx, model, tokenizer, reference
        self.optimizer, self.scheduler, self.sampler = optimizer, scheduler, sampler
        self.server, self.client, self.kl_coef, self.total = server, client, kl_coef, total
        hp = ctx.config.hyperparameters
        self.hp = hp
        self.clip_range = decimal_value(hp.clip_range)
        self.scale, self.clip = decimal_value(hp.reward_scale), decimal_value(hp.reward_clip)
        self.temperature = decimal_value(hp.temperature)
        self.last_validation: float | None = None
        self.validation_before: float | None = None
        self.evaluations = EvaluationSeries()
        self.rollouts_failed = self.groups_dropped = 0
        # the last completed step, the last one checkpointed (or resumed from), its reward
        self.step = self.saved_step = start_step
        self.last_reward = 0.0

    def rollouts(self, tasks: list[Task], *, train: bool) -> list[RolloutResult]:
        """Run `tasks`, each crashed or timed-out rollout again up to `rollouts.retries` times."""
        results = self.client.run(tasks, train=train)
        for _ in range(self.ctx.config.rollouts.retries):
            again = [i for i, r in enumerate(results) if r.reward is None and not r.reward_error]
            if not again:
                break
            print(f"retrying {len(again)} failed rollouts: "
                  f"{'; '.join(sorted({results[i].error or 'no reward' for i in again}))}",
                  flush=True)
            for i, result in zip(again, self.client.run([tasks[i] for i in again], train=train)):
                results[i] = result
        for result in results:
            if result.reward_error:
                raise TrainerFailure(FailureReason.REWARD_ERROR, result.reward_error, [
                    "Check reward.components names, weights (decimal strings) and params."])
        if self.server.unhealthy:
            raise TrainerFailure(FailureReason.DIVERGED, self.server.unhealthy, DIVERGED_HINTS)
        failed = [r for r in results if r.reward is None]
        everything = all(r.reward is None for r in results)
        if train:
            groups = failed_groups(results)
            self.rollouts_failed += len(failed)
            self.groups_dropped += len(groups)
            everything = groups == {t.data_id for t in tasks}
        if everything:
            errors = sorted({r.error or "no reward" for r in failed})
            raise TrainerFailure(FailureReason.ROLLOUTS_FAILED,
                                 f"every {'group' if train else 'rollout'} failed "
                                 f"(after {self.ctx.config.rollouts.retries} retries): "
                                 f"{'; '.join(errors)}",
                                 ["Raise rollouts.timeoutSeconds or lower maxNewTokens.",
                                  "Raise rollouts.retries if the agent fails now and then."])
        return results

    def evaluate(self, label: str) -> float:
        """Mean greedy reward on the validation split (failed rollouts count as 0), added to
        the `evaluations` series at the current step."""
        tasks = [Task(f"val-{i}", item) for i, item in enumerate(self.ctx.val_items)]
        with self.phases.timed("evaluation"):
            results = self.rollouts(tasks, train=False)
        value = statistics.fmean(r.reward if r.reward is not None else 0.0 for r in results)
        success = statistics.fmean(float(r.success) for r in results)
        print(f"validation {label}: reward={value:.4f} success={success:.2f} "
              f"({len(results)} items) {memory_line()}", flush=True)
        self.last_validation = value
        self.ctx.metrics.validation_reward.set(value)
        self.evaluations = evaluation_series(self.evaluations.points, EvaluationPoint(
            step=self.step, validation_reward=value, success_rate=success))
        documents: dict[str, BaseModel] = {"evaluations": self.evaluations}
        reported = self.ctx.reporter.documents.get(ReportKey.METRICS)
        if isinstance(reported, TrainingMetrics):  # status shows the latest evaluation
            documents["metrics"] = TrainingMetrics.model_validate(
                {**reported.model_dump(), "validation_reward": value})
        self.ctx.reporter.update(**documents)
        return value

    def baseline(self, saved: float | None, evaluations: dict | None) -> float:
        """The validation reward before training: measured now, or the one saved in the
        checkpoint this run resumed from (the base model's, not the resumed one's), whose
        `evaluations` series is published again."""
        if saved is None:
            saved = self.evaluate("before")
        else:
            self.last_validation = saved
            print(f"validation before: reward={saved:.4f} (from the checkpoint)", flush=True)
            self.evaluations = EvaluationSeries.model_validate(evaluations or {})
            self.ctx.reporter.update(evaluations=self.evaluations)
        self.validation_before = saved
        return saved

    def train(self) -> int:
        """Run optimizer steps after `self.step` until maxSteps (or early stopping); return
        the last step. Raises Stopped between steps once SIGTERM came."""
        hp, ctx = self.hp, self.ctx
        stopper = _EarlyStopper(hp.early_stopping)
        ctx.metrics.total_steps.set(self.total)
        started, first = time.monotonic(), self.step
        while self.step < self.total:
            self.stop.check()
            step = self.step + 1
            t0 = time.monotonic()
            boundary = self.sampler.state()
            indexes = self.sampler.take(hp.batch_size)
            tasks = [Task(f"s{step}-i{i}", ctx.train_items[i])
                     for i in indexes for _ in range(hp.group_size)]
            try:
                results = self.rollouts(tasks, train=True)
            except Stopped:
                self.sampler.restore(boundary)  # a resumed run takes these items again
                raise
            rollout_s = time.monotonic() - t0
            with self.phases.timed("updates"):
                stats = self.update(make_samples(results, self.scale, self.clip), step)
            elapsed = time.monotonic() - t0
            self.phases.add("rollouts", rollout_s)
            rewards = [r.reward for r in results if r.reward is not None]
            self.step, self.last_reward = step, statistics.fmean(rewards)
            self.publish(step, results, rewards, stats, len(tasks) / elapsed,
                         (time.monotonic() - started) / (step - first))
            print(f"step {step}/{self.total} reward={self.last_reward:.3f} "
                  f"loss={stats['loss']:.4f} kl={stats['kl']:.4f} samples={stats['samples']} "
                  f"micro_batches={stats.get('microBatches', 0)} dropped_groups="
                  f"{self.groups_dropped} rollouts={rollout_s:.1f}s "
                  f"update={elapsed - rollout_s:.1f}s {memory_line()}", flush=True)
            evaluate = ctx.config.evaluation.every_steps
            if evaluate and step % evaluate == 0 and step < self.total:
                self.evaluate(f"step {step}")  # before the checkpoint, which keeps the series
            every = ctx.config.checkpoint.every_steps
            if every and step % every == 0 and step < self.total:
                with self.phases.timed("checkpoints"):
                    self.checkpoint(step, self.last_reward)
            if stopper.should_stop(self.last_reward):
                print(f"early stopping at step {step}", flush=True)
                break
        return self.step

    def update(self, samples: list[Sample], step: int) -> dict:
        """One optimizer step over `samples` (micro-batched); raises Diverged on a blow-up."""
        stats = {"loss": 0.0, "policyLoss": 0.0, "kl": 0.0, "clipFraction": 0.0,
                 "samples": len(samples), "gradNorm": 0.0}
        if not samples:
            self.scheduler.step()
            return stats
        pad = self.tokenizer.pad_token_id
        parts = micro_batches(samples, self.hp.gradient_accumulation,
                              self.model.config.vocab_size)
        stats["microBatches"] = len(parts)
        with self.server.lock:
            self.optimizer.zero_grad(set_to_none=True)
            for part in parts:
                seq, att, resp, old, adv = collate(part, pad)
                ref = None
                if self.kl_coef > 0:
                    with torch.no_grad():
                        ref = self.reference_logprobs(seq, att, resp)
                new = sequence_logprobs(self.model, seq, att, resp, self.temperature)
                terms = policy_loss(new, old, ref, adv, resp, clip_range=self.clip_range,
                                    kl_coef=self.kl_coef)
                weight = len(part) / len(samples)
                loss_value = float(terms.loss.detach())
                if not math.isfinite(loss_value) or abs(loss_value) > MAX_ABS_LOSS:
                    raise TrainerFailure(FailureReason.DIVERGED, f"loss {loss_value:.4g} at step {step} is "
                                         "not finite or exploded", DIVERGED_HINTS)
                (terms.loss * weight).backward()
                stats["loss"] += loss_value * weight
                stats["policyLoss"] += terms.policy_loss * weight
                stats["kl"] += terms.kl * weight
                stats["clipFraction"] += terms.clip_fraction * weight
            params = [p for p in self.model.parameters() if p.requires_grad]
            norm = float(torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM))
            if not math.isfinite(norm):
                raise TrainerFailure(FailureReason.DIVERGED, f"gradient norm is {norm} at step {step}",
                                     DIVERGED_HINTS)
            before = [p.detach().clone() for p in params]
            self.optimizer.step()
            self.scheduler.step()
            if not all(torch.isfinite(p).all() for p in params):
                raise TrainerFailure(FailureReason.DIVERGED, f"weights became non-finite at step {step}",
                                     DIVERGED_HINTS)
            change = relative_update(before, params)
            if change > MAX_RELATIVE_UPDATE:
                raise TrainerFailure(FailureReason.DIVERGED, f"one step changed the trained weights by "
                                     f"{change:.3g}x their norm at step {step}", DIVERGED_HINTS)
        stats["gradNorm"] = norm
        return stats

    def reference_logprobs(self, seq, att, resp) -> torch.Tensor:
        if self.reference is not None:
            return sequence_logprobs(self.reference, seq, att, resp, self.temperature)
        with self.model.disable_adapter():
            return sequence_logprobs(self.model, seq, att, resp, self.temperature)

    def publish(self, step: int, results: list[RolloutResult], rewards: list[float], stats: dict,
                samples_per_s: float, seconds_per_step: float) -> None:
        ctx = self.ctx
        mean = statistics.fmean(rewards)
        success = statistics.fmean(float(r.success) for r in results)
        metrics = step_metrics(rewards, success, validation_reward=self.last_validation,
                               policy_loss=stats["policyLoss"], loss=stats["loss"],
                               steps_per_second=1.0 / seconds_per_step,
                               samples_per_second=samples_per_s,
                               rollouts_failed=self.rollouts_failed,
                               groups_dropped=self.groups_dropped)
        progress = progress_report(step, self.total, self.sampler.epoch, seconds_per_step)
        ctx.reporter.update(progress=progress, metrics=metrics)
        ctx.metrics.step.set(step)
        ctx.metrics.reward.set(mean)
        ctx.metrics.loss.set(stats["loss"])
        ctx.metrics.samples_per_second.set(samples_per_s)
        if ctx.tracker:
            ctx.tracker.log_metrics({"reward_mean": mean, "reward_std": metrics.reward.std,
                                     "success_rate": success, "loss": stats["loss"],
                                     "policy_loss": stats["policyLoss"], "kl": stats["kl"],
                                     "clip_fraction": stats["clipFraction"],
                                     "grad_norm": stats["gradNorm"],
                                     "samples_per_second": samples_per_s,
                                     "learning_rate": self.scheduler.get_last_lr()[0]}, step)

    def checkpoint(self, step: int, reward: float) -> None:
        root = Path(self.ctx.config.checkpoint.dir)
        path = save_checkpoint(root, step, self.model, self.tokenizer, self.optimizer,
                               self.scheduler, self.ctx.config.checkpoint.keep, {
                                   **self.sampler.state(), "reward": reward,
                                   "validation_before": self.validation_before,
                                   "evaluations": document_json(self.evaluations)},
                               template_name=self.ctx.template.name,
                               components=self.ctx.components)
        self.saved_step = step
        best = self.ctx.reporter.documents.get(ReportKey.BEST_CHECKPOINT)
        if (not isinstance(best, BestCheckpoint) or best.metric != "reward"
                or best.value is None or reward >= best.value):
            self.ctx.reporter.update(bestCheckpoint=best_checkpoint(
                step, checkpoint_uri(root, path), "reward", reward))
        print(f"checkpoint step {step}: {path}", flush=True)

    def preempted(self) -> TrainerFailure:
        """After SIGTERM, with the rollouts and the policy server stopped: checkpoint the last
        completed step (unless it is saved already) and return the Preempted outcome."""
        print(f"stopping {self.stop.seconds():.1f}s after SIGTERM, at step {self.step}/"
              f"{self.total}", flush=True)
        if self.step > self.saved_step:
            with self.phases.timed("checkpoints"):
                self.checkpoint(self.step, self.last_reward)
        print(self.phases.line(), flush=True)
        if not self.step:
            return TrainerFailure(FailureReason.PREEMPTED, "stopped by SIGTERM before step 1 "
                                  "completed: nothing to checkpoint",
                                  ["A later attempt starts at step 1."])
        message = (f"stopped by SIGTERM after step {self.step} of {self.total} "
                   f"({self.stop.seconds():.1f}s after the signal), step {self.step} checkpointed")
        resume = (f"An attempt with resumeFrom latest continues at step {self.step + 1} "
                  "(checkpoint.dir on a persistent volume).")
        return TrainerFailure(FailureReason.PREEMPTED, message, [resume])


class _EarlyStopper:
    """Stop when the step reward has not improved by `minDelta` for `patience` steps."""

    def __init__(self, spec) -> None:
        self.spec = spec
        self.best = -math.inf
        self.stale = 0

    def should_stop(self, value: float) -> bool:
        if self.spec is None:
            return False
        if value > self.best + decimal_value(self.spec.min_delta):
            self.best, self.stale = value, 0
            return False
        self.stale += 1
        return self.stale >= self.spec.patience
