"""Wall time per phase of a training run (model load, evaluation, rollouts, updates, ...).

The trainer prints one `trainer phases:` line at the end; `make demo` shows it in its table.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Phases:
    """Seconds spent in each named phase, summed over the run, in first-seen order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Add the time spent in the `with` body to phase `name`."""
        start = time.monotonic()
        try:
            yield
        finally:
            self.add(name, time.monotonic() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def line(self) -> str:
        """`trainer phases: model load=3.1s evaluation=20.4s ...`"""
        return "trainer phases: " + " ".join(
            f"{name.replace(' ', '_')}={value:.1f}s" for name, value in self.seconds.items())


def cpu_limit(root: str = "/sys/fs/cgroup") -> float | None:
    """The CPU limit of this container in cores (cgroup v2 `cpu.max` or v1 CFS quota)."""
    base = Path(root)
    try:
        quota, period = (base / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (base / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (base / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    return int(quota) / int(period)


def memory_line(root: str = "/sys/fs/cgroup") -> str:
    """`peak_rss=MB` of the trainer process, plus the container's memory now and at peak
    (trainer, gateway, runners and agent processes together) where cgroup v2 shows them."""
    import resource

    parts = [f"peak_rss={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10}MB"]
    for name, label in (("memory.current", "container"), ("memory.peak", "container_peak")):
        try:
            parts.append(f"{label}={int((Path(root) / name).read_text()) >> 20}MB")
        except (OSError, ValueError):
            pass
    return " ".join(parts)
