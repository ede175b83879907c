"""Checks: verdicts on one scenario's timeline, each with a detail and evidence.

A check reads the probe's samples, the target's events and the faults of a
scenario and returns a :class:`CheckResult`. Its ``detail`` is one plain
sentence with the numbers behind the verdict. Its ``evidence`` contains JSON
values for the report: a few offending samples with times relative to the
scenario's start, matching log lines, the exit code and the saved files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from harness.checks.availability import latency_bound, stayed_up
from harness.checks.context import Bounds, CheckContext, CheckResult, Recovery
from harness.checks.correctness import (
    no_silent_corruption,
    truthful_health,
    version_mismatch_reported,
)
from harness.checks.recovery import recovered
from harness.checks.safety import no_code_execution
from harness.checks.sweep import dangerous_files_rejected
from harness.errors import HarnessError

CHECKS: dict[str, Callable[[CheckContext], CheckResult]] = {
    "stayed_up": stayed_up,
    "truthful_health": truthful_health,
    "no_silent_corruption": no_silent_corruption,
    "recovered": recovered,
    "version_mismatch_reported": version_mismatch_reported,
    "no_code_execution": no_code_execution,
    "latency_bound": latency_bound,
    "dangerous_files_rejected": dangerous_files_rejected,
}


def run_checks(names: Iterable[str], ctx: CheckContext) -> list[CheckResult]:
    """Run the named checks in order and return their results.

    Raises HarnessError naming every unknown check before any check runs.
    """
    names = list(names)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise HarnessError(
            f"unknown check {', '.join(repr(n) for n in unknown)}; "
            f"known checks: {', '.join(CHECKS)}"
        )
    return [CHECKS[n](ctx) for n in names]


__all__ = [
    "CHECKS",
    "Bounds",
    "CheckContext",
    "CheckResult",
    "Recovery",
    "dangerous_files_rejected",
    "latency_bound",
    "no_code_execution",
    "no_silent_corruption",
    "recovered",
    "run_checks",
    "stayed_up",
    "truthful_health",
    "version_mismatch_reported",
]
