"""Tests of the checks on hand-built timelines, passing and failing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.checks import (
    CHECKS,
    Bounds,
    CheckContext,
    CheckResult,
    Recovery,
    run_checks,
)
from harness.errors import HarnessError
from harness.models import KnownModel, ModelSet, dummy_model
from harness.timeline import Event, FaultEvent, Sample, Timeline

T0 = 1000.0
SHA_V1 = "1" * 64
SHA_V2 = "2" * 64
SHA_BACKUP = "b" * 64
SHA_CHAMPION = "c" * 64
SHA_OLD = "f" * 64
NAMES = ("global_model", "champion_model")


def known(model: str, version: str, sha256: str, *, foreign: bool = False):
    return KnownModel(
        key=f"{model}@{version}",
        model=model,
        version=version,
        path=None,
        sha256=sha256,
        probabilities=[[0.5, 0.5]],
        predictions=[0],
        sklearn_version="1.2.2" if foreign else "1.9.1",
        foreign=foreign,
    )


MODEL_SET = ModelSet(
    names=NAMES,
    canary_inputs={name: [[0.0, 1.0]] for name in NAMES},
    known={
        "global_model@v1": known("global_model", "v1", SHA_V1),
        "global_model@v2": known("global_model", "v2", SHA_V2),
        "global_model@backup": known("global_model", "backup", SHA_BACKUP),
        "global_model@sklearn-1.2.2": known(
            "global_model", "sklearn-1.2.2", SHA_OLD, foreign=True
        ),
        "champion_model@v1": known("champion_model", "v1", SHA_CHAMPION),
        "dummy": dummy_model(1),
    },
    builtin=True,
)


def health(
    t: float,
    status: str | None = "healthy",
    *,
    global_tier: str = "primary",
    global_version: str | None = SHA_V1,
    champion: bool = True,
    http_status: int | None = 200,
    error: str | None = None,
    latency: float = 0.01,
) -> Sample:
    tiers: dict[str, str | None] = {"global_model": global_tier}
    versions: dict[str, str | None] = {"global_model": global_version}
    if champion:
        tiers["champion_model"] = "primary"
        versions["champion_model"] = SHA_CHAMPION
    if error is not None or http_status != 200:
        return Sample(T0 + t, "health", latency, http_status=http_status, error=error)
    return Sample(
        T0 + t,
        "health",
        latency,
        http_status=http_status,
        status=status,
        tiers=tiers,
        versions=versions,
    )


def predict(
    t: float,
    *,
    model: str = "global_model",
    tier: str | None = "primary",
    version: str | None = SHA_V1,
    matches: tuple[str, ...] = ("global_model@v1",),
    http_status: int | None = 200,
    error: str | None = None,
    latency: float = 0.01,
) -> Sample:
    if error is not None or http_status != 200:
        return Sample(
            T0 + t,
            "predict",
            latency,
            http_status=http_status,
            error=error,
            model=model,
        )
    return Sample(
        T0 + t,
        "predict",
        latency,
        http_status=http_status,
        model=model,
        tiers={model: tier},
        versions={model: version},
        matches=matches,
    )


def event(t: float, kind: str, **detail: Any) -> Event:
    return Event(T0 + t, kind, detail)


def fault(
    start: float, end: float, kind: str = "kill", *, downtime: bool = True
) -> FaultEvent:
    return FaultEvent(
        kind,
        T0 + start,
        T0 + end,
        path="/scratch/global_model.pkl",
        downtime=downtime,
        saved_files=["/artifacts/00-truncate-global_model.pkl"] if not downtime else [],
    )


def context(
    samples: list[Sample] | None = None,
    events: list[Event] | None = None,
    faults: list[FaultEvent] | None = None,
    **fields: Any,
) -> CheckContext:
    timeline = Timeline()
    timeline.t0 = T0
    timeline.samples = list(samples or [])
    timeline.events = list(events or [])
    timeline.faults = list(faults or [])
    return CheckContext(timeline=timeline, model_set=MODEL_SET, **fields)


def steady(until: float = 1.0) -> list[Sample]:
    """Healthy health and predict samples every 0.25 s from t=0 up to ``until``."""
    samples = []
    t = 0.0
    while t <= until:
        samples += [health(t), predict(t + 0.01)]
        t += 0.25
    return samples


Case = tuple[Callable[[], CheckContext], bool, str]


def run_case(check: str, case: Case) -> CheckResult:
    build, passed, detail = case
    result = CHECKS[check](build())
    assert result.name == check
    assert result.detail == detail
    assert result.passed is passed
    return result


# stayed_up

STAYED_UP: dict[str, Case] = {
    "all succeeded": (
        lambda: context(steady(0.5)),
        True,
        "All 6 requests outside downtime windows succeeded.",
    ),
    "failures inside downtime": (
        lambda: context(
            [
                health(0.0),
                health(2.2, error="connection_refused"),
                predict(2.9, error="connection_refused"),
                health(4.0),
            ],
            faults=[fault(2.0, 2.5)],
        ),
        True,
        "All 2 requests outside downtime windows succeeded "
        "(2 inside downtime windows were not judged).",
    ),
    "server error": (
        lambda: context([health(0.0), predict(1.0, http_status=500), health(2.0)]),
        False,
        "1 of 3 requests outside downtime windows failed: 500 from predict "
        "global_model at t=1.00 s.",
    ),
    "many failures": (
        lambda: context(
            [
                health(0.5, error="timeout", latency=5.0),
                predict(1.0, error="connection_refused"),
                predict(1.25, error="connection_error: RemoteDisconnected: gone"),
                health(1.5, http_status=503),
                predict(2.0),
            ]
        ),
        False,
        "4 of 5 requests outside downtime windows failed: timeout from health at "
        "t=0.50 s, connection_refused from predict global_model at t=1.00 s, "
        "connection_error: RemoteDisconnected: gone from predict global_model at "
        "t=1.25 s and 1 more.",
    ),
    "failure just after grace": (
        lambda: context(
            [health(0.0), health(3.1, error="connection_refused")],
            faults=[fault(2.0, 2.5)],
        ),
        False,
        "1 of 2 requests outside downtime windows failed: connection_refused "
        "from health at t=3.10 s.",
    ),
    "no samples": (
        lambda: context([]),
        False,
        "The probe recorded no samples.",
    ),
    "never ready": (
        lambda: context([], [event(0.5, "target_not_ready")]),
        False,
        "The probe recorded no samples; the target did not become ready "
        "(target_not_ready at t=0.50 s).",
    ),
    "crash outside downtime": (
        lambda: context(
            steady(1.0), [event(3.0, "target_exited", exit_code=-11)], exit_code=-11
        ),
        False,
        "The target exited outside downtime windows: code -11 (SIGSEGV) at "
        "t=3.00 s; the target had exited with code -11 (SIGSEGV) when the checks "
        "ran.",
    ),
    "kill inside downtime": (
        lambda: context(
            steady(1.0),
            [event(2.1, "target_exited", exit_code=-9)],
            [fault(2.0, 2.5)],
            exit_code=-9,
        ),
        True,
        "All 10 requests outside downtime windows succeeded.",
    ),
    "exit code without event": (
        lambda: context(steady(0.5), exit_code=1),
        False,
        "The target had exited with code 1 when the checks ran.",
    ),
}


@pytest.mark.parametrize("case", STAYED_UP.values(), ids=STAYED_UP.keys())
def test_stayed_up(case: Case) -> None:
    run_case("stayed_up", case)


def test_stayed_up_evidence(tmp_path: Path) -> None:
    ctx = context(
        [health(0.0), predict(1.0, http_status=500)],
        [event(3.0, "target_exited", exit_code=-11)],
        [fault(0.5, 0.6, "truncate", downtime=False)],
        exit_code=-11,
        logs="INFO loading global_model.pkl\n"
        "Fatal Python error: Segmentation fault\n"
        "ERROR load failed: ValueError\n",
    )
    evidence = CHECKS["stayed_up"](ctx).evidence

    assert evidence["failed_requests"] == 1
    assert evidence["samples"][0]["t"] == pytest.approx(1.0)
    assert evidence["samples"][0]["http_status"] == 500
    assert evidence["events"][0]["kind"] == "target_exited"
    assert evidence["events"][0]["t"] == pytest.approx(3.0)
    assert evidence["exit_code"] == -11
    assert evidence["log_lines"] == [
        "Fatal Python error: Segmentation fault",
        "ERROR load failed: ValueError",
    ]
    assert evidence["saved_files"] == ["/artifacts/00-truncate-global_model.pkl"]


# truthful_health

TRUTHFUL_HEALTH: dict[str, Case] = {
    "all truthful": (
        lambda: context(steady(0.5)),
        True,
        "All 3 health responses matched the reported tiers and all 3 identified "
        "predictions matched their reported version and tier.",
    ),
    "degraded on backup": (
        lambda: context(
            [
                health(
                    0.0, "degraded", global_tier="backup", global_version=SHA_BACKUP
                ),
                predict(
                    0.1,
                    tier="backup",
                    version=SHA_BACKUP,
                    matches=("global_model@backup",),
                ),
            ]
        ),
        True,
        "All 1 health responses matched the reported tiers and all 1 identified "
        "predictions matched their reported version and tier.",
    ),
    "dummy reported as dummy": (
        lambda: context(
            [
                health(0.0, "degraded", global_tier="dummy", global_version=None),
                predict(0.1, tier="dummy", version=None, matches=("dummy",)),
            ]
        ),
        True,
        "All 1 health responses matched the reported tiers and all 1 identified "
        "predictions matched their reported version and tier.",
    ),
    "healthy on backup": (
        lambda: context(
            [
                health(0.0),
                health(1.0, global_tier="backup", global_version=SHA_BACKUP),
            ]
        ),
        False,
        "1 of 2 responses contradicted what was served: health reported healthy "
        "while global_model was on tier backup at t=1.00 s.",
    ),
    "degraded on primary": (
        lambda: context([health(0.5, "degraded")]),
        False,
        "1 of 1 responses contradicted what was served: health reported degraded "
        "while every model was on tier primary at t=0.50 s.",
    ),
    "model missing": (
        lambda: context([health(0.5, champion=False)]),
        False,
        "1 of 1 responses contradicted what was served: health did not list "
        "champion_model at t=0.50 s.",
    ),
    "no status": (
        lambda: context([health(0.5, None)]),
        False,
        "1 of 1 responses contradicted what was served: health returned status "
        "None at t=0.50 s.",
    ),
    "wrong version": (
        lambda: context(
            [health(0.0), predict(0.1, version=SHA_V1, matches=("global_model@v2",))]
        ),
        False,
        "1 of 2 responses contradicted what was served: predict global_model at "
        "t=0.10 s reported version 111111111111… (tier primary) but the "
        "predictions match global_model@v2 (222222222222…).",
    ),
    "dummy disguised as primary": (
        lambda: context([health(0.0), predict(0.1, matches=("dummy",))]),
        False,
        "1 of 2 responses contradicted what was served: predict global_model at "
        "t=0.10 s reported tier primary but the predictions match dummy.",
    ),
    "model reported as dummy": (
        lambda: context(
            [health(0.0), predict(0.1, tier="dummy", version=None)],
        ),
        False,
        "1 of 2 responses contradicted what was served: predict global_model at "
        "t=0.10 s reported tier dummy but the predictions match global_model@v1 "
        "(111111111111…).",
    ),
    "either of two alike files": (
        lambda: context(
            [
                health(0.0),
                predict(
                    0.1,
                    version=SHA_BACKUP,
                    matches=("global_model@v1", "global_model@backup"),
                ),
            ]
        ),
        True,
        "All 1 health responses matched the reported tiers and all 1 identified "
        "predictions matched their reported version and tier.",
    ),
    "no identified predictions": (
        lambda: context([health(0.0), predict(0.1, http_status=500)]),
        True,
        "All 1 health responses matched the reported tiers, but no predict "
        "response matched a known model, so no reported version was compared.",
    ),
    "no health response": (
        lambda: context([health(0.0, error="connection_refused"), predict(0.1)]),
        False,
        "The probe recorded no health response with status 200, so no reported "
        "status could be compared with the served tiers.",
    ),
}


@pytest.mark.parametrize("case", TRUTHFUL_HEALTH.values(), ids=TRUTHFUL_HEALTH.keys())
def test_truthful_health(case: Case) -> None:
    run_case("truthful_health", case)


def test_truthful_health_evidence() -> None:
    ctx = context([health(0.0), predict(0.1, matches=("global_model@v2",))])
    evidence = CHECKS["truthful_health"](ctx).evidence

    assert evidence["violations"] == 1
    assert evidence["samples"][0]["endpoint"] == "predict"
    assert evidence["samples"][0]["t"] == pytest.approx(0.1)
    assert evidence["samples"][0]["matches"] == ("global_model@v2",)


# no_silent_corruption

NO_SILENT_CORRUPTION: dict[str, Case] = {
    "all matched": (
        lambda: context(steady(0.5)),
        True,
        "All 3 predict responses matched a known model.",
    ),
    "unknown predictions": (
        lambda: context(
            [
                predict(0.0),
                predict(0.5, matches=()),
                predict(0.6, model="champion_model", version=SHA_CHAMPION, matches=()),
            ]
        ),
        False,
        "2 of 3 predict responses matched no known model: global_model at "
        "t=0.50 s (tier primary, version 111111111111…), champion_model at "
        "t=0.60 s (tier primary, version cccccccccccc…).",
    ),
    "errors are not judged": (
        lambda: context([predict(0.0), predict(0.5, http_status=500)]),
        True,
        "All 1 predict responses matched a known model.",
    ),
    "no predict response": (
        lambda: context([predict(0.0, http_status=500), predict(0.5, error="timeout")]),
        True,
        "None of the 2 predict requests returned 200, so no predictions were compared.",
    ),
    "no predict samples": (
        lambda: context([health(0.0)]),
        False,
        "The probe recorded no predict samples, so no predictions were compared.",
    ),
}


@pytest.mark.parametrize(
    "case", NO_SILENT_CORRUPTION.values(), ids=NO_SILENT_CORRUPTION.keys()
)
def test_no_silent_corruption(case: Case) -> None:
    run_case("no_silent_corruption", case)


# recovered


def publish_v2(at: float = 1.0) -> list[Recovery]:
    return [Recovery("global_model", SHA_V2, T0 + at)]


def healthy_v2(t: float) -> Sample:
    return health(t, global_version=SHA_V2)


def degraded_backup(t: float) -> Sample:
    return health(t, "degraded", global_tier="backup", global_version=SHA_BACKUP)


RECOVERED: dict[str, Case] = {
    "healthy in time": (
        lambda: context(
            [degraded_backup(0.5), degraded_backup(1.2), healthy_v2(1.5)],
            recoveries=publish_v2(),
        ),
        True,
        "global_model was healthy with version 222222222222… 0.50 s after the "
        "publish at t=1.00 s.",
    ),
    "still degraded": (
        lambda: context(
            [degraded_backup(t) for t in (1.0, 6.0, 11.0)] + [degraded_backup(13.0)],
            recoveries=publish_v2(),
        ),
        False,
        "global_model still degraded: tier backup, version bbbbbbbbbbbb… instead "
        "of 222222222222…, after 10.0 s (published at t=1.00 s).",
    ),
    "healthy too late": (
        lambda: context(
            [degraded_backup(1.0), degraded_backup(10.5), healthy_v2(11.5)],
            recoveries=publish_v2(),
        ),
        False,
        "global_model still degraded: tier backup, version bbbbbbbbbbbb… instead "
        "of 222222222222…, after 9.5 s (published at t=1.00 s).",
    ),
    "healthy with old version": (
        lambda: context(
            [health(1.5), health(12.0)],
            recoveries=publish_v2(),
        ),
        False,
        "global_model still healthy: tier primary, version 111111111111… instead "
        "of 222222222222…, after 0.5 s (published at t=1.00 s).",
    ),
    "healthy before the publish": (
        lambda: context(
            [healthy_v2(0.5), degraded_backup(2.0), degraded_backup(12.0)],
            recoveries=publish_v2(),
        ),
        False,
        "global_model still degraded: tier backup, version bbbbbbbbbbbb… instead "
        "of 222222222222…, after 1.0 s (published at t=1.00 s).",
    ),
    "probe stopped early": (
        lambda: context(
            [degraded_backup(1.0), degraded_backup(3.0)],
            recoveries=publish_v2(),
        ),
        False,
        "global_model still degraded: tier backup, version bbbbbbbbbbbb… instead "
        "of 222222222222…, after 2.0 s (published at t=1.00 s, when the probe "
        "stopped).",
    ),
    "target down": (
        lambda: context(
            [health(2.0, error="connection_refused"), degraded_backup(12.0)],
            recoveries=publish_v2(),
        ),
        False,
        "global_model was not healthy: the last health request failed with "
        "connection_refused after 1.0 s (published at t=1.00 s).",
    ),
    "no health after publish": (
        lambda: context([degraded_backup(0.5)], recoveries=publish_v2()),
        False,
        "global_model: the probe recorded no health sample within 10.0 s after "
        "the publish at t=1.00 s.",
    ),
    "two models, one late": (
        lambda: context(
            [
                health(1.5, global_version=SHA_V2),
                degraded_backup(12.0),
            ],
            recoveries=[
                *publish_v2(),
                Recovery("champion_model", "d" * 64, T0 + 1.0),
            ],
        ),
        False,
        "global_model was healthy with version 222222222222… 0.50 s after the "
        "publish at t=1.00 s; champion_model still healthy: tier primary, "
        "version cccccccccccc… instead of dddddddddddd…, after 0.5 s (published "
        "at t=1.00 s).",
    ),
    "nothing published": (
        lambda: context(steady(1.0)),
        False,
        "No valid file was published after the fault, so recovery could not be "
        "measured.",
    ),
}


@pytest.mark.parametrize("case", RECOVERED.values(), ids=RECOVERED.keys())
def test_recovered(case: Case) -> None:
    run_case("recovered", case)


def test_recovered_times_in_evidence() -> None:
    ctx = context(
        [degraded_backup(1.2), healthy_v2(1.75)],
        recoveries=publish_v2(),
    )
    result = CHECKS["recovered"](ctx)

    assert result.evidence == {"time_to_healthy": {"global_model": 0.75}}


def test_recovered_bound_is_configurable() -> None:
    ctx = context(
        [degraded_backup(1.2), healthy_v2(3.0)],
        recoveries=publish_v2(),
        bounds=Bounds(recover_within=1.0),
    )
    result = CHECKS["recovered"](ctx)

    assert not result.passed
    assert result.evidence["time_to_healthy"] == {"global_model": None}
    assert result.evidence["samples"][0]["t"] == pytest.approx(1.2)


# version_mismatch_reported


def foreign_health(t: float, status: str, tier: str = "primary") -> Sample:
    return health(t, status, global_tier=tier, global_version=SHA_OLD)


VERSION_MISMATCH: dict[str, Case] = {
    "reported degraded": (
        lambda: context(
            [
                foreign_health(0.5, "degraded", "last_known_good"),
                predict(
                    0.6,
                    tier="last_known_good",
                    version=SHA_OLD,
                    matches=("global_model@sklearn-1.2.2",),
                ),
            ],
            foreign_sha256={SHA_OLD},
        ),
        True,
        "None of 1 health and 1 predict responses presented a file from another "
        "scikit-learn version as healthy or primary.",
    ),
    "rejected, older file kept": (
        lambda: context(steady(0.5), foreign_sha256={SHA_OLD}),
        True,
        "None of 3 health and 3 predict responses presented a file from another "
        "scikit-learn version as healthy or primary.",
    ),
    "served as healthy": (
        lambda: context(
            [health(0.0), foreign_health(0.5, "healthy")],
            foreign_sha256={SHA_OLD},
        ),
        False,
        "1 of 2 responses presented a file from another scikit-learn version as "
        "healthy or primary: health reported healthy while global_model served "
        "ffffffffffff… at t=0.50 s.",
    ),
    "predicted as primary": (
        lambda: context(
            [
                foreign_health(0.5, "degraded", "backup"),
                predict(0.6, version=SHA_OLD, matches=("global_model@sklearn-1.2.2",)),
            ],
            foreign_sha256={SHA_OLD},
        ),
        False,
        "1 of 2 responses presented a file from another scikit-learn version as "
        "healthy or primary: predict global_model returned tier primary with "
        "ffffffffffff… at t=0.60 s.",
    ),
    "no foreign file": (
        lambda: context(steady(0.5)),
        False,
        "No file from another scikit-learn version was in play, so there was no "
        "mismatch to report.",
    ),
    "no health response": (
        lambda: context(
            [health(0.5, error="connection_refused")], foreign_sha256={SHA_OLD}
        ),
        False,
        "The probe recorded no health response with status 200, so no reported "
        "status could be checked.",
    ),
}


@pytest.mark.parametrize("case", VERSION_MISMATCH.values(), ids=VERSION_MISMATCH.keys())
def test_version_mismatch_reported(case: Case) -> None:
    run_case("version_mismatch_reported", case)


# no_code_execution


def test_no_marker_in_play() -> None:
    result = CHECKS["no_code_execution"](context(steady(0.5)))

    assert result.passed
    assert (
        result.detail == "No malicious pickle was in play, so no marker was expected."
    )


def test_marker_absent(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    result = CHECKS["no_code_execution"](context(steady(0.5), marker=marker))

    assert result.passed
    assert result.detail == f"The marker file {marker} does not exist."


def test_marker_present(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    marker.write_text("uid=1000\n")
    result = CHECKS["no_code_execution"](context(steady(0.5), marker=marker))

    assert not result.passed
    assert result.detail == (
        f"The marker file {marker} exists, so the target unpickled the malicious "
        "file and ran its code."
    )
    assert result.evidence["marker"] == str(marker)
    assert result.evidence["marker_content"] == "uid=1000\n"


# latency_bound

LATENCY: dict[str, Case] = {
    "fast": (
        lambda: context(
            [predict(0.5, latency=0.05), predict(1.5, latency=0.1)],
            fault_started_at=T0 + 1.0,
        ),
        True,
        "All 1 predict requests since the fault started at t=1.00 s took at most "
        "0.10 s (bound 2.0 s).",
    ),
    "whole run without fault": (
        lambda: context([predict(0.5, latency=0.05), predict(1.5, latency=0.1)]),
        True,
        "All 2 predict requests during the run took at most 0.10 s (bound 2.0 s).",
    ),
    "slow before fault ignored": (
        lambda: context(
            [predict(0.5, latency=3.0), predict(1.5, latency=0.1)],
            fault_started_at=T0 + 1.0,
        ),
        True,
        "All 1 predict requests since the fault started at t=1.00 s took at most "
        "0.10 s (bound 2.0 s).",
    ),
    "slow in downtime ignored": (
        lambda: context(
            [predict(2.2, latency=3.0), predict(4.0, latency=0.1)],
            faults=[fault(2.0, 2.5)],
            fault_started_at=T0 + 2.0,
        ),
        True,
        "All 1 predict requests since the fault started at t=2.00 s took at most "
        "0.10 s (bound 2.0 s).",
    ),
    "slow and timed out": (
        lambda: context(
            [
                predict(1.0, latency=0.1),
                predict(1.5, latency=2.5),
                predict(5.0, model="champion_model", error="timeout", latency=5.0),
            ],
            fault_started_at=T0 + 1.0,
        ),
        False,
        "2 of 3 predict requests since the fault started at t=1.00 s exceeded "
        "2.0 s: global_model took 2.50 s at t=1.50 s, champion_model timed out "
        "after 5.00 s at t=5.00 s.",
    ),
    "nothing measured": (
        lambda: context([predict(0.5)], fault_started_at=T0 + 1.0),
        False,
        "The probe recorded no predict sample outside downtime windows since the "
        "fault started at t=1.00 s, so latency was not measured.",
    ),
}


@pytest.mark.parametrize("case", LATENCY.values(), ids=LATENCY.keys())
def test_latency_bound(case: Case) -> None:
    run_case("latency_bound", case)


def test_latency_bound_is_configurable() -> None:
    ctx = context([predict(0.5, latency=0.3)], bounds=Bounds(request_latency=0.25))
    result = CHECKS["latency_bound"](ctx)

    assert not result.passed
    assert result.evidence["max_latency"] == pytest.approx(0.3)
    assert result.evidence["slow"] == 1


# run_checks


def test_run_checks_in_order() -> None:
    results = run_checks(["no_silent_corruption", "stayed_up"], context(steady(0.5)))

    assert [r.name for r in results] == ["no_silent_corruption", "stayed_up"]
    assert all(r.passed for r in results)


def test_run_checks_unknown_name() -> None:
    with pytest.raises(HarnessError) as caught:
        run_checks(["stayed_up", "stayed_upp", "fast"], context(steady(0.5)))

    assert str(caught.value) == (
        "unknown check 'stayed_upp', 'fast'; known checks: stayed_up, "
        "truthful_health, no_silent_corruption, recovered, "
        "version_mismatch_reported, no_code_execution, latency_bound, "
        "dangerous_files_rejected"
    )


def test_evidence_is_json(tmp_path: Path) -> None:
    import json

    ctx = context(
        [health(0.0), predict(1.0, http_status=500)],
        recoveries=publish_v2(),
        marker=tmp_path / "absent",
        foreign_sha256={SHA_OLD},
        exit_code=1,
    )
    for result in run_checks(CHECKS, ctx):
        json.dumps(result.evidence, allow_nan=False)
