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


# --- per template: right -> success, wrong -> lower and no success, malformed -> format 0 -------

SQL = {"question": "How many orders are cancelled?",
       "gold_sql": "SELECT COUNT(*) FROM orders WHERE status = 'cancelled'"}
SUPPORT = {"message": "Hi, this is Omar. Where is my order 1042?",
           "required_facts": ["shipped|on its way", "Webcam", "2024-03-18"],
           "forbidden_content": ["lena.vogel@example.com", "guarantee"], "max_words": 40}
EMAIL = {"sender": "Dana Ruiz", "email": "Hello, I was charged twice for invoice 5521. Dana",
         "notes": "The duplicate charge on invoice 5521 is refunded within 5 business days.",
         "required_facts": ["refund|refunded", "5521", "5 business days"],
         "forbidden_content": ["INTERNAL", "guarantee"], "max_words": 80}
CONTENT = {"brief": "Write a short product description of the Lumo desk lamp for students.",
           "required_facts": ["Lumo", "three brightness levels|3 brightness levels", "USB-C"],
           "forbidden_content": ["guarantee|guaranteed", "cheapest"],
           "min_words": 10, "max_words": 40}
PLAN = {"goal": "Bake bread", "tasks": ["shape loaf", "mix dough", "bake loaf"],
        "dependencies": ["mix dough>shape loaf", "shape loaf>bake loaf"]}
MEETING = {"request": "Find a 60-minute meeting time for Ana, Ben.",
           "busy": {"Ana": ["09:00-10:00", "13:00-14:00"], "Ben": ["10:30-12:00"]},
           "duration_minutes": 60, "day_start": "09:00", "day_end": "17:00"}
RESEARCH = {"question": "Which river flows through Velmora?", "answers": ["Orr", "Orr river"],
            "evidence_ids": ["p001"]}
DOCQA = {"question": "Who founded Altora?", "passages": ["Altora was founded by Tariq Aziz.",
                                                          "Bexwell was founded by Ellen Park."],
         "answers": ["Tariq Aziz"], "evidence_ids": ["P1"]}
CODE = {"task": "Write a Python function add_2(x) that returns x plus 2.",
        "entry_point": "add_2",
        "tests": [{"args": [0], "expected": 2}, {"args": [5], "expected": 7},
                  {"args": [-3], "expected": -1}]}

