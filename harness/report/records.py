"""The records a report is written from: one run, its scenarios and their checks.

Every field contains JSON values, so that a record survives ``dataclasses.asdict``
and ``json.dumps`` on an xdist worker and can be rebuilt on the controller.
Times inside ``faults`` and ``timeline`` are seconds since the scenario started.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# The note every report adds to a run that Ctrl-C or SIGTERM stopped.
INTERRUPTED_NOTE = (
    "The run was interrupted: scenarios that had not finished are missing, so "
    "these counts do not cover the whole selection."
)

OUTCOMES = ("passed", "failed", "error", "skipped")


@dataclass
class CheckRecord:
    """The verdict of one check, as the report shows it."""

    name: str
    passed: bool
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScenarioRecord:
    """One scenario item and repeat of a run: outcome, verdicts and timeline.

    ``name`` is the module name without ``test_`` plus any parameters, for
    example ``truncate[0]``. ``repeat`` is the repeat index, starting at 0.
    ``duration`` is seconds. ``faults`` contains :meth:`FaultEvent.to_json`
    values, and ``timeline`` has the keys ``samples`` and ``events``.
    ``replay`` is a shell command that reruns this case with its seed.
    """

    name: str
    nodeid: str
    outcome: str
    repeat: int = 0
    seed: int | None = None
    duration: float = 0.0
    checks: list[CheckRecord] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)
    timeline: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"samples": [], "events": []}
    )
    replay: str = ""
    error: str | None = None
    logs_excerpt: str = ""
    saved_files: list[str] = field(default_factory=list)
    skip_reason: str | None = None

    @property
    def failed_checks(self) -> list[CheckRecord]:
        return [check for check in self.checks if not check.passed]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunRecord:
    """One invocation of the harness.

    ``started_at`` and ``ended_at`` are ISO 8601 times; ``ended_at`` is ``None``
    until the run ends. ``repeat`` is how often each scenario ran.
    ``interrupted`` is true when Ctrl-C or SIGTERM stopped the run, so that the
    scenarios it did not finish are missing from the report.
    """

    id: str
    started_at: str
    ended_at: str | None
    target: str
    loader: str
    seed: int | None
    repeat: int = 1
    command: str = ""
    harness_versions: dict[str, str] = field(default_factory=dict)
    target_versions: dict[str, str] = field(default_factory=dict)
    report_dir: str = ""
    interrupted: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
