"""The dangerous_files_rejected check on hand-built sweep results."""

from __future__ import annotations

from pathlib import Path

from harness.checks import CHECKS, CheckContext, dangerous_files_rejected
from harness.models import ModelSet
from harness.sweep import CaseResult, KindSummary, Outcome, SweepResult
from harness.sweep.damage import Damage
from harness.sweep.timeouts import fixed
from harness.timeline import Timeline

MODEL_SET = ModelSet(names=("global_model",), canary_inputs={}, known={})


def case(kind: str, index: int, outcome: Outcome, saved: Path | None = None):
    damage = Damage(kind, index, ((100 + index, 3),))
    return CaseResult(damage, outcome, 0.01, saved_file=saved)


def result(cases: list[CaseResult], tmp_path: Path) -> SweepResult:
    return SweepResult(
        model_file=Path("/models/global_model.pkl"),
        model_sha256="a" * 64,
        model_size=1000,
        model_name="global_model",
        compressor=None,
        loader="basic",
        seed=1,
        kinds=("bitflip",),
        flips=len(cases),
        stride=10,
        timeouts=fixed(1.0, ("load", "predict")),
        workers=2,
        canary_source="argument",
        canary_rows=8,
        versions={},
        started_at="2026-12-04T00:00:00+00:00",
        ended_at="2026-12-04T00:00:01+00:00",
        summaries={"bitflip": KindSummary.of("bitflip", cases, 1.0)},
        cases=cases,
        regressions=[],
        out_dir=tmp_path,
    )


def context(sweep: SweepResult | None) -> CheckContext:
    return CheckContext(timeline=Timeline(), model_set=MODEL_SET, sweep=sweep)


def test_check_is_registered() -> None:
    assert CHECKS["dangerous_files_rejected"] is dangerous_files_rejected


def test_passes_without_sweep() -> None:
    checked = dangerous_files_rejected(context(None))

    assert checked.passed
    assert checked.detail == "No damage sweep ran, so no damaged copy was judged."


def test_passes_when_all_rejected(tmp_path: Path) -> None:
    cases = [
        case("bitflip", 0, Outcome("rejected", "KeyError: 5")),
        case("bitflip", 1, Outcome("identical")),
    ]

    checked = dangerous_files_rejected(context(result(cases, tmp_path)))

    assert checked.passed
    assert checked.detail == (
        "The basic loader rejected or served unchanged all 2 damaged copies of "
        "global_model.pkl (1 rejected, 1 identical, 0 silent_corruption, "
        "0 predict_error, 0 crash, 0 hang)."
    )
    assert checked.evidence["verdicts"]["rejected"] == 1


def test_fails_listing_dangerous_copies(tmp_path: Path) -> None:
    saved = tmp_path / "bitflip-00001-crash.pkl"
    cases = [
        case("bitflip", 0, Outcome("rejected", "KeyError: 5")),
        case("bitflip", 1, Outcome("crash", "died", "SIGSEGV"), saved),
        case("bitflip", 2, Outcome("hang", "phase predict did not end")),
        case("bitflip", 3, Outcome("silent_corruption", "differ by up to 0.5")),
        case("bitflip", 4, Outcome("predict_error", "AttributeError: x")),
    ]

    checked = dangerous_files_rejected(context(result(cases, tmp_path)))

    assert not checked.passed
    assert checked.detail == (
        "4 of 5 damaged copies of global_model.pkl were dangerous with the basic "
        "loader (1 rejected, 0 identical, 1 silent_corruption, 1 predict_error, "
        "1 crash, 1 hang): bitflip #1 (byte 101 bit 3): crash (SIGSEGV), "
        "bitflip #2 (byte 102 bit 3): hang, bitflip #3 (byte 103 bit 3): "
        "silent_corruption and 1 more."
    )
    assert checked.evidence["saved_files"] == [str(saved)]
    assert [entry["verdict"] for entry in checked.evidence["dangerous"]] == [
        "crash",
        "hang",
        "silent_corruption",
        "predict_error",
    ]
