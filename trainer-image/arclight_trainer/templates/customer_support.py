"""customer-support: answers order questions using an order LOOKUP tool; rubric-scored reply."""

from __future__ import annotations

import re

from ..tools.sql import SQLError, run_query
from .base import Column, Episode, ToolError, final_reply
from .fields import text
from .rubric import RubricTemplate
from .text_metrics import word_count

ORDER_QUERY = ("SELECT o.id, p.name, o.quantity, o.status, o.order_date, o.ship_date "
               "FROM orders o JOIN products p ON o.product_id = p.id WHERE o.id = {id}")


class CustomerSupport(RubricTemplate):
    name = "customer-support"
    task_type = "support"
    description = "Answers customers' order questions after looking the order up (LOOKUP: 1042)."
    max_turns = 3
    tools = ("LOOKUP",)
    system_prompt = ("You are a polite support agent for an online shop. To see an order, write "
                     "LOOKUP: <order number>. Then reply to the customer in a few sentences.")
    columns = (
        Column("message", "text", "the customer's message"),
        Column("required_facts", "list", 'facts the reply must state, "a|b" for alternatives'),
        Column("forbidden_content", "list", "phrases the reply must not contain", optional=True),
        Column("max_words", "int", "the longest acceptable reply in words"),
    )

    def prompt(self, item: dict) -> str:
        return text(item, "message")

    def call_tool(self, item: dict, tool: str, argument: str) -> str:
        digits = re.search(r"\d+", argument)
        if not digits:
            raise ToolError("write LOOKUP: followed by the order number")
        try:
            _, rows = run_query(ORDER_QUERY.format(id=int(digits.group())))
        except SQLError as exc:
            raise ToolError(str(exc)) from None
        if not rows:
            raise ToolError(f"no order {digits.group()}")
        oid, product, qty, status, ordered, shipped = rows[0]
        when = f", shipped {shipped}" if shipped else ""
        return f"order {oid}: {qty} x {product}, ordered {ordered}, status {status}{when}"

    def format_ok(self, item: dict, episode: Episode) -> bool:
        reply = final_reply(episode)
        return word_count(reply) >= 3 and not re.search(r"^\s*LOOKUP\s*:", reply, re.IGNORECASE | re.MULTILINE)


TEMPLATE = CustomerSupport()
