"""The model-chaos command as a user runs it: listing, bad input, runs, signals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from cli_support import latest_report, model_chaos

from harness.cli import SCENARIOS_DIR, scenario_summaries
from harness.run import cache_dir
from harness.targets.process import living_group_members

SCHEMA = Path(__file__).parent.parent / "harness" / "report" / "schema.json"


def test_list_prints_every_scenario() -> None:
    result = model_chaos("list")

    lines = result.stdout.splitlines()
    names = [line.split("  ", 1)[0] for line in lines]
    modules = sorted(
        p.stem.removeprefix("test_") for p in SCENARIOS_DIR.glob("test_*.py")
    )
    assert result.returncode == 0
    assert names == modules
    assert "torn_write_reload" in names
    assert "restart_half_written" in names
    assert all(len(line.split("  ", 1)) == 2 for line in lines)


def test_every_scenario_has_summary() -> None:
    for name, summary in scenario_summaries():
        assert summary, f"scenario {name} has no docstring summary"


def test_unknown_loader_exits_2() -> None:
    result = model_chaos("run", "--loader", "bogus")

    assert result.returncode == 2
    assert "invalid choice: 'bogus'" in result.stderr


def test_keyword_selecting_nothing_exits_2(tmp_path: Path) -> None:
    result = model_chaos("run", "-k", "no_such_scenario", "--report-dir", str(tmp_path))

    assert result.returncode == 2
    assert "-k 'no_such_scenario' selects no scenario" in result.stderr
    assert "model-chaos list" in result.stderr


def test_report_dir_not_creatable_exits_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    result = model_chaos("run", "--report-dir", str(blocker / "reports"))

    assert result.returncode == 2
    assert f"--report-dir {blocker / 'reports'}: cannot create it" in result.stderr


def test_report_dir_is_file_exits_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    result = model_chaos("run", "--report-dir", str(blocker))

    assert result.returncode == 2
    assert f"--report-dir {blocker}: exists and is not a directory" in result.stderr


def test_long_tmpdir_exits_2(tmp_path: Path) -> None:
    # The hardened service's fork server socket would not fit below it.
    long_dir = tmp_path / ("t" * 60)
    long_dir.mkdir()

    result = model_chaos(
        "run", "--report-dir", str(tmp_path / "reports"), env={"TMPDIR": str(long_dir)}
    )

    assert result.returncode == 2
    assert f"TMPDIR {long_dir} is" in result.stderr
    assert "set TMPDIR to a directory of at most 50 bytes" in result.stderr


def test_models_dir_without_models_exits_2(tmp_path: Path) -> None:
    result = model_chaos("run", "--models", str(tmp_path), "-k", "baseline")

    assert result.returncode == 2
    assert str(tmp_path) in result.stderr
    assert "global_model.pkl" in result.stderr


def test_models_dir_missing_exits_2(tmp_path: Path) -> None:
    result = model_chaos("run", "--models", str(tmp_path / "nowhere"))

    assert result.returncode == 2
    assert "not a directory" in result.stderr


def test_docker_without_engine_exits_2(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/missing.sock"

    result = model_chaos(
        "run", "--target", "docker", "-k", "baseline", env={"DOCKER_HOST": url}
    )

    assert result.returncode == 2
    assert f"no Docker engine answers at {url}" in result.stderr
    assert "use --target process" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-5"])
def test_bad_bound_exits_2(value: str) -> None:
    result = model_chaos("run", "--recover-within", value, "-k", "baseline")

    assert result.returncode == 2
    assert "pass a number of seconds above 0" in result.stderr


def test_repeat_zero_exits_2() -> None:
    result = model_chaos("run", "--repeat", "0")

    assert result.returncode == 2
    assert "--repeat 0: pass 1 or more" in result.stderr


def test_repeat_above_the_cap_exits_2() -> None:
    result = model_chaos("run", "--repeat", "20000", "-k", "baseline")

    assert result.returncode == 2
    assert "--repeat 20000: pass at most 1000" in result.stderr


def test_run_writes_valid_report(tmp_path: Path) -> None:
    result = model_chaos(
        "run", "-k", "baseline", "--seed", "11", "--report-dir", str(tmp_path)
    )

    report = latest_report(tmp_path)
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(report, schema)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["run"]["loader"] == "hardened"
    assert report["run"]["seed"] == 11
    assert report["run"]["command"] == (
        f"model-chaos run -k baseline --seed 11 --report-dir {tmp_path}"
    )
    assert [entry["name"] for entry in report["scenarios"]] == ["baseline"]
    assert report["scenarios"][0]["outcome"] == "passed"
    assert (tmp_path / "latest" / "report.md").is_file()
    assert (tmp_path / "latest" / "junit.xml").is_file()


def test_repeat_runs_each_scenario_n_times(tmp_path: Path) -> None:
    result = model_chaos(
        "run", "-k", "baseline", "--repeat", "2", "--report-dir", str(tmp_path)
    )

    report = latest_report(tmp_path)
    entries = [(e["name"], e["repeat"]) for e in report["scenarios"]]
    assert result.returncode == 0, result.stdout + result.stderr
    assert entries == [("baseline", 0), ("baseline", 1)]
    seeds = {entry["seed"] for entry in report["scenarios"]}
    assert len(seeds) == 2


def copy_model_cache(cache: Path) -> None:
    source = cache_dir() / "models"
    if source.is_dir():
        shutil.copytree(source, cache / "model-chaos" / "models")


def live_entries(cache: Path) -> list[Path]:
    return sorted((cache / "model-chaos" / "live").glob("*.json"))


@pytest.mark.parametrize(
    ("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)]
)
def test_signal_cleans_up_and_exits(
    tmp_path: Path, sent: signal.Signals, code: int
) -> None:
    cache = tmp_path / "cache"
    copy_model_cache(cache)
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            "-k",
            "torn_write_reload",
            "--report-dir",
            str(tmp_path / "reports"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not any("process" in p.name for p in live_entries(cache)):
            assert time.monotonic() < deadline, "the service never started"
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)
        entries = [json.loads(p.read_text()) for p in live_entries(cache)]
        time.sleep(0.5)

        process.send_signal(sent)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == code, stderr
    assert live_entries(cache) == []
    for entry in entries:
        if entry["kind"] == "process":
            assert living_group_members(entry["pgid"]) == []
        else:
            assert not Path(entry["path"]).exists()
