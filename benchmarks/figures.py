"""The records a benchmark section returns, and the statistics they are made from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class PerformanceTarget:
    """The value a figure should reach: at most or at least ``limit``."""

    limit: float
    at_most: bool

    def met(self, value: float) -> bool:
        return value <= self.limit if self.at_most else value >= self.limit

    def describe(self, unit: str) -> str:
        sign = "≤" if self.at_most else "≥"
        return f"{sign} {format_value(self.limit, unit)}"

    def shortfall(self, value: float, unit: str) -> str:
        """Return by how much ``value`` misses the limit, absolute and relative."""
        gap = abs(value - self.limit)
        percent = 100.0 * gap / self.limit if self.limit else float("inf")
        return f"by {format_value(gap, unit)} ({percent:.0f} %)"


def at_most(limit: float) -> PerformanceTarget:
    return PerformanceTarget(limit, at_most=True)


def at_least(limit: float) -> PerformanceTarget:
    return PerformanceTarget(limit, at_most=False)


@dataclass
class Figure:
    """One measured value of a section, with its target when it has one.

    ``value`` is ``None`` when the measurement failed, and ``note`` then gives
    the reason.
    ``miss_reason`` is the likely reason for a missed target, worked out from
    what the section measured.
    """

    label: str
    value: float | None
    unit: str
    target: PerformanceTarget | None = None
    note: str = ""
    miss_reason: str = ""

    @property
    def met(self) -> bool | None:
        """Whether the target was met; ``None`` without a target or a value."""
        if self.target is None or self.value is None:
            return None
        return self.target.met(self.value)


@dataclass
class Section:
    """The outcome of one benchmark: its figures, details and method notes.

    ``details`` and ``method`` are Markdown blocks written under the section's
    heading. ``error`` is the reason the section could not run, or ``None``.
    ``load_at_start`` is the 1-minute load average when the section started,
    because other programs on the machine change every figure.
    """

    number: int
    title: str
    figures: list[Figure] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    method: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    load_at_start: float | None = None


def percentile(values: Sequence[float], q: float) -> float:
    """Return the ``q``-th percentile of ``values`` (linear interpolation)."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def format_value(value: float, unit: str) -> str:
    """Format a value with its unit and a precision that suits the unit."""
    if unit == "ms":
        text = f"{value:.1f}" if value < 100 else f"{value:.0f}"
    elif unit == "s":
        text = f"{value:.2f}" if value < 10 else f"{value:.1f}"
    elif unit in ("MiB", "samples/s", "requests/s"):
        text = f"{value:.0f}"
    elif unit == "x":
        return f"{value:.1f}x"
    else:
        text = f"{value:.1f}" if value < 100 else f"{value:.0f}"
    return f"{text} {unit}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Return a Markdown table; ``|`` inside a cell is escaped."""

    def line(cells: Sequence[str]) -> str:
        escaped = [str(cell).replace("|", "\\|") for cell in cells]
        return "| " + " | ".join(escaped) + " |"

    lines = [line(header), line(["---"] * len(header))]
    lines += [line(row) for row in rows]
    return "\n".join(lines)
