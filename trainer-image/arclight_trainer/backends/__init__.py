"""Training backends: `cpu` (the torch loop in this process) and `verl` (GPU, Agent Lightning's trainer)."""

from __future__ import annotations

from .base import Backend


def get_backend(name: str) -> Backend:
    """The backend called `name` (imports only what that backend needs)."""
    if name == "cpu":
        from .cpu import CpuBackend

        return CpuBackend()
    if name == "verl":
        from .verl import VerlBackend

        return VerlBackend()
    raise KeyError(f"unknown backend {name!r}; choose cpu or verl")
