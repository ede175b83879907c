"""The inputs and output of a check: bounds, recoveries, context and result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.models import ModelSet
from harness.timeline import Timeline

if TYPE_CHECKING:
    from harness.sweep import SweepResult


@dataclass
class Bounds:
    """Limits the checks apply, in seconds.

    ``downtime_grace`` widens every downtime window on both sides, so that a
    request sent just before a kill or completed just after a restart is not
    blamed on the target.
    """

    recover_within: float = 10.0
    request_latency: float = 2.0
    downtime_grace: float = 0.5


@dataclass
class Recovery:
    """A valid file published for ``model``, which the target must then serve.

    ``published_at`` is on the timeline's clock.
    """

    model: str
    sha256: str
    published_at: float


@dataclass
class CheckContext:
    """Everything the checks read about one scenario run.

    ``marker`` is the file a malicious pickle creates when it is unpickled.
    ``foreign_sha256`` contains the sha256 of every file in play that another
    scikit-learn version pickled. ``exit_code`` is the target's exit status when
    the checks run, or ``None`` while it runs. ``fault_started_at`` is the
    start of the first fault on the timeline's clock. ``sweep`` is the damage
    sweep the scenario ran, if any.
    """

    timeline: Timeline
    model_set: ModelSet
    bounds: Bounds = field(default_factory=Bounds)
    recoveries: list[Recovery] = field(default_factory=list)
    marker: Path | None = None
    foreign_sha256: set[str] = field(default_factory=set)
    exit_code: int | None = None
    logs: str = ""
    fault_started_at: float | None = None
    sweep: SweepResult | None = None


@dataclass
class CheckResult:
    """The verdict of one check on one scenario run."""

    name: str
    passed: bool
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)
