"""Training backends: `cpu` (the torch loop in this process) and `verl` (GPU, Agent Lightning's trainer)."""

from __future__ import annotations

from arclight.api.trainer import FailureReason

from ..failures import TrainerFailure
from .base import Backend

#: The algorithms each backend implements (the API also names `apo` and `sft`).
ALGORITHMS = {"cpu": ("grpo",), "verl": ("grpo", "ppo")}


def check_algorithm(backend: str, algorithm: str) -> None:
    """Fail fast (ConfigInvalid) when `backend` does not implement `algorithm`."""
    supported = ALGORITHMS.get(backend, ())
    if algorithm in supported:
        return
    elsewhere = [name for name, algos in ALGORITHMS.items() if algorithm in algos]
    hints = [f"Set spec.algorithm to {' or '.join(supported)} (or auto) for backend {backend}."]
    if elsewhere:
        hints.append(f"{algorithm} runs on backend {' or '.join(elsewhere)} "
                     "(request a GPU: resources.gpu).")
    raise TrainerFailure(FailureReason.CONFIG_INVALID, f"algorithm {algorithm!r} is not implemented by "
                         f"backend {backend!r}, which runs {', '.join(supported)}", hints)


def get_backend(name: str) -> Backend:
    """The backend called `name` (imports only what that backend needs)."""
    if name == "cpu":
        from .cpu import CpuBackend

        return CpuBackend()
    if name == "verl":
        from .verl import VerlBackend

        return VerlBackend()
    raise KeyError(f"unknown backend {name!r}; choose cpu or verl")
