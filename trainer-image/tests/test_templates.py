"""Template agents driven by a scripted model: prompts, tool loops, answer parsing, data."""

from __future__ import annotations

import json

import pytest

from arclight_trainer.templates import NAMES, get_template

pytestmark = pytest.mark.unit


class ScriptedChat:
    """A test double of the MODEL only: returns the scripted replies in order."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.seen: list[list[dict]] = []

    def __call__(self, messages, *, max_tokens, temperature):
        self.seen.append([dict(m) for m in messages])
        return self.replies.pop(0)


def run(name: str, item: dict, *replies: str):
    chat = ScriptedChat(*replies)
    ep = get_template(name).run_episode(item, chat, max_tokens=48, temperature=1.0)
    return ep, chat


def sample(name: str) -> list[dict]:
    path = get_template(name).sample_dataset()
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_math_calculator_loop_feeds_the_result_back():
    item = {"question": "What is 17 + 25?", "answer": 42}
    ep, chat = run("math-solver", item, "CALC: 17 + 25", "Answer: 42")
    assert ep.turns == 2 and ep.answer == "42" and ep.error is None
    assert ep.tool_calls == [{"tool": "CALC", "input": "17 + 25", "output": "42"}]
    assert chat.seen[1][-1] == {"role": "user", "content": "CALC result: 42"}
    assert get_template("math-solver").score(
        item, ep, get_template("math-solver").default_reward).success


def test_math_bad_calculation_is_reported_to_the_model():
    ep, chat = run("math-solver", {"question": "What is 2 + 2?", "answer": 4},
                   "calc: import os", "**Answer:** 4")
    assert ep.error and "CALC error" in ep.tool_calls[0]["output"]
    assert ep.answer == "4"


def test_math_stops_at_max_turns_without_answer():
    replies = ["CALC: 1 + 1"] * 5
    ep, chat = run("math-solver", {"question": "What is 1 + 1?", "answer": 2}, *replies)
    assert ep.turns == get_template("math-solver").max_turns
    assert len(chat.seen) == ep.turns


def test_math_first_user_message_is_a_pure_function_of_the_item():
    item = {"question": "What is 3 + 4?", "answer": 7}
    _, first = run("math-solver", item, "Answer: 7")
    _, second = run("math-solver", item, "Answer: 8")
    assert first.seen[0][:2] == second.seen[0][:2]
    assert first.seen[0][1] == {"role": "user", "content": "What is 3 + 4?"}


def test_math_sample_dataset_is_small_valid_arithmetic():
    items = sample("math-solver")
    assert len(items) >= 200
    template = get_template("math-solver")
    for row, item in enumerate(items, 1):
        template.validate_item(item, row)
        assert 0 <= item["answer"] <= 40
