"""Template agents driven by a scripted model: prompts, tool loops, answer parsing, data."""

from __future__ import annotations

import json
import re

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
    ep, _chat = run("math-solver", {"question": "What is 2 + 2?", "answer": 4},
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


def test_names_follow_the_api_and_every_template_is_complete():
    assert NAMES == ("customer-support", "coding-assistant", "sql-agent", "research-assistant",
                     "content-writer", "task-planner", "math-solver", "document-qa",
                     "email-responder", "meeting-scheduler")
    task_types = set()
    for name in NAMES:
        t = get_template(name)
        assert t.name == name and t.description and t.system_prompt and t.max_turns >= 1
        assert t.task_type not in task_types
        task_types.add(t.task_type)
        assert sum(float(c["weight"]) for c in t.default_reward) == pytest.approx(1.0)


def test_unknown_template_names_the_choices():
    with pytest.raises(KeyError, match="math-solver"):
        get_template("poetry")


@pytest.mark.parametrize("name", NAMES)
def test_sample_dataset_is_big_enough_and_valid(name):
    items = sample(name)
    assert len(items) >= (200 if name == "math-solver" else 60)
    assert len({json.dumps(i, sort_keys=True) for i in items}) == len(items)
    template = get_template(name)
    for row, item in enumerate(items, 1):
        template.validate_item(item, row)


def test_sql_agent_tool_loop_runs_queries_against_the_shop():
    item = {"question": "How many orders are cancelled?",
            "gold_sql": "SELECT COUNT(*) FROM orders WHERE status = 'cancelled'"}
    ep, _chat = run("sql-agent", item, "SQL: SELECT COUNT(*) FROM orders WHERE status='cancelled'",
                   "SQL: DROP TABLE orders",
                   "Answer: SELECT COUNT(*) FROM orders WHERE status='cancelled'")
    assert [c["tool"] for c in ep.tool_calls] == ["SQL", "SQL"]
    assert ep.tool_calls[0]["output"] == "COUNT(*)\n15"
    assert "SQL error" in ep.tool_calls[1]["output"] and ep.error
    assert ep.answer == "SELECT COUNT(*) FROM orders WHERE status='cancelled'"
    assert get_template("sql-agent").score(item, ep, [{"name": "taskSuccess", "weight": "1"}]
                                           ).success


def test_customer_support_looks_up_the_order():
    item = sample("customer-support")[41]
    order = re.search(r"\d{4}", item["message"]).group()
    ep, chat = run("customer-support", item, f"LOOKUP: {order}", "Hi! Your order is on its way.")
    assert ep.tool_calls[0]["output"].startswith(f"order {order}: ")
    assert "status" in chat.seen[1][-1]["content"]
    assert ep.answer == "Hi! Your order is on its way."


def test_customer_support_unknown_order_is_an_observation_not_a_crash():
    item = sample("customer-support")[0]
    ep, _ = run("customer-support", item, "LOOKUP: 99999", "Sorry, I cannot find that order.")
    assert ep.tool_calls[0]["output"] == "LOOKUP error: no order 99999"


def test_research_assistant_searches_the_corpus_and_cites():
    item = {"question": "Which river flows through Velmora?", "answers": ["Orr"],
            "evidence_ids": ["p001"]}
    ep, _chat = run("research-assistant", item, "SEARCH: Velmora river", "Answer: Orr [p001]")
    assert ep.tool_calls[0]["output"].startswith("[p001] Velmora was founded")
    t = get_template("research-assistant")
    assert t.score(item, ep, t.default_reward).success


def test_task_planner_check_tool_reports_violations():
    item = {"goal": "Bake bread", "tasks": ["shape loaf", "mix dough", "bake loaf"],
            "dependencies": ["mix dough>shape loaf", "shape loaf>bake loaf"]}
    ep, _ = run("task-planner", item, "CHECK: shape loaf, mix dough, bake loaf",
                "CHECK: mix dough -> shape loaf -> bake loaf",
                "Answer: mix dough, shape loaf, bake loaf")
    assert ep.tool_calls[0]["output"] == "mix dough must come before shape loaf"
    assert ep.tool_calls[1]["output"] == "ok: all constraints satisfied"
    assert ep.turns == 3


def test_meeting_scheduler_check_tool_names_the_busy_person():
    item = {"request": "Find a 60-minute meeting time for Ana, Ben.",
            "busy": {"Ana": ["09:00-10:00"], "Ben": ["10:30-12:00"]},
            "duration_minutes": 60, "day_start": "09:00", "day_end": "17:00"}
    ep, _ = run("meeting-scheduler", item, "CHECK: 10:00", "CHECK: 1pm", "Answer: 13:00")
    assert ep.tool_calls[0]["output"] == "10:00: Ben is busy 10:30-12:00"
    assert ep.tool_calls[1]["output"] == "13:00: ok: all constraints satisfied"
    assert ep.answer == "13:00"


@pytest.mark.parametrize("name, reply, answer", [
    ("coding-assistant", "Sure!\n```python\ndef f(x):\n    return x\n```\nDone.",
     "def f(x):\n    return x"),
    ("coding-assistant", "def f(x):\n    return x", "def f(x):\n    return x"),
    ("document-qa", "The passage says so.\n**Answer:** Tariq Aziz [P1]", "Tariq Aziz [P1]"),
    ("content-writer", "Title: Hi\nBody text.", "Title: Hi\nBody text."),
    ("email-responder", "Answer: Hi Dana,\nDone.\nBest", "Hi Dana,\nDone.\nBest"),
    ("math-solver", "answer = 12", "12"),
    ("math-solver", "Answer: 5\nfinal answer: 6", "6"),
])
def test_answers_are_parsed_forgivingly(name, reply, answer):
    assert get_template(name).extract_answer(reply) == answer


def test_single_turn_templates_ignore_tool_like_lines():
    item = sample("email-responder")[0]
    ep, chat = run("email-responder", item, "Subject: Re: your email\nHi there")
    assert ep.turns == 1 and ep.tool_calls == [] and len(chat.seen) == 1
