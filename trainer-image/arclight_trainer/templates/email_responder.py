"""email-responder: replies to a customer email from internal notes; rubric-scored reply."""

from __future__ import annotations

import re

from .base import Column, Episode, final_reply
from .fields import text
from .rubric import RubricTemplate
from .text_metrics import contains_phrase

GREETING_RE = re.compile(r"^\s*(hi|hello|dear|hey|good (morning|afternoon|evening))\b", re.IGNORECASE)
SIGN_OFF_RE = re.compile(r"\b(regards|best|thanks|thank you|sincerely|cheers)\b[^\n]*\n?[^\n]*$",
                         re.IGNORECASE)


class EmailResponder(RubricTemplate):
    name = "email-responder"
    task_type = "email"
    description = "Writes a reply to a customer email that conveys the given notes."
    max_turns = 1
    system_prompt = ("Write a short, friendly email reply. Greet the sender by first name, "
                     "give the facts from the notes, and sign off.")
    columns = (
        Column("sender", "text", "the sender's full name"),
        Column("email", "text", "the email to answer"),
        Column("notes", "text", "what the reply must tell the sender"),
        Column("required_facts", "list", 'facts the reply must state, "a|b" for alternatives'),
        Column("forbidden_content", "list", "phrases the reply must not contain", optional=True),
        Column("max_words", "int", "the longest acceptable reply in words"),
    )

    def prompt(self, item: dict) -> str:
        return f"Email from {text(item, 'sender')}:\n{text(item, 'email')}\n\nNotes: " + text(
            item, "notes")

    def rubric(self, item: dict, answer: str) -> list[tuple[str, bool]]:
        first = text(item, "sender").split()[0]
        opening = answer.strip().splitlines()[0] if answer.strip() else ""
        return super().rubric(item, answer) + [
            (f"greets {first}", bool(GREETING_RE.match(opening)) and contains_phrase(opening,
                                                                                     first)),
            ("signs off", bool(SIGN_OFF_RE.search(answer.strip()))),
        ]

    def format_ok(self, item: dict, episode: Episode) -> bool:
        reply = self.extract_answer(final_reply(episode))
        return bool(GREETING_RE.match(reply)) and len(reply.strip().splitlines()) >= 2


TEMPLATE = EmailResponder()
