"""The safety check: a malicious pickle never ran its code."""

from __future__ import annotations

from harness.checks._view import (
    MAX_LOG_LINE,
    TimelineView,
    failure_evidence,
)
from harness.checks.context import CheckContext, CheckResult


def no_code_execution(ctx: CheckContext) -> CheckResult:
    """Check that the malicious pickle's marker file never appeared."""
    name = "no_code_execution"
    if ctx.marker is None:
        return CheckResult(
            name,
            True,
            "No malicious pickle was in play, so no marker was expected.",
            {},
        )
    if not ctx.marker.exists():
        return CheckResult(
            name,
            True,
            f"The marker file {ctx.marker} does not exist.",
            {"marker": str(ctx.marker)},
        )

    view = TimelineView.of(ctx)
    content = ctx.marker.read_text(errors="replace")[:MAX_LOG_LINE]
    detail = (
        f"The marker file {ctx.marker} exists, so the target unpickled the "
        "malicious file and ran its code."
    )
    evidence = failure_evidence(
        ctx, view, marker=str(ctx.marker), marker_content=content
    )
    return CheckResult(name, False, detail, evidence)
