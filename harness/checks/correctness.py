"""Correctness checks: what the target reports and predicts is true and known."""

from __future__ import annotations

from collections.abc import Iterable

from harness.checks._view import (
    TimelineView,
    failure_evidence,
    listing,
    ok_health,
    ok_predictions,
    short_version,
)
from harness.checks.context import CheckContext, CheckResult
from harness.models import ModelSet
from harness.timeline import Sample


def truthful_health(ctx: CheckContext) -> CheckResult:
    """Check that ``/health`` and ``/predict`` report what is really served.

    Every health response with status 200 must report ``healthy`` exactly when
    every model's tier is ``primary``, and must list every model. Every predict
    response with status 200 whose predictions match known models must report
    the sha256 of one of them as its version, and the tier ``dummy`` exactly
    when that model is the dummy.
    """
    name = "truthful_health"
    view = TimelineView.of(ctx)
    health = ok_health(view)
    if not health:
        return CheckResult(
            name,
            False,
            "The probe recorded no health response with status 200, so no "
            "reported status could be compared with the served tiers.",
            failure_evidence(ctx, view),
        )

    violations: list[tuple[Sample, str]] = []
    for sample in health:
        problem = _health_contradiction(sample, ctx.model_set.names)
        if problem is not None:
            violations.append((sample, f"{problem} at {view.at(sample.t)}"))

    predictions = [s for s in ok_predictions(view) if s.matches]
    for sample in predictions:
        problem = _prediction_contradiction(sample, ctx.model_set)
        if problem is not None:
            violations.append(
                (sample, f"predict {sample.model} at {view.at(sample.t)} {problem}")
            )

    checked = len(health) + len(predictions)
    if violations:
        violations.sort(key=lambda item: item[0].t)
        detail = (
            f"{len(violations)} of {checked} responses contradicted what was "
            f"served: {listing([text for _, text in violations])}."
        )
        evidence = failure_evidence(
            ctx, view, [s for s, _ in violations], violations=len(violations)
        )
        return CheckResult(name, False, detail, evidence)

    detail = (
        f"All {len(health)} health responses matched the reported tiers and all "
        f"{len(predictions)} identified predictions matched their reported "
        "version and tier."
    )
    if not predictions:
        detail = (
            f"All {len(health)} health responses matched the reported tiers, but "
            "no predict response matched a known model, so no reported version "
            "was compared."
        )
    return CheckResult(
        name, True, detail, {"health": len(health), "predictions": len(predictions)}
    )


def _health_contradiction(sample: Sample, names: Iterable[str]) -> str | None:
    if sample.status not in ("healthy", "degraded"):
        return f"health returned status {sample.status!r}"

    missing = [n for n in names if n not in sample.tiers]
    if missing:
        return f"health did not list {', '.join(missing)}"

    off_primary = {n: t for n, t in sample.tiers.items() if t != "primary"}
    if sample.status == "healthy" and off_primary:
        model, tier = next(iter(off_primary.items()))
        return f"health reported healthy while {model} was on tier {tier}"
    if sample.status == "degraded" and not off_primary:
        return "health reported degraded while every model was on tier primary"
    return None


def _prediction_contradiction(sample: Sample, model_set: ModelSet) -> str | None:
    assert sample.model is not None
    tier = sample.tiers.get(sample.model)
    version = sample.versions.get(sample.model)
    known = [model_set.known[key] for key in sample.matches if key in model_set.known]
    matching = ", ".join(
        f"{k.key} ({short_version(k.sha256)})" if k.sha256 else k.key for k in known
    )

    is_dummy = tier == "dummy"
    candidates = [k for k in known if (k.key == "dummy") == is_dummy]
    if not candidates:
        return f"reported tier {tier} but the predictions match {matching}"
    if version not in {k.sha256 for k in candidates}:
        return (
            f"reported version {short_version(version)} (tier {tier}) but the "
            f"predictions match {matching}"
        )
    return None


def no_silent_corruption(ctx: CheckContext) -> CheckResult:
    """Check that every predict response with status 200 matches a known model."""
    name = "no_silent_corruption"
    view = TimelineView.of(ctx)
    predict_requests = [s for s in view.samples if s.endpoint == "predict"]
    if not predict_requests:
        return CheckResult(
            name,
            False,
            "The probe recorded no predict samples, so no predictions were compared.",
            failure_evidence(ctx, view),
        )

    answered = ok_predictions(view)
    if not answered:
        return CheckResult(
            name,
            True,
            f"None of the {len(predict_requests)} predict requests returned 200, so no "
            "predictions were compared.",
            {"predictions": 0},
        )

    unknown = [s for s in answered if not s.matches]
    if unknown:
        described = [
            f"{s.model} at {view.at(s.t)} (tier {s.tiers.get(s.model or '')}, "
            f"version {short_version(s.versions.get(s.model or ''))})"
            for s in unknown
        ]
        detail = (
            f"{len(unknown)} of {len(answered)} predict responses matched no "
            f"known model: {listing(described)}."
        )
        evidence = failure_evidence(ctx, view, unknown, unmatched=len(unknown))
        return CheckResult(name, False, detail, evidence)

    return CheckResult(
        name,
        True,
        f"All {len(answered)} predict responses matched a known model.",
        {"predictions": len(answered)},
    )


def version_mismatch_reported(ctx: CheckContext) -> CheckResult:
    """Check that a file from another scikit-learn version is never served as healthy.

    No health response may report ``healthy`` while any model's version is in
    ``foreign_sha256``, and no predict response may report tier ``primary``
    with such a version.
    """
    name = "version_mismatch_reported"
    view = TimelineView.of(ctx)
    foreign = ctx.foreign_sha256
    if not foreign:
        return CheckResult(
            name,
            False,
            "No file from another scikit-learn version was in play, so there was "
            "no mismatch to report.",
            failure_evidence(ctx, view),
        )

    health = ok_health(view)
    if not health:
        return CheckResult(
            name,
            False,
            "The probe recorded no health response with status 200, so no "
            "reported status could be checked.",
            failure_evidence(ctx, view),
        )

    violations: list[tuple[Sample, str]] = []
    for sample in health:
        served = [m for m, v in sample.versions.items() if v in foreign]
        if sample.status == "healthy" and served:
            violations.append(
                (
                    sample,
                    f"health reported healthy while {served[0]} served "
                    f"{short_version(sample.versions[served[0]])} "
                    f"at {view.at(sample.t)}",
                )
            )

    predictions = ok_predictions(view)
    for sample in predictions:
        model = sample.model or ""
        version = sample.versions.get(model)
        if sample.tiers.get(model) == "primary" and version in foreign:
            violations.append(
                (
                    sample,
                    f"predict {model} returned tier primary with "
                    f"{short_version(version)} at {view.at(sample.t)}",
                )
            )

    if violations:
        violations.sort(key=lambda item: item[0].t)
        detail = (
            f"{len(violations)} of {len(health) + len(predictions)} responses "
            "presented a file from another scikit-learn version as healthy or "
            "primary: "
            f"{listing([text for _, text in violations])}."
        )
        evidence = failure_evidence(
            ctx,
            view,
            [s for s, _ in violations],
            foreign_sha256=sorted(foreign),
        )
        return CheckResult(name, False, detail, evidence)

    detail = (
        f"None of {len(health)} health and {len(predictions)} predict responses "
        "presented a file from another scikit-learn version as healthy or primary."
    )
    return CheckResult(name, True, detail, {"foreign_sha256": sorted(foreign)})
