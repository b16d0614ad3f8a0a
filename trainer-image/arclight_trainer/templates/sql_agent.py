"""sql-agent: writes SQL for questions over the bundled shop database; scored by execution."""

from __future__ import annotations

import re

from ..tools.sql import SQLError, format_rows, run_query, same_results
from .base import Column, DatasetError, Episode, Template, ToolError, final_reply
from .fields import text

SCHEMA = ("Tables: customers(id, name, city, email); products(id, name, category, price); "
          "orders(id, customer_id, product_id, quantity, status, order_date, ship_date).")
SELECT_RE = re.compile(r"\b(select|with)\b.*", re.IGNORECASE | re.DOTALL)
FENCE_RE = re.compile(r"```(?:sql)?\s*(.*?)```", re.IGNORECASE | re.DOTALL)


class SQLAgent(Template):
    name = "sql-agent"
    task_type = "sql"
    description = "Answers questions about a shop database by writing SQLite queries."
    max_turns = 3
    tools = ("SQL",)
    system_prompt = (f"You write SQLite queries. {SCHEMA} To try a query, write SQL: <query>. "
                     "End with a line: Answer: <final query>")
    columns = (Column("question", "text", "a question about the shop database"),
               Column("gold_sql", "text", "a correct SELECT query answering it"))

    def check_item(self, item: dict, row: int) -> None:
        try:
            run_query(text(item, "gold_sql"))
        except SQLError as exc:
            raise DatasetError(f"gold query fails: {exc}", row=row, column="gold_sql",
                               fix="test the query with sqlite3 against the shop schema "
                                   f"({SCHEMA})") from None

    def prompt(self, item: dict) -> str:
        return text(item, "question")

    def call_tool(self, item: dict, tool: str, argument: str) -> str:
        try:
            return format_rows(*run_query(argument))
        except SQLError as exc:
            raise ToolError(str(exc)) from None

    def extract_answer(self, reply: str) -> str:
        answer = super().extract_answer(reply)
        fenced = FENCE_RE.search(reply)
        if not SELECT_RE.search(answer) and fenced:
            answer = fenced.group(1)
        found = SELECT_RE.search(answer)
        return found.group(0).strip().strip("`").strip() if found else answer

    def format_ok(self, item: dict, episode: Episode) -> bool:
        if not super().format_ok(item, episode):
            return False
        try:
            run_query(self.extract_answer(final_reply(episode)))
        except SQLError:
            return False
        return True

    def task_metric(self, item: dict, episode: Episode) -> tuple[float, bool]:
        gold_sql = text(item, "gold_sql")
        try:
            predicted = run_query(episode.answer)[1]
        except SQLError:
            return 0.0, False
        ordered = "order by" in gold_sql.lower()
        solved = same_results(predicted, run_query(gold_sql)[1], ordered=ordered)
        return float(solved), solved


TEMPLATE = SQLAgent()
