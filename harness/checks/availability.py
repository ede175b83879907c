"""Availability checks: the target stayed up, and predictions stayed fast."""

from __future__ import annotations

from harness.checks._view import (
    TimelineView,
    exit_text,
    failure_evidence,
    listing,
    outcome_text,
    request_name,
)
from harness.checks.context import CheckContext, CheckResult
from harness.timeline import Event


def stayed_up(ctx: CheckContext) -> CheckResult:
    """Check that the target responded to every request outside downtime windows.

    A connection error, a timeout or a 5xx outside a (widened) downtime window
    fails the check, and so do a ``target_exited`` event outside a downtime
    window, a ``target_not_ready`` event and an exit code at check time that no
    downtime explains.
    """
    name = "stayed_up"
    view = TimelineView.of(ctx)
    problems: list[str] = []
    evidence_events: list[Event] = []

    outside = [s for s in view.samples if not view.sample_in_downtime(s)]
    failed = [s for s in outside if not s.ok]
    if not view.samples:
        problems.append("the probe recorded no samples")
    elif failed:
        described = [
            f"{outcome_text(s)} from {request_name(s)} at {view.at(s.t)}"
            for s in failed
        ]
        problems.append(
            f"{len(failed)} of {len(outside)} requests outside downtime windows "
            f"failed: {listing(described)}"
        )

    not_ready = [e for e in view.events if e.kind == "target_not_ready"]
    if not_ready:
        evidence_events += not_ready
        problems.append(
            f"the target did not become ready (target_not_ready at "
            f"{view.at(not_ready[0].t)})"
        )

    exits = [e for e in view.events if e.kind == "target_exited"]
    unexplained = [e for e in exits if not view.in_downtime(e.t)]
    if unexplained:
        evidence_events += unexplained
        described = [_describe_exit(view, e) for e in unexplained]
        problems.append(
            f"the target exited outside downtime windows: {listing(described)}"
        )

    if ctx.exit_code is not None and not (exits and view.in_downtime(exits[-1].t)):
        problems.append(
            f"the target had exited with code {exit_text(ctx.exit_code)} "
            "when the checks ran"
        )

    if problems:
        detail = "; ".join(problems) + "."
        evidence = failure_evidence(
            ctx,
            view,
            failed,
            failed_requests=len(failed),
            events=[view.event_json(e) for e in evidence_events],
        )
        return CheckResult(name, False, detail[:1].upper() + detail[1:], evidence)

    excused = len(view.samples) - len(outside)
    detail = f"All {len(outside)} requests outside downtime windows succeeded"
    if excused:
        detail += f" ({excused} inside downtime windows were not judged)"
    return CheckResult(name, True, detail + ".", {"requests": len(outside)})


def _describe_exit(view: TimelineView, event: Event) -> str:
    code = event.detail.get("exit_code")
    if isinstance(code, int):
        return f"code {exit_text(code)} at {view.at(event.t)}"
    return f"at {view.at(event.t)}"


def latency_bound(ctx: CheckContext) -> CheckResult:
    """Check predict latency from the first fault on, outside downtime windows.

    Every such predict request must have an HTTP response within
    ``bounds.request_latency`` seconds. The whole run counts when no fault
    started.
    """
    name = "latency_bound"
    view = TimelineView.of(ctx)
    bound = ctx.bounds.request_latency
    start = ctx.fault_started_at
    period = (
        "during the run"
        if start is None
        else f"since the fault started at {view.at(start)}"
    )
    judged = [
        s
        for s in view.samples
        if s.endpoint == "predict"
        and (start is None or s.t >= start)
        and not view.sample_in_downtime(s)
    ]
    if not judged:
        return CheckResult(
            name,
            False,
            f"The probe recorded no predict sample outside downtime windows "
            f"{period}, so latency was not measured.",
            failure_evidence(ctx, view),
        )

    slow = [s for s in judged if s.error == "timeout" or s.latency > bound]
    maximum = max(s.latency for s in judged)
    if slow:
        described = [
            f"{s.model} {'timed out after' if s.error == 'timeout' else 'took'} "
            f"{s.latency:.2f} s at {view.at(s.t)}"
            for s in slow
        ]
        detail = (
            f"{len(slow)} of {len(judged)} predict requests {period} "
            f"exceeded {bound:.1f} s: {listing(described)}."
        )
        evidence = failure_evidence(
            ctx, view, slow, max_latency=round(maximum, 4), slow=len(slow)
        )
        return CheckResult(name, False, detail, evidence)

    detail = (
        f"All {len(judged)} predict requests {period} took at most "
        f"{maximum:.2f} s (bound {bound:.1f} s)."
    )
    return CheckResult(name, True, detail, {"max_latency": round(maximum, 4)})
