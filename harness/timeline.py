"""The timeline of one scenario: probe samples and events on one monotonic clock.

Every timestamp in the harness comes from :func:`now` so that probe samples, fault
events and target events can be compared directly. Times are seconds.
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

now = time.monotonic


@dataclass(frozen=True)
class Sample:
    """One request the probe sent, and what came back.

    ``endpoint`` is ``"health"`` or ``"predict"``. ``error`` is ``None`` when an HTTP
    response arrived; otherwise it is ``"connection_refused"``, ``"timeout"`` or
    ``"connection_error: <reason>"``. For predict samples ``model`` is the model
    name, ``tiers``/``versions`` hold the tier and version the response reported
    for it, and ``matches`` holds the keys of the known models whose reference
    outputs the returned probabilities match (empty when none does; several when
    two known files predict alike). For health samples
    ``tiers``/``versions`` cover every model and ``models`` keeps the rest of the
    per-model fields (``load_attempts``, ``last_error``, ``source``).
    """

    t: float
    endpoint: str
    latency: float
    http_status: int | None = None
    error: str | None = None
    model: str | None = None
    status: str | None = None
    tiers: dict[str, str | None] = field(default_factory=dict)
    versions: dict[str, str | None] = field(default_factory=dict)
    matches: tuple[str, ...] = ()
    models: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and self.http_status is not None
            and (self.http_status < 500)
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Event:
    """Something that happened to the target or its files at time ``t``.

    ``kind`` names it (``target_started``, ``target_ready``, ``target_exited``,
    ``target_not_ready``, ``published``, ...); ``detail`` holds JSON values.
    """

    t: float
    kind: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FaultEvent:
    """What one fault did and when, on the timeline's clock.

    ``downtime`` is true when the harness made the target unavailable on purpose
    between ``t_start`` and ``t_end`` (a kill, a restart, a pause), so that the
    ``stayed_up`` check does not blame the target for it.
    """

    kind: str
    t_start: float
    t_end: float
    path: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    downtime: bool = False
    saved_files: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Timeline:
    """Samples, events and faults of one scenario, safe to append from threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.t0 = now()
        self.samples: list[Sample] = []
        self.events: list[Event] = []
        self.faults: list[FaultEvent] = []

    def add_sample(self, sample: Sample) -> None:
        """Add a sample, keeping samples in order of their request's start.

        The probe's threads finish requests out of that order: a slow predict
        sent before a quick health request is recorded after it.
        """
        with self._lock:
            bisect.insort(self.samples, sample, key=lambda s: s.t)

    def add_event(self, kind: str, **detail: Any) -> Event:
        event = Event(now(), kind, detail)
        with self._lock:
            self.events.append(event)
        return event

    def add_fault(self, fault: FaultEvent) -> FaultEvent:
        with self._lock:
            self.faults.append(fault)
        return fault

    def snapshot(self) -> tuple[list[Sample], list[Event], list[FaultEvent]]:
        """Return copies of the three lists, consistent with each other."""
        with self._lock:
            return list(self.samples), list(self.events), list(self.faults)

    def samples_between(self, start: float, end: float) -> list[Sample]:
        with self._lock:
            return [s for s in self.samples if start <= s.t <= end]

    def last_event(self, kind: str) -> Event | None:
        with self._lock:
            for event in reversed(self.events):
                if event.kind == kind:
                    return event
        return None
