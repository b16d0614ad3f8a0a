"""document-qa: answers a question from given passages, citing them; F1 + citation F1."""

from __future__ import annotations

from .agent import parse_answer
from .base import Column, Episode, Template, final_reply
from .citations import cited_answer_metric, well_formed
from .fields import as_list, text


class DocumentQA(Template):
    name = "document-qa"
    task_type = "qa"
    description = "Answers a question from the passages given with it, citing the passage."
    max_turns = 1
    system_prompt = ("Answer the question from the passages. Reply with one line: "
                     "Answer: <short answer> [P<number>]")
    columns = (Column("question", "text", "the question"),
               Column("passages", "list", "the passages to read, in order P1, P2, ..."),
               Column("answers", "list", "acceptable short answers"),
               Column("evidence_ids", "list", "ids (P1, P2, ...) of the passages holding it"))

    def prompt(self, item: dict) -> str:
        passages = "\n".join(f"[P{n}] {p}" for n, p in enumerate(as_list(item, "passages"), 1))
        return f"{passages}\n\nQuestion: {text(item, 'question')}"

    def format_ok(self, item: dict, episode: Episode) -> bool:
        return well_formed(parse_answer(final_reply(episode)))

    def task_metric(self, item: dict, episode: Episode) -> tuple[float, bool]:
        return cited_answer_metric(item, episode.answer)


TEMPLATE = DocumentQA()
