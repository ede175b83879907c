"""Helpers the checks share: a timeline snapshot, detail wording and evidence.

Times in details are seconds since the scenario started (``t=2.31 s``), and so
are the times of the samples and events kept as evidence.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harness.checks.context import CheckContext
from harness.timeline import Event, FaultEvent, Sample

# How many offending samples and log lines a check keeps as evidence, and how
# many it names in its detail.
_EVIDENCE_SAMPLES = 5
_EVIDENCE_LOG_LINES = 20
_DETAIL_ITEMS = 3
MAX_LOG_LINE = 500

_LOG_PROBLEM = re.compile(r"error|exception|traceback|segmentation|fatal", re.I)


@dataclass
class TimelineView:
    """A consistent snapshot of the timeline, with the downtime windows."""

    t0: float
    samples: list[Sample]
    events: list[Event]
    faults: list[FaultEvent]
    downtime: list[tuple[float, float]]

    @classmethod
    def of(cls, ctx: CheckContext) -> TimelineView:
        samples, events, faults = ctx.timeline.snapshot()
        grace = ctx.bounds.downtime_grace
        windows = [
            (fault.t_start - grace, fault.t_end + grace)
            for fault in faults
            if fault.downtime
        ]
        return cls(ctx.timeline.t0, samples, events, faults, windows)

    def in_downtime(self, start: float, end: float | None = None) -> bool:
        """Return whether ``[start, end]`` overlaps a widened downtime window."""
        end = start if end is None else end
        return any(
            start <= w_end and end >= w_start for w_start, w_end in self.downtime
        )

    def sample_in_downtime(self, sample: Sample) -> bool:
        return self.in_downtime(sample.t, sample.t + sample.latency)

    def at(self, t: float) -> str:
        return f"t={t - self.t0:.2f} s"

    def sample_json(self, sample: Sample) -> dict[str, Any]:
        data = sample.to_json()
        data["t"] = round(sample.t - self.t0, 4)
        data["latency"] = round(sample.latency, 4)
        return data

    def event_json(self, event: Event) -> dict[str, Any]:
        data = event.to_json()
        data["t"] = round(event.t - self.t0, 4)
        return data


def short_version(version: str | None) -> str:
    if version is None:
        return "null"
    return version[:12] + "…" if len(version) > 12 else version


def request_name(sample: Sample) -> str:
    if sample.endpoint == "predict" and sample.model is not None:
        return f"predict {sample.model}"
    return sample.endpoint


def outcome_text(sample: Sample) -> str:
    if sample.error is not None:
        return sample.error
    return str(sample.http_status)


def listing(items: list[str]) -> str:
    """Join the first few items, and count the rest."""
    named = items[:_DETAIL_ITEMS]
    text = ", ".join(named)
    if len(items) > len(named):
        text += f" and {len(items) - len(named)} more"
    return text


def exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"{code} ({signal.Signals(-code).name})"
        except ValueError:
            return str(code)
    return str(code)


def _log_lines(logs: str) -> list[str]:
    lines = [line for line in logs.splitlines() if _LOG_PROBLEM.search(line)]
    return [line[:MAX_LOG_LINE] for line in lines[:_EVIDENCE_LOG_LINES]]


def _saved_files(view: TimelineView) -> list[str]:
    return [path for fault in view.faults for path in fault.saved_files]


def failure_evidence(
    ctx: CheckContext, view: TimelineView, samples: Iterable[Sample] = (), **extra: Any
) -> dict[str, Any]:
    evidence: dict[str, Any] = {
        "samples": [view.sample_json(s) for s in list(samples)[:_EVIDENCE_SAMPLES]],
        "log_lines": _log_lines(ctx.logs),
        "exit_code": ctx.exit_code,
        "saved_files": _saved_files(view),
    }
    evidence.update(extra)
    return evidence


def ok_predictions(view: TimelineView) -> list[Sample]:
    return [
        s
        for s in view.samples
        if s.endpoint == "predict" and s.error is None and s.http_status == 200
    ]


def ok_health(view: TimelineView) -> list[Sample]:
    return [
        s
        for s in view.samples
        if s.endpoint == "health" and s.error is None and s.http_status == 200
    ]
