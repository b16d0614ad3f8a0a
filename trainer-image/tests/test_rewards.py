"""Hand-checked rewards for every template: right, wrong and malformed answers."""

from __future__ import annotations

import pytest

from arclight_trainer.templates import get_template
from arclight_trainer.templates.base import Episode, RewardError

pytestmark = pytest.mark.unit

TASK_AND_FORMAT = [{"name": "taskSuccess", "weight": "0.8", "params": {}},
                   {"name": "format", "weight": "0.2", "params": {}}]


def episode(reply: str, *, answer: str | None = None, latency: float = 0.1,
            template: str | None = None) -> Episode:
    """An episode whose final assistant reply is `reply` (answer parsed by the template)."""
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": reply}]
    if answer is None and template:
        answer = get_template(template).extract_answer(reply)
    return Episode(messages=messages, answer=answer if answer is not None else reply,
                   tool_calls=[], turns=1, latency_s=latency)


def score(template: str, item: dict, reply: str, components=TASK_AND_FORMAT):
    t = get_template(template)
    return t.score(item, episode(reply, template=template), components)


# --- math-solver -----------------------------------------------------------------------------

MATH = {"question": "What is 7 + 5?", "answer": 12}


def test_math_right_answer_succeeds_with_full_reward():
    result = score("math-solver", MATH, "7 plus 5 makes 12.\nAnswer: 12")
    assert result.success and result.total == pytest.approx(1.0)
    assert result.components == {"taskSuccess": 1.0, "format": 1.0}


def test_math_wrong_answer_fails_and_scores_only_format():
    result = score("math-solver", MATH, "Answer: 13")
    assert not result.success
    assert result.components == {"taskSuccess": 0.0, "format": 1.0}
    assert result.total == pytest.approx(0.2)


def test_math_unmarked_answer_counts_but_loses_format():
    result = score("math-solver", MATH, "7 + 5 = 12")
    assert result.success and result.components["format"] == 0.0
    assert result.total == pytest.approx(0.8)


@pytest.mark.parametrize("reply", ["", "Answer:", "I do not know", "Answer: twelve-ish"])
def test_math_malformed_output_has_format_zero(reply):
    result = score("math-solver", MATH, reply)
    assert result.components["format"] == 0.0 and not result.success


def test_math_string_answer_from_csv_is_compared_numerically():
    result = score("math-solver", {"question": "What is 1,000 + 200?", "answer": "1200"},
                   "Answer: 1,200")
    assert result.success


# --- shared components -----------------------------------------------------------------------

def test_latency_and_cost_are_subtracted_penalties():
    t = get_template("math-solver")
    slow = episode("Answer: 12", latency=20.0, template="math-solver")
    comps = [{"name": "taskSuccess", "weight": "1", "params": {}},
             {"name": "latency", "weight": "0.5",
              "params": {"targetSeconds": "10", "maxSeconds": "30"}}]
    result = t.score(MATH, slow, comps)
    assert result.components["latency"] == pytest.approx(0.5)
    assert result.total == pytest.approx(1.0 - 0.25)
    verbose = episode("x" * 400 + "\nAnswer: 12", template="math-solver")
    cost = t.score(MATH, verbose, [{"name": "cost", "weight": "1",
                                    "params": {"budgetTokens": "100"}}])
    assert cost.components["cost"] == 1.0 and cost.total == pytest.approx(-1.0)


def test_safety_flags_leaked_secret_and_custom_pattern():
    t = get_template("math-solver")
    comps = [{"name": "safety", "weight": "1", "params": {"patterns": ["(?i)idiot"]}}]
    assert t.score(MATH, episode("Answer: 12", template="math-solver"), comps).total == 1.0
    leaked = episode("my key is sk-abcdefghijklmnopqrstuv\nAnswer: 12", template="math-solver")
    assert t.score(MATH, leaked, comps).components["safety"] == 0.0
    rude = episode("Answer: 12, idiot", template="math-solver")
    assert t.score(MATH, rude, comps).components["safety"] == 0.0


def answer_length_reward(item, episode):
    """A custom reward used by the test below: 1 for answers of at most 3 characters."""
    return len(episode.answer) <= 3


def test_custom_component_calls_the_entrypoint():
    t = get_template("math-solver")
    comps = [{"name": "custom", "weight": "0.5",
              "params": {"entrypoint": f"{__name__}:answer_length_reward"}}]
    assert t.score(MATH, episode("Answer: 12", template="math-solver"), comps).total == 0.5
    assert t.score(MATH, episode("Answer: 12 apples", template="math-solver"), comps).total == 0


@pytest.mark.parametrize("components, words", [
    ([{"name": "speed", "weight": "1"}], "unknown component 'speed'"),
    ([{"name": "format", "weight": "lots"}], "decimal string"),
    ([{"name": "format", "weight": "-1"}], "must not be negative"),
    ([{"name": "latency", "weight": "1", "params": {"target": "1"}}], "unknown params"),
    ([{"name": "latency", "weight": "1", "params": {"targetSeconds": "9", "maxSeconds": "3"}}],
     "targetSeconds < maxSeconds"),
    ([{"name": "custom", "weight": "1", "params": {}}], "entrypoint is required"),
    ([{"name": "custom", "weight": "1", "params": {"entrypoint": "nowhere_mod:fn"}}],
     "cannot be loaded"),
    ([{"name": "safety", "weight": "1", "params": {"patterns": ["("]}}], "invalid"),
    ([], "non-empty"),
])
def test_bad_components_raise_reward_error(components, words):
    with pytest.raises(RewardError, match=words):
        get_template("math-solver").score(MATH, episode("Answer: 12"), components)
