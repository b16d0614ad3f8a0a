"""GRPO math: shaped rewards, group-normalised advantages and the clipped policy loss with KL."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch

EPS = 1e-6


def shape_rewards(rewards: Sequence[float], scale: float, clip: float) -> list[float]:
    """Scale each reward, then clip it into [-clip, clip]."""
    return [max(-clip, min(clip, r * scale)) for r in rewards]


def group_advantages(rewards: Sequence[float], groups: Sequence[Hashable]) -> list[float]:
    """(r - mean) / (std + eps) within each group of rollouts of the same prompt.

    `std` is the population standard deviation; a group whose rewards are all equal (or a
    group of one) carries no signal and gets advantage 0.
    """
    members: dict[Hashable, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    advantages = [0.0] * len(rewards)
    for indexes in members.values():
        values = torch.tensor([rewards[i] for i in indexes], dtype=torch.float64)
        std = values.std(unbiased=False).item()
        if len(indexes) < 2 or std < EPS:
            continue
        mean = values.mean().item()
        for i in indexes:
            advantages[i] = (rewards[i] - mean) / (std + EPS)
    return advantages


@dataclass
class LossTerms:
    loss: torch.Tensor
    policy_loss: float
    kl: float
    clip_fraction: float


def policy_loss(new_logprobs: torch.Tensor, old_logprobs: torch.Tensor,
                ref_logprobs: torch.Tensor | None, advantages: torch.Tensor,
                mask: torch.Tensor, *, clip_range: float, kl_coef: float) -> LossTerms:
    """Clipped importance-ratio surrogate plus `kl_coef` * KL(policy || reference).

    Tensors are [batch, tokens] (advantages [batch]); `mask` marks response tokens. Per
    sequence the token terms are averaged, then sequences are averaged. The KL uses the
    non-negative k3 estimator exp(ref - new) - (ref - new) - 1.
    """
    mask = mask.to(new_logprobs.dtype)
    ratio = torch.exp(new_logprobs - old_logprobs)
    adv = advantages.unsqueeze(-1)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range) * adv
    token_pg = -torch.minimum(unclipped, clipped)
    lengths = mask.sum(-1).clamp(min=1.0)

    def seq_mean(values: torch.Tensor) -> torch.Tensor:
        return ((values * mask).sum(-1) / lengths).mean()

    pg = seq_mean(token_pg)
    if ref_logprobs is not None and kl_coef > 0:
        delta = ref_logprobs - new_logprobs
        kl = seq_mean(torch.exp(delta) - delta - 1.0)
    else:
        kl = torch.zeros((), dtype=new_logprobs.dtype)
    clip_fraction = seq_mean(((ratio - 1.0).abs() > clip_range).to(new_logprobs.dtype))
    return LossTerms(loss=pg + kl_coef * kl, policy_loss=float(pg.detach()),
                     kl=float(kl.detach()), clip_fraction=float(clip_fraction))


def sequence_logprobs(model, sequences: torch.Tensor, attention: torch.Tensor,
                      response_mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-probs of each token of `sequences` under `model` ([batch, len], 0 where no response).

    Position t holds log p(token_t | tokens_<t); only positions in `response_mask` are kept.
    Logits are computed only from the first response position on (`logits_to_keep`): the
    prompt's logits over the whole vocabulary would cost more than the response's.
    """
    width = sequences.shape[1]
    has_response = response_mask.bool().any(-1)
    first = int(response_mask.bool().float().argmax(-1)[has_response].min()) if bool(
        has_response.any()) else width - 1
    first = max(first, 1)
    logits = model(input_ids=sequences, attention_mask=attention,
                   logits_to_keep=width - first + 1).logits[:, :-1, :].float()
    if temperature != 1.0:
        logits = logits / temperature
    # log_softmax(x)[y] = x[y] - logsumexp(x): no second [batch, len, vocab] tensor is kept
    chosen = (logits.gather(-1, sequences[:, first:].unsqueeze(-1)).squeeze(-1)
              - torch.logsumexp(logits, dim=-1))
    out = torch.zeros(sequences.shape, dtype=chosen.dtype)
    out[:, first:] = chosen
    return out * response_mask
