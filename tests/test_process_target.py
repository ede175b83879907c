"""The process target against the real reference service."""

from __future__ import annotations

import secrets
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from harness.errors import SetupError, TargetNotReady
from harness.models import ModelSet
from harness.targets.base import TargetConfig
from harness.targets.launcher import LaunchedService
from harness.targets.process import (
    COLD_START_VARIABLE,
    ProcessTarget,
    check_temp_dir,
    living_group_members,
)
from harness.timeline import Timeline


def make_config(
    tmp_path: Path, model_set: ModelSet, **overrides: object
) -> TargetConfig:
    model_dir = tmp_path / "models"
    model_dir.mkdir(exist_ok=True)
    key_file = tmp_path / "hmac.key"
    key = secrets.token_hex(32).encode()
    key_file.write_bytes(key)
    model_set.populate(model_dir, key=key)
    config = TargetConfig(
        loader="hardened",
        model_dir=model_dir,
        log_dir=tmp_path / "logs",
        hmac_key_file=key_file,
        model_names=model_set.names,
        startup_timeout=30.0,
    )
    for name, value in overrides.items():
        setattr(config, name, value)
    return config


@pytest.fixture(params=["warm", "cold"])
def target(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    model_set: ModelSet,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ProcessTarget]:
    """A hardened target, forked from the launcher or started as a new interpreter."""
    if request.param == "cold":
        monkeypatch.setenv(COLD_START_VARIABLE, "1")
    target = ProcessTarget(make_config(tmp_path, model_set), Timeline())
    assert target.warm == (request.param == "warm")
    try:
        yield target
    finally:
        target.close()


def group_alive(pgid: int) -> bool:
    return bool(living_group_members(pgid))


def test_start_serves_health(target: ProcessTarget) -> None:
    target.start()

    body = target.health()

    assert isinstance(target._process, LaunchedService) == target.warm
    assert body is not None
    assert "Warning" not in target.logs()
    assert body["status"] == "healthy"
    assert target.running
    assert target.exit_code is None


def test_start_records_events(target: ProcessTarget) -> None:
    target.start()

    kinds = [event.kind for event in target.timeline.events]  # type: ignore[union-attr]

    assert kinds[:2] == ["target_started", "target_ready"]


def test_kill_reports_sigkill(target: ProcessTarget) -> None:
    target.start()

    target.kill()

    assert not target.running
    assert target.exit_code == -signal.SIGKILL


def test_restart_keeps_url(target: ProcessTarget) -> None:
    target.start()
    url = target.url

    target.restart()

    assert target.url == url
    assert target.restart_count == 1
    assert target.health() is not None


def test_pause_holds_requests(target: ProcessTarget) -> None:
    target.start()

    target.pause()
    with pytest.raises(requests.Timeout):
        requests.get(f"{target.url}/health", timeout=0.5)
    target.unpause()

    assert target.health() is not None


def test_stop_while_paused(target: ProcessTarget) -> None:
    target.start()
    target.pause()

    target.stop(timeout=5.0)

    assert not target.running


def test_close_leaves_no_process(target: ProcessTarget) -> None:
    target.start()
    pgid = target._pid()
    assert pgid is not None

    target.close()
    target.close()

    assert not group_alive(pgid)


def test_close_removes_fork_server_files(target: ProcessTarget) -> None:
    target.start()
    temp_dir = target._temp_dir
    assert temp_dir is not None
    # The hardened service's fork server keeps its socket directory there.
    assert any(temp_dir.glob("pymp-*"))

    target.close()

    assert not temp_dir.exists()


def test_exit_before_ready(tmp_path: Path, model_set: ModelSet) -> None:
    config = make_config(tmp_path, model_set, model_dir=tmp_path / "missing")
    target = ProcessTarget(config, Timeline())

    try:
        with pytest.raises(TargetNotReady, match="exited with status 2"):
            target.start()
    finally:
        target.close()

    assert target.exit_code == 2


def test_not_ready_within_timeout(tmp_path: Path, model_set: ModelSet) -> None:
    config = make_config(tmp_path, model_set, startup_timeout=0.2)
    target = ProcessTarget(config, Timeline())

    try:
        with pytest.raises(TargetNotReady, match="did not answer"):
            target.start()
    finally:
        target.close()


def test_env_of_the_config_starts_a_fresh_interpreter(
    tmp_path: Path, model_set: ModelSet
) -> None:
    # A fork of the warm launcher has made its imports already, and the
    # variables could change how those behave.
    config = make_config(tmp_path, model_set, env={"OMP_NUM_THREADS": "2"})

    assert not ProcessTarget(config, Timeline()).warm


def test_long_tmpdir_is_rejected_for_hardened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_dir = tmp_path / ("t" * 60)
    long_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long_dir))

    with pytest.raises(SetupError, match="set TMPDIR to a directory of at most 50"):
        check_temp_dir("hardened")
    # Only the hardened loader starts a fork server.
    check_temp_dir("basic")
