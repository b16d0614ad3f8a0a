"""meeting-scheduler: picks a start time that fits everyone's calendar; checked by constraints."""

from __future__ import annotations

from ..tools.scheduling import Check, check_meeting, clock, interval, parse_time
from .agent import parse_answer
from .base import Column, DatasetError, Episode, Template, ToolError, final_reply
from .fields import integer, mapping, text


def busy_times(item: dict) -> dict[str, list[str]]:
    """Busy intervals per person; people with no entry (null, as Parquet writes them) are free."""
    return {str(p): [str(s) for s in slots] for p, slots in mapping(item, "busy").items()
            if slots is not None}


class MeetingScheduler(Template):
    name = "meeting-scheduler"
    task_type = "scheduling"
    description = "Finds a meeting start time that fits working hours and everyone's calendar."
    max_turns = 3
    tools = ("CHECK",)
    system_prompt = ("Pick a meeting start time (HH:MM). To test a time, write CHECK: HH:MM. "
                     "End with a line: Answer: HH:MM")
    columns = (Column("request", "text", "the meeting request"),
               Column("busy", "mapping", 'busy times per person, {"Ana": ["09:00-10:00"]}'),
               Column("duration_minutes", "int", "meeting length in minutes"),
               Column("day_start", "text", "start of working hours, HH:MM"),
               Column("day_end", "text", "end of working hours, HH:MM"))

    def check_item(self, item: dict, row: int) -> None:
        for column in ("day_start", "day_end"):
            if parse_time(text(item, column)) is None:
                raise DatasetError("not a clock time", row=row, column=column,
                                   fix='write times as "HH:MM", e.g. "09:00"')
        try:
            for slots in busy_times(item).values():
                for slot in slots:
                    interval(slot)
        except (ValueError, TypeError, AttributeError) as exc:
            raise DatasetError(str(exc), row=row, column="busy",
                               fix='map each person to a list like ["09:00-10:30"]') from None

    def prompt(self, item: dict) -> str:
        busy = "; ".join(f"{p} busy {', '.join(s)}" for p, s in busy_times(item).items())
        return (f"{text(item, 'request')} Hours {text(item, 'day_start')}-"
                f"{text(item, 'day_end')}. {busy}.")

    def check(self, item: dict, start: int) -> Check:
        """The constraint checker's verdict on a start time (minutes after midnight)."""
        return check_meeting(start, integer(item, "duration_minutes"), busy_times(item),
                             text(item, "day_start"), text(item, "day_end"))

    def call_tool(self, item: dict, tool: str, argument: str) -> str:
        start = parse_time(argument)
        if start is None:
            raise ToolError("write CHECK: followed by a time like 10:30")
        return f"{clock(start)}: {self.check(item, start).describe()}"

    def format_ok(self, item: dict, episode: Episode) -> bool:
        return parse_time(parse_answer(final_reply(episode)) or "") is not None

    def task_metric(self, item: dict, episode: Episode) -> tuple[float, bool]:
        start = parse_time(episode.answer)
        if start is None:
            return 0.0, False
        verdict = self.check(item, start)
        return verdict.fraction, verdict.ok


TEMPLATE = MeetingScheduler()