CASES = {
    # template: (item, right reply, wrong reply, malformed reply)
    "sql-agent": (SQL, "Answer: SELECT count(id) FROM orders WHERE status='cancelled';",
                  "Answer: SELECT COUNT(*) FROM orders", "Answer: the number is 15"),
    "customer-support": (
        SUPPORT,
        "Hi Omar, your order 1042 (1 Webcam) has shipped on 2024-03-18 and is on its way.",
        "Hi Omar, we guarantee your order will arrive soon. Write to lena.vogel@example.com.",
        "LOOKUP: 1042"),
    "email-responder": (
        EMAIL,
        ("Hi Dana,\nSorry about invoice 5521: the duplicate charge is refunded within "
        "5 business days.\nBest regards,\nSupport"),
        "Hi Dana,\nWe looked at it and we guarantee it is fine.\nBest regards,\nSupport",
        "refund"),
    "content-writer": (
        CONTENT,
        ("Title: Light that studies with you\nThe Lumo desk lamp gives students three "
        "brightness levels and charges over USB-C, so late nights stay bright and tidy."),
        "Title: Lumo\nThe cheapest lamp, guaranteed to make you smarter.",
        "lamp"),
    "task-planner": (PLAN, "Answer: mix dough, shape loaf, bake loaf",
                     "Answer: bake loaf, mix dough, shape loaf", "I would start baking"),
    "meeting-scheduler": (MEETING, "Answer: 14:00", "Answer: 11:00", "Answer: sometime later"),
    "research-assistant": (RESEARCH, "Answer: the Orr river [p001]", "Answer: Sarn [p002]",
                           "It is a river."),
    "document-qa": (DOCQA, "Answer: Tariq Aziz [P1]", "Answer: Ellen Park [P2]", "Tariq"),
    "coding-assistant": (CODE, "```python\ndef add_2(x):\n    return x + 2\n```",
                         "```python\ndef add_2(x):\n    return x * 2\n```",
                         "add_2 adds two to x"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_right_answer_succeeds_with_high_reward(name):
    item, right, _, _ = CASES[name]
    get_template(name).validate_item(item, 1)
    result = score(name, item, right)
    assert result.success, result
    assert result.components == {"taskSuccess": 1.0, "format": 1.0}
    assert result.total == pytest.approx(1.0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_wrong_answer_fails_with_lower_reward(name):
    item, right, wrong, _ = CASES[name]
    result = score(name, item, wrong)
    assert not result.success, result
    assert result.components["taskSuccess"] < 1.0
    assert result.total < score(name, item, right).total


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_output_has_format_zero_and_no_crash(name):
    item, _, _, malformed = CASES[name]
    result = score(name, item, malformed)
    assert result.components["format"] == 0.0 and not result.success, result


def test_sql_partial_credit_is_none_and_order_matters_only_with_order_by():
    cheapest = {"question": "List the three cheapest products, cheapest first.",
                "gold_sql": "SELECT name FROM products ORDER BY price ASC LIMIT 3"}
    reversed_order = ("Answer: SELECT name FROM (SELECT name, price FROM products "
                      "ORDER BY price ASC LIMIT 3) ORDER BY price DESC")
    assert not score("sql-agent", cheapest, reversed_order).success
    unordered = {"question": "List lighting products.",
                 "gold_sql": "SELECT name FROM products WHERE category = 'lighting'"}
    any_order = "Answer: SELECT name FROM products WHERE category='lighting' ORDER BY name DESC"
    assert score("sql-agent", unordered, any_order).success


def test_sql_answer_cannot_modify_the_database():
    result = score("sql-agent", SQL, "Answer: DELETE FROM orders")
    assert not result.success and result.components["format"] == 0.0
    assert score("sql-agent", SQL, "Answer: SELECT COUNT(*) FROM orders WHERE "
                                   "status = 'cancelled'").success


def test_rubric_partial_credit_counts_rubric_items():
    # mentions the status and product but not the date: 2 of 3 facts, forbidden absent, length ok
    result = score("customer-support", SUPPORT,
                   "Hi Omar, your Webcam order has shipped and is on its way.")
    assert not result.success
    assert result.components["taskSuccess"] == pytest.approx(5 / 6)


def test_rubric_length_bound_is_enforced():
    long_reply = ("Hi Omar, your order 1042 (Webcam) has shipped on 2024-03-18. " +
                  "Thank you for shopping with us. " * 10)
    result = score("customer-support", SUPPORT, long_reply)
    assert not result.success and result.components["taskSuccess"] == pytest.approx(5 / 6)


def test_safety_uses_the_items_forbidden_content():
    comps = [{"name": "safety", "weight": "1", "params": {}}]
    t = get_template("email-responder")
    bad = episode("Hi Dana,\nINTERNAL: refund approved.\nBest,\nSupport")
    good = episode(CASES["email-responder"][1])
    assert t.score(EMAIL, bad, comps).components["safety"] == 0.0
    assert t.score(EMAIL, good, comps).components["safety"] == 1.0


def test_planner_partial_order_gets_partial_credit():
    result = score("task-planner", PLAN, "Answer: 1. mix dough 2. bake loaf 3. shape loaf")
    assert not result.success
    assert result.components["taskSuccess"] == pytest.approx(2 / 3)
    missing = score("task-planner", PLAN, "Answer: mix dough, shape loaf")
    assert missing.components["taskSuccess"] == pytest.approx(1 / 3)


def test_meeting_outside_hours_and_pm_times():
    assert score("meeting-scheduler", MEETING, "Answer: 2pm").success
    late = score("meeting-scheduler", MEETING, "Answer: 16:30")
    assert not late.success and late.components["taskSuccess"] == pytest.approx(2 / 3)


def test_code_partial_tests_and_sandbox_refusals():
    half = "```python\ndef add_2(x):\n    return 2 if x == 0 else x + 3\n```"
    assert score("coding-assistant", CODE, half).components["taskSuccess"] == pytest.approx(1 / 3)
    sneaky = "```python\nimport os\ndef add_2(x):\n    return x + 2\n```"
    result = score("coding-assistant", CODE, sneaky)
    assert not result.success and result.components["format"] == 0.0
    looping = "```python\ndef add_2(x):\n    while True:\n        pass\n```"
    assert not score("coding-assistant", CODE, looping).success


def test_research_wrong_citation_loses_citation_credit():
    result = score("research-assistant", RESEARCH, "Answer: Orr [p002]")
    assert not result.success
    assert result.components["taskSuccess"] == pytest.approx(0.7)
