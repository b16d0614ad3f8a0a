"""GRPO advantage and loss math, checked against numbers worked out by hand."""

import math

import pytest
import torch
from arclight_trainer.grpo import group_advantages, policy_loss, shape_rewards

pytestmark = pytest.mark.unit


def test_shape_rewards_scales_then_clips():
    assert shape_rewards([0.5, 3.0, -4.0], scale=2.0, clip=5.0) == [1.0, 5.0, -5.0]


def test_group_advantages_normalise_within_each_prompt():
    # group a: [1, 0, 1, 0] mean 0.5, std 0.5 -> +-1; group b: [2, 4] mean 3, std 1 -> -+1
    adv = group_advantages([1, 0, 1, 0, 2, 4], ["a", "a", "a", "a", "b", "b"])
    assert adv == pytest.approx([1, -1, 1, -1, -1, 1], abs=1e-5)


def test_group_without_variance_or_alone_has_no_advantage():
    assert group_advantages([0.7, 0.7, 0.3], ["a", "a", "b"]) == [0.0, 0.0, 0.0]


def _one_token(new, old, adv, ref=None, kl=0.0, clip=0.2):
    t = lambda v: torch.tensor([[v]], dtype=torch.float32)
    return policy_loss(t(new), t(old), None if ref is None else t(ref),
                       torch.tensor([adv]), torch.ones(1, 1), clip_range=clip, kl_coef=kl)


def test_on_policy_loss_is_minus_advantage():
    assert float(_one_token(-1.0, -1.0, 2.0).loss) == pytest.approx(-2.0)


def test_ratio_is_clipped_for_positive_advantage():
    # ratio 1.5 > 1 + 0.2: objective min(1.5, 1.2) * 1 -> loss -1.2
    terms = _one_token(math.log(1.5), 0.0, 1.0)
    assert float(terms.loss) == pytest.approx(-1.2, abs=1e-6)
    assert terms.clip_fraction == pytest.approx(1.0)


def test_pessimistic_bound_for_negative_advantage():
    # ratio 1.5, advantage -1: min(-1.5, -1.2) = -1.5 -> loss 1.5 (not clipped)
    assert float(_one_token(math.log(1.5), 0.0, -1.0).loss) == pytest.approx(1.5, abs=1e-6)


def test_kl_k3_estimator_and_coefficient():
    # ref - new = 0.5: exp(0.5) - 0.5 - 1 = 0.148721; loss = -1 + 0.1 * 0.148721
    terms = _one_token(-1.0, -1.0, 1.0, ref=-0.5, kl=0.1)
    assert terms.kl == pytest.approx(0.148721, abs=1e-5)
    assert float(terms.loss) == pytest.approx(-1.0 + 0.0148721, abs=1e-5)


def test_masked_tokens_do_not_count_and_sequences_average():
    new = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    terms = policy_loss(new, new.clone(), None, torch.tensor([1.0, -3.0]), mask,
                        clip_range=0.2, kl_coef=0.0)
    # per sequence: -1 and +3 -> mean 1.0
    assert float(terms.loss) == pytest.approx(1.0)


def test_relative_update_size():
    from arclight_trainer.backends.cpu import relative_update

    before = [torch.tensor([3.0, 4.0])]  # norm 5
    assert relative_update(before, [torch.tensor([3.0, 4.5])]) == pytest.approx(0.1)


def test_sequence_logprobs_match_the_full_forward_pass():
    from arclight_trainer.grpo import sequence_logprobs
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=2, num_attention_heads=2,
                                         num_key_value_heads=2)).eval()
    # Two right-padded sequences: prompts of 4 and 2 tokens, responses of 3 and 4 tokens.
    seq = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 0], [3, 4, 12, 13, 14, 15, 0, 0]])
    att = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 0, 0]])
    resp = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1, 0, 0]], dtype=torch.float)
    with torch.no_grad():
        got = sequence_logprobs(model, seq, att, resp, temperature=0.7)
        full = torch.log_softmax(model(input_ids=seq, attention_mask=att).logits / 0.7, dim=-1)
    want = torch.zeros_like(got)
    want[:, 1:] = full[:, :-1].gather(-1, seq[:, 1:].unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(got, want * resp, atol=1e-5)
    assert (got[resp == 0] == 0).all() and (got[resp == 1] < 0).all()


def test_a_group_with_a_failed_rollout_is_dropped_whole():
    from arclight_trainer.rollouts import RolloutResult, Triplet
    from arclight_trainer.samples import failed_groups, make_samples

    def result(group: str, reward: float | None) -> RolloutResult:
        return RolloutResult(rollout_id=f"{group}-{reward}", data_id=group,
                             state="succeeded" if reward is not None else "failed",
                             reward=reward, triplets=[Triplet([1, 2], [3], [-0.5])])

    results = [result("a", 1.0), result("a", 0.0), result("b", 1.0), result("b", None)]
    assert failed_groups(results) == {"b"}
    samples = make_samples(results, 1.0, 5.0)
    # only group a trains; normalising b's one survivor alone would give it a made-up signal
    assert len(samples) == 2 and sorted(s.advantage > 0 for s in samples) == [False, True]


@pytest.mark.parametrize(("files", "cores"), [
    ({"cpu.max": "150000 100000\n"}, 1.5), ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "200000", "cpu/cpu.cfs_period_us": "100000"}, 2.0), ({}, None)])
def test_the_cpu_limit_comes_from_the_cgroup(tmp_path, files, cores):
    from arclight_trainer.phases import cpu_limit

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cpu_limit(str(tmp_path)) == cores


def test_micro_batches_keep_the_logits_under_budget_and_every_sample():
    from arclight_trainer.samples import (
        LOGITS_BUDGET_BYTES,
        MICRO_BATCH_TOKENS,
        Sample,
        micro_batches,
    )

    vocab = 49152
    samples = [Sample([1] * (40 + 30 * (i % 5)), [2] * 24, [-1.0] * 24, 1.0) for i in range(40)]
    parts = micro_batches(samples, 1, vocab)
    assert sorted(id(s) for p in parts for s in p) == sorted(id(s) for s in samples)
    for part in parts:
        width = max(len(s.prompt_ids) + len(s.response_ids) for s in part)
        assert len(part) == 1 or (len(part) * width <= MICRO_BATCH_TOKENS
                                  and len(part) * width * vocab * 4 <= LOGITS_BUDGET_BYTES)
    assert len(parts) > 1
    # short samples: the asked accumulation alone decides
    few = [Sample([1] * 5, [2] * 3, [-1.0] * 3, 1.0) for _ in range(6)]
    assert [len(p) for p in micro_batches(few, 2, vocab)] == [3, 3]
