"""Training samples from rollouts: complete groups only, padded batches, micro-batches."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .grpo import group_advantages, shape_rewards
from .rollouts import RolloutResult


@dataclass
class Sample:
    prompt_ids: list[int]
    response_ids: list[int]
    old_logprobs: list[float]
    advantage: float


def failed_groups(results: list[RolloutResult]) -> set[str]:
    """Groups (data ids) with a rollout that has no reward: the whole group is dropped, since
    normalising the advantages over the survivors alone would bias the group."""
    return {r.data_id for r in results if r.reward is None}


def make_samples(results: list[RolloutResult], scale: float, clip: float) -> list[Sample]:
    """Training samples from complete groups: each model call carries its rollout's advantage."""
    dropped = failed_groups(results)
    scored = [r for r in results if r.data_id not in dropped and r.triplets]
    shaped = shape_rewards([r.reward for r in scored], scale, clip)
    advantages = group_advantages(shaped, [r.data_id for r in scored])
    samples = []
    for result, advantage in zip(scored, advantages):
        if advantage == 0.0:
            continue
        for t in result.triplets:
            if t.logprobs is not None and len(t.logprobs) == len(t.response_ids):
                samples.append(Sample(t.prompt_ids, t.response_ids, t.logprobs, advantage))
    return samples


def collate(samples: list[Sample], pad_id: int):
    """Right-padded sequences, attention and response masks, old log-probs, advantages."""
    width = max(len(s.prompt_ids) + len(s.response_ids) for s in samples)
    n = len(samples)
    sequences = torch.full((n, width), pad_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    response = torch.zeros((n, width), dtype=torch.float32)
    old = torch.zeros((n, width), dtype=torch.float32)
    for row, s in enumerate(samples):
        p, r = len(s.prompt_ids), len(s.response_ids)
        sequences[row, :p + r] = torch.tensor(s.prompt_ids + s.response_ids)
        attention[row, :p + r] = 1
        response[row, p:p + r] = 1.0
        old[row, p:p + r] = torch.tensor(s.old_logprobs)
    advantages = torch.tensor([s.advantage for s in samples], dtype=torch.float32)
    return sequences, attention, response, old, advantages


LOGITS_BUDGET_BYTES = 256 << 20
"""Most float32 logits one micro-batch may hold (logits, their gradient and the softmax for it
are kept at once)."""
MICRO_BATCH_TOKENS = 512
"""Most padded tokens (rows x width) in one micro-batch: backward through every layer keeps
the activations of each token, about 1.6 MB per token for SmolLM2-135M with LoRA (measured:
6 x 178 tokens +1.7 GB, 12 x 178 +3.3 GB; 12 long samples in one pass were OOMKilled under
the default 4 Gi). 512 tokens keep an update under about 0.9 GB."""


def micro_batches(samples: list[Sample], accumulation: int, vocab: int) -> list[list[Sample]]:
    """`samples` in at least `accumulation` micro-batches, each within MICRO_BATCH_TOKENS and
    LOGITS_BUDGET_BYTES (a single longer sample gets a micro-batch of its own).

    The loss of each micro-batch is weighted by its share of the samples, so the summed
    gradient is the same however the samples are split.
    """
    ordered = sorted(samples, key=lambda s: len(s.prompt_ids) + len(s.response_ids))
    per_part = math.ceil(len(ordered) / max(1, min(accumulation, len(ordered))))
    parts: list[list[Sample]] = [[]]
    for sample in ordered:
        width = len(sample.prompt_ids) + len(sample.response_ids)  # the widest so far
        rows = len(parts[-1]) + 1
        if parts[-1] and (rows > per_part or rows * width > MICRO_BATCH_TOKENS
                          or rows * width * vocab * 4 > LOGITS_BUDGET_BYTES):
            parts.append([])
        parts[-1].append(sample)
    return parts
