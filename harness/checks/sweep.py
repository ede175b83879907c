"""The damage sweep check: the loader rejected every damaged copy that does harm."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.checks._view import listing
from harness.checks.context import CheckContext, CheckResult

if TYPE_CHECKING:
    from harness.sweep import CaseResult

# Dangerous copies kept as evidence, with their damage and verdict.
_EVIDENCE_CASES = 20


def dangerous_files_rejected(ctx: CheckContext) -> CheckResult:
    """Check that the sweep found no crash, hang, silent corruption or predict error.

    The detail counts the copies by verdict; a failure names the dangerous
    copies, and the evidence lists them with their saved files.
    """
    name = "dangerous_files_rejected"
    sweep = ctx.sweep
    if sweep is None:
        return CheckResult(
            name, True, "No damage sweep ran, so no damaged copy was judged.", {}
        )

    counts = sweep.verdict_counts()
    counted = ", ".join(f"{count} {verdict}" for verdict, count in counts.items())
    total = sum(counts.values())
    evidence: dict[str, Any] = {
        "verdicts": counts,
        "sweep_json": str(sweep.path),
        "timeouts": sweep.timeouts.to_json(),
    }
    dangerous = sweep.dangerous
    if not dangerous:
        detail = (
            f"The {sweep.loader} loader rejected or served unchanged all {total} "
            f"damaged copies of {sweep.model_file.name} ({counted})."
        )
        return CheckResult(name, True, detail, evidence)

    named = [f"{case.damage.describe()}: {_harm(case)}" for case in dangerous]
    detail = (
        f"{len(dangerous)} of {total} damaged copies of {sweep.model_file.name} "
        f"were dangerous with the {sweep.loader} loader ({counted}): "
        f"{listing(named)}."
    )
    evidence["dangerous"] = [case.to_json() for case in dangerous[:_EVIDENCE_CASES]]
    evidence["saved_files"] = [str(path) for path in sweep.saved_files]
    evidence["regressions"] = [str(r.path) for r in sweep.regressions]
    return CheckResult(name, False, detail, evidence)


def _harm(case: CaseResult) -> str:
    signal = case.outcome.signal
    return f"{case.verdict} ({signal})" if signal else case.verdict
