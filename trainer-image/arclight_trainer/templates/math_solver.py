"""math-solver: small arithmetic word problems, with a calculator tool; exact numeric reward."""

from __future__ import annotations

from ..tools.calculator import CalculatorError, evaluate, format_number
from .base import Column, Episode, Template, ToolError, final_reply
from .fields import number, text
from .text_metrics import numbers

TOLERANCE = 1e-6


class MathSolver(Template):
    name = "math-solver"
    task_type = "math"
    description = "Solves short arithmetic problems; may call a calculator (CALC: 7 + 5)."
    max_turns = 3
    tools = ("CALC",)
    system_prompt = ("Solve the math problem. You may write CALC: <expression> to use a "
                     "calculator. End with a line: Answer: <number>")
    columns = (Column("question", "text", "the problem, e.g. What is 7 + 5?"),
               Column("answer", "number", "the exact numeric answer, e.g. 12"))

    def prompt(self, item: dict) -> str:
        return text(item, "question")

    def call_tool(self, item: dict, tool: str, argument: str) -> str:
        try:
            return format_number(evaluate(argument))
        except CalculatorError as exc:
            raise ToolError(str(exc)) from None

    def format_ok(self, item: dict, episode: Episode) -> bool:
        return super().format_ok(item, episode) and bool(
            numbers(self.extract_answer(final_reply(episode))))

    def task_metric(self, item: dict, episode: Episode) -> tuple[float, bool]:
        found = numbers(episode.answer)
        solved = bool(found) and abs(found[-1] - number(item, "answer")) <= TOLERANCE
        return float(solved), solved


TEMPLATE = MathSolver()
