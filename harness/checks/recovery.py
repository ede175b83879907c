"""The recovery check: a valid published file is served as healthy in time."""

from __future__ import annotations

from harness.checks._view import (
    TimelineView,
    failure_evidence,
    outcome_text,
    short_version,
)
from harness.checks.context import CheckContext, CheckResult, Recovery
from harness.timeline import Sample


def recovered(ctx: CheckContext) -> CheckResult:
    """Check that the target became healthy with each published file in time.

    For each :class:`Recovery`, some health response sent at or after the
    publish and at most ``bounds.recover_within`` seconds later must report
    ``healthy`` with that model on tier ``primary`` and version ``sha256``.
    """
    name = "recovered"
    view = TimelineView.of(ctx)
    if not ctx.recoveries:
        return CheckResult(
            name,
            False,
            "No valid file was published after the fault, so recovery could not "
            "be measured.",
            failure_evidence(ctx, view),
        )

    bound = ctx.bounds.recover_within
    health = [s for s in view.samples if s.endpoint == "health"]
    times: dict[str, float | None] = {}
    sentences: list[str] = []
    offending: list[Sample] = []
    for recovery in ctx.recoveries:
        window = [
            s
            for s in health
            if recovery.published_at <= s.t <= recovery.published_at + bound
        ]
        healthy = next((s for s in window if _serves(s, recovery)), None)
        published = f"the publish at {view.at(recovery.published_at)}"
        if healthy is not None:
            elapsed = healthy.t - recovery.published_at
            times[recovery.model] = round(elapsed, 3)
            sentences.append(
                f"{recovery.model} was healthy with version "
                f"{short_version(recovery.sha256)} {elapsed:.2f} s after {published}"
            )
            continue

        times[recovery.model] = None
        if not window:
            sentences.append(
                f"{recovery.model}: the probe recorded no health sample within "
                f"{bound:.1f} s after {published}"
            )
            continue
        last = window[-1]
        offending.append(last)
        waited = min(last.t - recovery.published_at, bound)
        sentence = (
            f"{recovery.model} {_reported_instead(last, recovery)} after "
            f"{waited:.1f} s (published at {view.at(recovery.published_at)}"
        )
        if last is health[-1] and waited < bound:
            sentence += ", when the probe stopped"
        sentences.append(sentence + ")")

    passed = all(t is not None for t in times.values())
    # Sentences start with the model name, which keeps its lower case.
    detail = "; ".join(sentences) + "."
    if passed:
        return CheckResult(name, True, detail, {"time_to_healthy": times})
    evidence = failure_evidence(ctx, view, offending, time_to_healthy=times)
    return CheckResult(name, False, detail, evidence)


def _serves(sample: Sample, recovery: Recovery) -> bool:
    return (
        sample.ok
        and sample.status == "healthy"
        and sample.tiers.get(recovery.model) == "primary"
        and sample.versions.get(recovery.model) == recovery.sha256
    )


def _reported_instead(sample: Sample, recovery: Recovery) -> str:
    if not sample.ok:
        failure = outcome_text(sample)
        return f"was not healthy: the last health request failed with {failure}"
    tier = sample.tiers.get(recovery.model)
    version = short_version(sample.versions.get(recovery.model))
    return (
        f"still {sample.status or 'without status'}: tier {tier}, version "
        f"{version} instead of {short_version(recovery.sha256)},"
    )
