"""The ten ready-made templates: agent, reward and sample dataset each.

    from arclight_trainer.templates import NAMES, get_template
    template = get_template("math-solver")
"""

from __future__ import annotations

import importlib

from .base import Template

MODULES = {
    "customer-support": "customer_support",
    "coding-assistant": "coding_assistant",
    "sql-agent": "sql_agent",
    "research-assistant": "research_assistant",
    "content-writer": "content_writer",
    "task-planner": "task_planner",
    "math-solver": "math_solver",
    "document-qa": "document_qa",
    "email-responder": "email_responder",
    "meeting-scheduler": "meeting_scheduler",
}
NAMES: tuple[str, ...] = tuple(MODULES)


def get_template(name: str) -> Template:
    """The template called `name` (one of NAMES); KeyError naming the choices otherwise."""
    if name not in MODULES:
        raise KeyError(f"unknown template {name!r}; choose one of {', '.join(NAMES)}")
    return importlib.import_module(f".{MODULES[name]}", __name__).TEMPLATE
