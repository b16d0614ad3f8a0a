"""task-planner: orders a goal's tasks so every dependency holds; scored by the plan checker."""

from __future__ import annotations

from ..tools.scheduling import check_plan, split_plan
from .agent import parse_answer
from .base import Column, DatasetError, Episode, Template, ToolError, final_reply
from .fields import as_list, text


class TaskPlanner(Template):
    name = "task-planner"
    task_type = "planning"
    description = "Orders a goal's tasks so that every dependency is respected."
    max_turns = 3
    tools = ("CHECK",)
    system_prompt = ("Put the tasks in a working order. To test an order, write CHECK: a, b, c. "
                     "End with a line: Answer: <tasks in order, comma separated>")
    columns = (Column("goal", "text", "what the plan achieves"),
               Column("tasks", "list", "the task names"),
               Column("dependencies", "list", '"A>B" entries: task A before task B'))

    def check_item(self, item: dict, row: int) -> None:
        tasks = [str(t) for t in as_list(item, "tasks")]
        for dep in as_list(item, "dependencies"):
            before, sep, after = str(dep).partition(">")
            if not sep or before.strip() not in tasks or after.strip() not in tasks:
                raise DatasetError(f"dependency {dep!r} must be 'A>B' with A and B in tasks",
                                   row=row, column="dependencies",
                                   fix='write each dependency as "task a>task b" using the '
                                       'exact task names')

    def prompt(self, item: dict) -> str:
        tasks = ", ".join(str(t) for t in as_list(item, "tasks"))
        rules = "; ".join(str(d).replace(">", " before ") for d in as_list(item, "dependencies"))
        return f"Goal: {text(item, 'goal')}\nTasks: {tasks}\nRules: {rules}"

    def check(self, item: dict, answer: str):
        """The plan checker's verdict on an answer."""
        return check_plan(split_plan(answer), [str(t) for t in as_list(item, "tasks")],
                          [str(d).replace(" > ", ">") for d in as_list(item, "dependencies")])

    def call_tool(self, item: dict, tool: str, argument: str) -> str:
        if not split_plan(argument):
            raise ToolError("write CHECK: followed by the tasks in order")
        return self.check(item, argument).describe()

    def format_ok(self, item: dict, episode: Episode) -> bool:
        answer = parse_answer(final_reply(episode))
        return bool(answer) and len(split_plan(answer)) >= 2

    def task_metric(self, item: dict, episode: Episode) -> tuple[float, bool]:
        verdict = self.check(item, episode.answer)
        return verdict.fraction, verdict.ok


TEMPLATE = TaskPlanner()
