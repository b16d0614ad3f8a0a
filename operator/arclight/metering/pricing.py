"""Prices: what a pod's requests cost per hour, exactly, and the one rounding to credits (pure).

Every figure before :func:`credits` is an exact :class:`~decimal.Decimal`: the arithmetic
runs in a local context of :data:`PRECISION` digits that traps :class:`~decimal.Inexact`, so
a result that would need rounding raises instead of drifting.
"""
from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

from arclight.api.creditbudget import GpuHourRates, Rates
from arclight.core.costs import EXACT, PRECISION
from arclight.metering.model import PodUsage

__all__ = ["EXACT", "PRECISION"]
GIB = 2**30

#: The documented default rates of the CreditBudget API (used when no budget applies).
DEFAULT_RATES = Rates()


def rate(value: int | str) -> Decimal:
    """A spec rate (an int or a decimal string such as ``"0.5"``) as an exact Decimal."""
    return Decimal(value)


def gpu_hour_rate(rates: Rates, gpu_type: str) -> Decimal:
    """Credits per GPU-hour of ``gpu_type``; ValueError for a type the rates do not price."""
    if gpu_type not in GpuHourRates.model_fields:
        known = ", ".join(GpuHourRates.model_fields)
        raise ValueError(f"no GPU-hour rate for GPU type {gpu_type!r} (known: {known})")
    return rate(getattr(rates.gpu_hour, gpu_type))


def hourly_rate(rates: Rates, gpu_type: str, gpu_count: int, cpu_millis: int,
                memory_bytes: int) -> Decimal:
    """Credits per hour of the requests: GPUs × rate + CPU cores × cpuHour + GiB × memory rate.

    ``gpu_type`` ``"none"`` or ``gpu_count`` 0 prices no GPUs; an unknown GPU type raises
    ValueError. Exact (cores = millis / 1000, GiB = bytes / 2**30).
    """
    if min(gpu_count, cpu_millis, memory_bytes) < 0:
        raise ValueError("requests must not be negative")
    gpu = Decimal(0)
    if gpu_type != "none" and gpu_count > 0:
        gpu = EXACT.multiply(gpu_hour_rate(rates, gpu_type), gpu_count)
    cpu = EXACT.multiply(rate(rates.cpu_hour), EXACT.divide(cpu_millis, 1000))
    memory = EXACT.multiply(rate(rates.memory_gib_hour), EXACT.divide(memory_bytes, GIB))
    return EXACT.add(EXACT.add(gpu, cpu), memory)


def credit_seconds(rates: Rates, pod: PodUsage, seconds: int) -> Decimal:
    """The exact price of ``seconds`` of ``pod``'s requests times 3600 (what a slice stores)."""
    if seconds < 0:
        raise ValueError(f"seconds must not be negative (got {seconds})")
    hourly = hourly_rate(rates, pod.gpu_type, pod.gpu_count, pod.cpu_millis, pod.memory_bytes)
    return EXACT.multiply(hourly, seconds)


def credits(total_credit_seconds: Decimal) -> int:
    """Whole credits of a sum of credit-seconds: ``total / 3600`` rounded once, half up.

    This is the only rounding in the system: sum the exact ``credit_seconds`` of the slices
    first, then call this once on the total (half up: away from zero at exactly .5).
    """
    if not total_credit_seconds.is_finite():
        raise ValueError(f"credit-seconds must be finite (got {total_credit_seconds})")
    exact = Fraction(total_credit_seconds) / 3600
    whole = math.floor(abs(exact) + Fraction(1, 2))
    return whole if exact >= 0 else -whole
