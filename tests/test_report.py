"""Tests of the report writers: report.json and its schema, report.md, junit.xml."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from harness.errors import HarnessError
from harness.report import (
    CheckRecord,
    RunRecord,
    ScenarioRecord,
    build_report,
    load_schema,
    summarize,
    validate_report,
    write_report,
)
from harness.report.records import INTERRUPTED_NOTE
from harness.report.writer import reproduced

REPLAY = (
    "model-chaos run --target process --loader basic --seed 1234 -k torn_write_reload"
)
RECOVERED_DETAIL = (
    "global_model still degraded: tier backup, version bbbbbbbbbbbb… instead of "
    "222222222222…, after "
    "10.0 s (published at t=2.00 s)."
)


def run_record(run_id: str = "20261204-101500-ab12", repeat: int = 1) -> RunRecord:
    return RunRecord(
        id=run_id,
        started_at="2026-12-04T10:15:00+00:00",
        ended_at="2026-12-04T10:16:40+00:00",
        target="process",
        loader="basic",
        seed=1234,
        repeat=repeat,
        command="model-chaos run --loader basic",
        harness_versions={"python": "3.11.9", "scikit-learn": "1.9.1"},
        target_versions={"scikit-learn": "1.9.1"},
        report_dir="reports",
    )


def sample(t: float, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "t": t,
        "endpoint": "health",
        "latency": 0.004,
        "http_status": 200,
        "error": None,
        "model": None,
        "status": "healthy",
        "tiers": {"global_model": "primary"},
        "versions": {"global_model": "1" * 64},
        "matches": [],
        "models": {},
    }
    data.update(fields)
    return data


def failed_scenario(repeat: int = 0) -> ScenarioRecord:
    degraded = sample(
        11.9,
        status="degraded",
        tiers={"global_model": "backup"},
        versions={"global_model": "b" * 64},
    )
    samples = [sample(t / 10) for t in range(10)]
    samples += [
        sample(
            1.0,
            endpoint="predict",
            model="global_model",
            error="timeout",
            http_status=None,
            status=None,
            tiers={},
            versions={},
        ),
        sample(1.1, error="connection_refused", http_status=None, status=None),
        degraded,
    ]
    return ScenarioRecord(
        name="torn_write_reload",
        nodeid="scenarios/test_torn_write_reload.py::test_torn_write_reload",
        outcome="failed",
        repeat=repeat,
        seed=1234 + repeat,
        duration=14.2,
        checks=[
            CheckRecord("stayed_up", True, "All 40 requests succeeded.", {}),
            CheckRecord(
                "recovered",
                False,
                RECOVERED_DETAIL,
                {
                    "samples": [degraded],
                    "log_lines": ["ERROR load failed: EOFError | pickle data"],
                    "exit_code": None,
                    "saved_files": ["/tmp/artifacts/00-torn_write-global_model.pkl"],
                    "time_to_healthy": {"global_model": None},
                },
            ),
        ],
        metrics={"restart_count": 0, "samples": 13, "samples_per_second": 58.1},
        faults=[
            {
                "kind": "torn_write",
                "t_start": 1.05,
                "t_end": 1.6,
                "path": "/tmp/models/global_model.pkl",
                "params": {
                    "split": 4096,
                    "load_attempt_seen": True,
                    "service_error": "global_model.pkl: update in progress",
                },
                "note": "held half-written until load_attempts went up",
                "downtime": False,
                "saved_files": ["/tmp/artifacts/00-torn_write-global_model.pkl"],
            }
        ],
        timeline={
            "samples": samples,
            "events": [{"t": 2.0, "kind": "published", "detail": {"model": "g"}}],
        },
        replay=REPLAY,
        error="ChecksFailed: checks failed:\n  recovered: ...",
        logs_excerpt="INFO start\nERROR load failed: EOFError",
        saved_files=["/tmp/artifacts/00-torn_write-global_model.pkl"],
    )


def passed_scenario(repeat: int = 0) -> ScenarioRecord:
    return ScenarioRecord(
        name="truncate[0]",
        nodeid="scenarios/test_truncate.py::test_truncate[0]",
        outcome="passed",
        repeat=repeat,
        seed=1234 + repeat,
        duration=3.5,
        checks=[CheckRecord("stayed_up", True, "All 20 requests succeeded.", {})],
        metrics={"samples": 20},
        replay="model-chaos run -k 'truncate and 0' --seed 1234",
    )


def error_scenario() -> ScenarioRecord:
    return ScenarioRecord(
        name="kill_restart",
        nodeid="scenarios/test_kill_restart.py::test_kill_restart",
        outcome="error",
        seed=1234,
        duration=1.0,
        replay="model-chaos run -k kill_restart --seed 1234",
        error="Traceback ...\nharness.errors.FaultError: cannot open \x00 file",
    )


def skipped_scenario() -> ScenarioRecord:
    return ScenarioRecord(
        name="permission_denied",
        nodeid="scenarios/test_permission_denied.py::test_permission_denied",
        outcome="skipped",
        seed=1234,
        skip_reason="root ignores file modes",
    )


def all_scenarios() -> list[ScenarioRecord]:
    return [failed_scenario(), passed_scenario(), error_scenario(), skipped_scenario()]


@pytest.fixture
def written(tmp_path: Path) -> Path:
    return write_report(tmp_path / "reports", run_record(), all_scenarios())


def test_writes_run_folder(written: Path, tmp_path: Path) -> None:
    assert written == tmp_path / "reports" / "20261204-101500-ab12"
    assert (written / "report.json").is_file()
    assert (written / "report.md").is_file()
    assert (written / "junit.xml").is_file()
    assert sorted(p.name for p in written.iterdir()) == [
        "junit.xml",
        "report.json",
        "report.md",
    ]


def test_report_json_matches_schema(written: Path) -> None:
    document = json.loads((written / "report.json").read_text())

    jsonschema.validate(document, load_schema())
    assert document["run"]["id"] == "20261204-101500-ab12"
    assert document["run"]["seed"] == 1234
    assert document["summary"] == {
        "total": 4,
        "passed": 1,
        "failed": 1,
        "error": 1,
        "skipped": 1,
    }
    first = document["scenarios"][0]
    assert first["name"] == "torn_write_reload"
    assert first["outcome"] == "failed"
    assert first["replay"] == REPLAY
    assert first["checks"][1] == {
        "name": "recovered",
        "passed": False,
        "detail": RECOVERED_DETAIL,
        "evidence": first["checks"][1]["evidence"],
    }
    assert first["metrics"]["restart_count"] == 0
    assert first["faults"][0]["kind"] == "torn_write"
    assert len(first["timeline"]["samples"]) == 13


def test_report_md_shows_failure(written: Path) -> None:
    text = (written / "report.md").read_text()

    assert text.startswith("# model-chaos run 20261204-101500-ab12\n")
    assert "4 scenario runs: 1 passed, 1 failed, 1 errored, 1 skipped." in text
    assert "- harness libraries: python 3.11.9, scikit-learn 1.9.1" in text
    assert "- target libraries: scikit-learn 1.9.1" in text
    assert "| torn_write_reload | 0 | failed | 14.2 | recovered |" in text
    assert "### torn_write_reload (repeat 0): failed" in text
    assert f"- **recovered**: {RECOVERED_DETAIL}" in text
    assert f"```sh\n{REPLAY}\n```" in text
    assert "ERROR load failed: EOFError | pickle data" in text
    assert "- `/tmp/artifacts/00-torn_write-global_model.pkl`" in text


def test_report_md_timeline_slice(written: Path) -> None:
    text = (written / "report.md").read_text()
    section = text.split("### torn_write_reload")[1].split("###")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]

    assert rows[0] == "| t | request or event | result | latency (s) | reported |"
    # Centred on the first offending sample at t=11.9: five rows before it.
    assert rows[-1].startswith("| 11.90 | health | 200 |")
    assert "degraded: global_model backup bbbbbbbb" in rows[-1]
    assert any("| fault torn_write |" in row for row in rows)
    assert any("| event published |" in row for row in rows)
    assert any("| predict global_model | timeout |" in row for row in rows)
    assert len(rows) == 2 + 6


def test_report_md_other_outcomes(written: Path) -> None:
    text = (written / "report.md").read_text()

    assert "### kill_restart (repeat 0): error" in text
    assert "harness.errors.FaultError: cannot open \ufffd file" in text
    assert "- truncate[0] (repeat 0): stayed_up held in 3.5 s." in text
    assert "- permission_denied (repeat 0): root ignores file modes" in text


def test_junit_xml(written: Path) -> None:
    root = ET.parse(written / "junit.xml").getroot()
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")

    assert suite.get("tests") == "4"
    assert suite.get("failures") == "1"
    assert suite.get("errors") == "1"
    assert suite.get("skipped") == "1"
    assert [c.get("name") for c in cases] == [
        "torn_write_reload",
        "truncate[0]",
        "kill_restart",
        "permission_denied",
    ]
    assert cases[0].get("classname") == "scenarios.test_torn_write_reload"

    failure = cases[0].find("failure")
    assert failure is not None
    assert failure.get("message") == "checks failed: recovered"
    assert failure.text == f"recovered: {RECOVERED_DETAIL}"
    output = cases[0].find("system-out")
    assert output is not None
    assert output.text == f"replay: {REPLAY}"

    assert cases[1].find("failure") is None
    error = cases[2].find("error")
    assert error is not None
    assert error.get("message") == "harness.errors.FaultError: cannot open \ufffd file"
    skipped = cases[3].find("skipped")
    assert skipped is not None
    assert skipped.get("message") == "root ignores file modes"


def test_interrupted_run_says_so(tmp_path: Path) -> None:
    run = dataclasses.replace(run_record(), interrupted=True)

    written = write_report(tmp_path / "reports", run, [passed_scenario()])

    document = json.loads((written / "report.json").read_text())
    jsonschema.validate(document, load_schema())
    assert document["run"]["interrupted"] is True
    assert INTERRUPTED_NOTE in (written / "report.md").read_text()
    suite = ET.parse(written / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "2"
    assert suite.get("errors") == "1"
    error = suite.findall("testcase")[-1].find("error")
    assert error is not None
    assert error.get("message") == INTERRUPTED_NOTE


def test_finished_run_has_no_interrupt_note(written: Path) -> None:
    assert "interrupted" not in (written / "report.md").read_text()


def test_latest_symlink(written: Path, tmp_path: Path) -> None:
    latest = tmp_path / "reports" / "latest"

    assert latest.is_symlink()
    assert os.readlink(latest) == "20261204-101500-ab12"
    assert latest.resolve() == written.resolve()


def test_latest_replaced(written: Path, tmp_path: Path) -> None:
    second = write_report(tmp_path / "reports", run_record("second"), all_scenarios())
    latest = tmp_path / "reports" / "latest"

    assert os.readlink(latest) == "second"
    assert latest.resolve() == second.resolve()
    assert (written / "report.json").is_file()
    assert not list((tmp_path / "reports").glob(".latest*"))


def test_latest_file_without_symlinks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_symlinks(*args: Any, **kwargs: Any) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    write_report(tmp_path / "reports", run_record(), all_scenarios())
    latest = tmp_path / "reports" / "latest"

    assert not latest.is_symlink()
    assert latest.read_text() == "20261204-101500-ab12\n"


def test_latest_directory_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "reports" / "latest" / "old").mkdir(parents=True)
    run_dir = write_report(tmp_path / "reports", run_record(), all_scenarios())

    assert (run_dir / "report.json").is_file()
    assert (tmp_path / "reports" / "latest" / "old").is_dir()
    assert any(
        "remove" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records
    )


def test_schema_requires_scenarios() -> None:
    document = build_report(run_record(), all_scenarios())
    del document["scenarios"]

    with pytest.raises(HarnessError) as caught:
        validate_report(document)
    assert str(caught.value) == (
        "the report does not match its schema: $: 'scenarios' is a required property"
    )


def test_schema_requires_replay_on_failure() -> None:
    record = failed_scenario()
    record.replay = ""
    document = build_report(run_record(), [record])

    with pytest.raises(HarnessError) as caught:
        validate_report(document)
    assert "$.scenarios[0].replay: '' should be non-empty" in str(caught.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["scenarios"][0].update(outcome="broken"),
            "$.scenarios[0].outcome: 'broken' is not one of",
        ),
        (
            lambda d: d["scenarios"][0]["checks"][0].pop("detail"),
            "$.scenarios[0].checks[0]: 'detail' is a required property",
        ),
        (
            lambda d: d["scenarios"][0]["timeline"]["samples"][0].update(t="soon"),
            "$.scenarios[0].timeline.samples[0].t: 'soon' is not of type 'number'",
        ),
        (
            lambda d: d["run"].update(started_at="yesterday"),
            "$.run.started_at: 'yesterday' is not a 'date-time'",
        ),
    ],
    ids=["outcome", "detail", "sample time", "start time"],
)
def test_schema_rejects(change: Any, message: str) -> None:
    document = copy.deepcopy(build_report(run_record(), all_scenarios()))
    change(document)

    with pytest.raises(HarnessError) as caught:
        validate_report(document)
    assert message in str(caught.value)


def test_invalid_report_not_written(tmp_path: Path) -> None:
    record = passed_scenario()
    record.outcome = "flaky"

    with pytest.raises(HarnessError, match="'flaky' is not one of"):
        write_report(tmp_path / "reports", run_record(), [record])
    assert not (tmp_path / "reports").exists()


def test_value_not_json_rejected(tmp_path: Path) -> None:
    record = passed_scenario()
    record.metrics["model_dir"] = Path("/tmp/models")

    with pytest.raises(HarnessError) as caught:
        write_report(tmp_path / "reports", run_record(), [record])
    assert str(caught.value).startswith(
        "the report of run 20261204-101500-ab12 contains a value that is not JSON: "
    )


def test_unwritable_report_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    with pytest.raises(HarnessError, match="choose a writable --report-dir"):
        write_report(blocker / "reports", run_record(), all_scenarios())


def test_summary_with_repeats(tmp_path: Path) -> None:
    records = [failed_scenario(0), failed_scenario(1), failed_scenario(2)]
    records[1].outcome = "passed"
    records[2].faults[0]["params"]["load_attempt_seen"] = False
    for seed, record in enumerate(records, start=7):
        record.seed = seed
    records += [passed_scenario(0), passed_scenario(1), passed_scenario(2)]
    run = run_record(repeat=3)
    summary = summarize(run, records)

    assert summary["by_scenario"] == {
        "torn_write_reload": {
            "passed": 1,
            "repeats": 3,
            "failed_seeds": [7, 9],
            "reproduced": 2,
        },
        "truncate[0]": {"passed": 3, "repeats": 3, "failed_seeds": []},
    }
    assert summary["passed"] == 4
    assert summary["failed"] == 2

    run_dir = write_report(tmp_path, run, records)
    root = ET.parse(run_dir / "junit.xml").getroot()
    names = [case.get("name") for case in root.iter("testcase")]
    assert names[:3] == [
        "torn_write_reload repeat 0",
        "torn_write_reload repeat 1",
        "torn_write_reload repeat 2",
    ]
    text = (run_dir / "report.md").read_text()
    assert "| torn_write_reload | 1/3 | 2/3 | 7, 9 |" in text
    assert "| truncate[0] | 3/3 | - | - |" in text


def test_summary_without_repeats() -> None:
    assert "by_scenario" not in summarize(run_record(), all_scenarios())


def test_record_round_trip() -> None:
    record = failed_scenario()
    data = json.loads(json.dumps(asdict(record)))
    data["checks"] = [CheckRecord(**check) for check in data["checks"]]

    assert ScenarioRecord(**data) == record


def test_empty_run(tmp_path: Path) -> None:
    run_dir = write_report(tmp_path, run_record(), [])
    document = json.loads((run_dir / "report.json").read_text())

    assert document["scenarios"] == []
    assert document["summary"]["total"] == 0
    assert "0 scenario runs" in (run_dir / "report.md").read_text()


def test_race_needs_service_error() -> None:
    record = failed_scenario(0)
    record.faults[0]["params"]["service_error"] = None

    assert reproduced(record) is False


def test_race_with_service_error() -> None:
    assert reproduced(failed_scenario(0)) is True


def test_no_race_staged() -> None:
    assert reproduced(passed_scenario(0)) is None
