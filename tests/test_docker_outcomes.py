"""What a subset of the scenarios finds per loader on the Docker target.

The subset covers every weakness of the basic loader plus the Docker-only
scenarios, so the whole test command stays within its time budget. Skipped
with the reason when no local Docker engine responds.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from cli_support import failed_checks, latest_report, model_chaos, run_once

from harness.docker import connect
from harness.errors import HarnessError

SUBSET = " or ".join(
    [
        "baseline",
        "format_damage",
        "malicious_pickle",
        "version_mismatch",
        "self_heal",
        "torn_write_reload",
        "restart_half_written",
        "pause_reload",
        "crash_loop",
        "permission_denied",
        "old_target_version",
    ]
)

pytestmark = pytest.mark.xdist_group("docker-outcomes")


@pytest.fixture(scope="module", autouse=True)
def engine() -> None:
    try:
        connect(timeout=5).close()
    except HarnessError as err:
        pytest.skip(f"Docker tests need a local engine: {err}")


def run_docker(
    loader: str, report_dir: Path, *options: str
) -> tuple[int, dict[str, Any]]:
    result = model_chaos(
        "run",
        "--target",
        "docker",
        "--loader",
        loader,
        "--seed",
        "5",
        "-n",
        "2",
        "-k",
        SUBSET,
        "--report-dir",
        str(report_dir),
        *options,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, latest_report(report_dir)


def containers_of(run_id: str) -> list[str]:
    result = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", f"label=model-chaos.run={run_id}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


@pytest.fixture(scope="module")
def basic(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any]]:
    return run_once(
        tmp_path_factory,
        "docker-basic",
        lambda report_dir: run_docker("basic", report_dir, "--recover-within", "5"),
    )


def test_hardened_passes_on_docker(tmp_path: Path) -> None:
    code, report = run_docker("hardened", tmp_path)

    assert failed_checks(report) == {}
    assert code == 0
    assert report["run"]["target"] == "docker"
    assert containers_of(report["run"]["id"]) == []
    crash_loop = [e for e in report["scenarios"] if e["name"] == "crash_loop"]
    assert crash_loop[0]["metrics"]["restart_count"] == 0


DOCKER_WEAKNESSES = [
    ("format_damage[child_out_of_range]", "stayed_up"),
    ("format_damage[leaf_values]", "no_silent_corruption"),
    ("format_damage[attribute_removed]", "stayed_up"),
    ("malicious_pickle[alone]", "no_code_execution"),
    ("version_mismatch[linear]", "version_mismatch_reported"),
    ("self_heal", "recovered"),
    ("restart_half_written", "recovered"),
    ("crash_loop", "stayed_up"),
]


def test_basic_fails_on_docker(basic: tuple[int, dict[str, Any]]) -> None:
    code, report = basic

    failed = failed_checks(report)
    assert code == 1
    for scenario, check in DOCKER_WEAKNESSES:
        assert check in failed.get(scenario, set()), scenario


def test_basic_crash_loop_restarts(basic: tuple[int, dict[str, Any]]) -> None:
    _, report = basic

    (entry,) = [e for e in report["scenarios"] if e["name"] == "crash_loop"]

    # How many restarts fit in the window depends on the engine's back-off.
    assert entry["metrics"]["restart_count"] >= 1


def test_basic_run_leaves_no_container(basic: tuple[int, dict[str, Any]]) -> None:
    _, report = basic

    assert containers_of(report["run"]["id"]) == []
