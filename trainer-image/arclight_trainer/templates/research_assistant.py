"""research-assistant: searches a bundled corpus and answers with citations; F1 + citation F1."""

from __future__ import annotations

from ..tools.retrieval import corpus_index
from .agent import parse_answer
from .base import Column, Episode, Template, final_reply
from .citations import cited_answer_metric, well_formed
from .fields import text


class ResearchAssistant(Template):
    name = "research-assistant"
    task_type = "research"
    description = "Answers questions by searching a document corpus (SEARCH: words) and citing."
    max_turns = 3
    tools = ("SEARCH",)
    system_prompt = ("Answer the question using the library. To search, write SEARCH: <words>. "
                     "End with a line: Answer: <short answer> [passage id]")
    columns = (Column("question", "text", "the question"),
               Column("answers", "list", "acceptable short answers"),
               Column("evidence_ids", "list", "ids of the passages that hold the answer"))

    def prompt(self, item: dict) -> str:
        return text(item, "question")

    def call_tool(self, item: dict, tool: str, argument: str) -> str:
        hits = corpus_index().search(argument, k=2)
        return "\n".join(f"[{p['id']}] {p['text']}" for p in hits) or "no passages found"

    def format_ok(self, item: dict, episode: Episode) -> bool:
        return well_formed(parse_answer(final_reply(episode)))

    def task_metric(self, item: dict, episode: Episode) -> tuple[float, bool]:
        return cited_answer_metric(item, episode.answer)


TEMPLATE = ResearchAssistant()
