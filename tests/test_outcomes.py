"""What the whole scenario suite finds for each loader of the reference service.

These runs keep the harness honest: if a fault injector or a check stopped
working, the weak loaders would pass and these tests would fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cli_support import failed_checks, latest_report, model_chaos, run_once

SEED = "20261204"

# Scenarios that skip on the process target, saying they need Docker.
DOCKER_ONLY = {"crash_loop", "permission_denied", "old_target_version"}

# basic and naive never reload, so a shorter recovery bound finds the same
# failures sooner; hardened keeps the default bound.
NEVER_HEALS = ("--recover-within", "5")

# The basic and naive runs share one worker so that the basic run happens once.
pytestmark = pytest.mark.xdist_group("loader-outcomes")


def run_suite(
    loader: str, report_dir: Path, *options: str
) -> tuple[int, dict[str, Any]]:
    result = model_chaos(
        "run",
        "--loader",
        loader,
        "--seed",
        SEED,
        "-n",
        "2",
        "--report-dir",
        str(report_dir),
        *options,
    )
    return result.returncode, latest_report(report_dir)


@pytest.fixture(scope="module")
def basic(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any]]:
    return run_once(
        tmp_path_factory,
        "process-basic",
        lambda report_dir: run_suite("basic", report_dir, *NEVER_HEALS),
    )


@pytest.mark.xdist_group("hardened-outcome")
def test_hardened_passes_every_scenario(tmp_path: Path) -> None:
    code, report = run_suite("hardened", tmp_path)

    failed = failed_checks(report)
    outcomes = {entry["name"]: entry["outcome"] for entry in report["scenarios"]}
    skipped = {name for name, outcome in outcomes.items() if outcome == "skipped"}
    assert failed == {}
    assert skipped == DOCKER_ONLY
    assert set(outcomes.values()) == {"passed", "skipped"}, outcomes
    assert code == 0
    for name in ("torn_write_reload", "restart_half_written"):
        torn = torn_write_fault(report, name)
        assert torn["params"]["load_attempt_seen"] is True
        assert "update in progress" in torn["params"]["service_error"]


def torn_write_fault(report: dict[str, Any], name: str) -> dict[str, Any]:
    (entry,) = [e for e in report["scenarios"] if e["name"] == name]
    (fault,) = [f for f in entry["faults"] if f["kind"] == "torn_write"]
    return dict(fault)


def test_basic_exits_1(basic: tuple[int, dict[str, Any]]) -> None:
    code, _ = basic

    assert code == 1


# Each weakness of the basic loader, and where the suite must find it.
BASIC_WEAKNESSES = [
    ("format_damage[child_out_of_range]", "stayed_up"),
    ("format_damage[child_loop]", "stayed_up"),
    ("format_damage[attribute_removed]", "stayed_up"),
    ("format_damage[leaf_values]", "no_silent_corruption"),
    ("self_heal", "recovered"),
    ("torn_write_reload", "recovered"),
    ("restart_half_written", "recovered"),
    ("malicious_pickle[alone]", "no_code_execution"),
    ("malicious_pickle[forged_manifest]", "no_code_execution"),
    ("version_mismatch[linear]", "version_mismatch_reported"),
    ("damage_sweep", "dangerous_files_rejected"),
    ("fault_sequence", "recovered"),
]


@pytest.mark.parametrize(("scenario", "check"), BASIC_WEAKNESSES)
def test_basic_weakness_found(
    basic: tuple[int, dict[str, Any]], scenario: str, check: str
) -> None:
    _, report = basic

    assert check in failed_checks(report).get(scenario, set())


def test_basic_loads_half_written_file(basic: tuple[int, dict[str, Any]]) -> None:
    _, report = basic

    torn = torn_write_fault(report, "restart_half_written")

    assert torn["params"]["load_attempt_seen"] is True
    assert torn["params"]["service_error"].startswith("global_model.pkl: ")
    assert torn["params"]["tier_while_torn"] == "backup"


def test_basic_failures_carry_replay(basic: tuple[int, dict[str, Any]]) -> None:
    _, report = basic

    for entry in report["scenarios"]:
        if entry["outcome"] == "failed":
            assert entry["replay"].startswith("model-chaos run --target process")
            assert f"--seed {entry['seed']}" in entry["replay"]


def test_naive_fails_more_than_basic(
    basic: tuple[int, dict[str, Any]], tmp_path: Path
) -> None:
    code, naive = run_suite("naive", tmp_path, *NEVER_HEALS)

    def failing(report: dict[str, Any]) -> int:
        return sum(e["outcome"] in ("failed", "error") for e in report["scenarios"])

    assert code == 1
    assert failing(naive) > failing(basic[1])
