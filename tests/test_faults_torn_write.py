"""A model file rewritten in place and held half-written."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness.errors import FaultError
from harness.faults import TornWrite, load_attempts
from harness.timeline import now

DATA = bytes(range(256)) * 40


@pytest.fixture
def old_file(tmp_path: Path) -> Path:
    path = tmp_path / "global_model.pkl"
    path.write_bytes(b"old model " * 500)
    return path


def test_begin_writes_first_part(old_file: Path) -> None:
    inode = old_file.stat().st_ino
    write = TornWrite(old_file, DATA, split=1000)

    write.begin()
    try:
        assert old_file.read_bytes() == DATA[:1000]
        assert old_file.stat().st_ino == inode
    finally:
        write.close()


def test_finish_writes_rest(old_file: Path) -> None:
    write = TornWrite(old_file, DATA, split=1000)
    write.begin()

    event = write.finish()

    assert old_file.read_bytes() == DATA
    assert event.kind == "torn_write"
    assert event.path == str(old_file)
    assert event.params == {
        "split": 1000,
        "size": len(DATA),
        "held_until_condition": None,
        "hold_seconds": 0.0,
    }
    assert event.t_start <= event.t_end
    assert write.event is event


def test_hold_until_condition(old_file: Path) -> None:
    release = threading.Event()
    timer = threading.Timer(0.2, release.set)
    write = TornWrite(old_file, DATA, split=10)
    write.begin()

    timer.start()
    try:
        held = write.hold(release.is_set, timeout=5.0)
        size_while_held = old_file.stat().st_size
    finally:
        timer.cancel()
    event = write.finish()

    assert held
    assert size_while_held == 10
    assert event.params["held_until_condition"] is True
    assert event.params["hold_seconds"] >= 0.15
    assert event.t_end - event.t_start >= 0.15


def test_hold_times_out(old_file: Path) -> None:
    write = TornWrite(old_file, DATA, split=10)
    write.begin()

    started = now()
    held = write.hold(lambda: False, timeout=0.2, interval=0.01)
    waited = now() - started
    event = write.finish()

    assert not held
    assert waited >= 0.2
    assert event.params["held_until_condition"] is False
    assert event.note == (
        f"global_model.pkl rewritten in place and held at 10 of {len(DATA)} bytes "
        f"for {event.params['hold_seconds']:.2f} s"
    )


def test_context_manager_closes_on_error(old_file: Path) -> None:
    write = TornWrite(old_file, DATA, split=100)

    with pytest.raises(RuntimeError), write:
        raise RuntimeError("scenario failed")

    assert old_file.read_bytes() == DATA[:100]
    with pytest.raises(FaultError, match="finish\\(\\) needs begin\\(\\) first"):
        write.finish()


def test_context_manager_with_finish(old_file: Path) -> None:
    with TornWrite(old_file, DATA, split=100) as write:
        time.sleep(0.01)
        event = write.finish()

    assert old_file.read_bytes() == DATA
    assert event.params["split"] == 100


def test_invalid_split(old_file: Path) -> None:
    with pytest.raises(FaultError) as raised:
        TornWrite(old_file, DATA, split=len(DATA) + 1)

    assert str(raised.value) == (
        f"invalid split {len(DATA) + 1} for a write of {len(DATA)} bytes to "
        f"{old_file}; choose a split from 0 to {len(DATA)}"
    )


def test_begin_twice(old_file: Path) -> None:
    write = TornWrite(old_file, DATA, split=1)
    write.begin()
    try:
        with pytest.raises(FaultError, match="has already begun"):
            write.begin()
    finally:
        write.close()


def test_hold_before_begin(old_file: Path) -> None:
    write = TornWrite(old_file, DATA, split=1)

    with pytest.raises(FaultError, match="hold\\(\\) needs begin\\(\\) first"):
        write.hold(lambda: True, timeout=1.0)


def test_begin_in_missing_directory(tmp_path: Path) -> None:
    write = TornWrite(tmp_path / "missing" / "global_model.pkl", DATA, split=1)

    with pytest.raises(FaultError, match="cannot begin the torn write to"):
        write.begin()


@pytest.mark.parametrize(
    ("health", "expected"),
    [
        ({"models": {"global_model": {"load_attempts": 3}}}, 3),
        ({"models": {"global_model": {"load_attempts": 0}}}, 0),
        ({"models": {"champion_model": {"load_attempts": 3}}}, None),
        ({"models": {"global_model": {}}}, None),
        ({"models": {"global_model": {"load_attempts": "3"}}}, None),
        ({"models": {"global_model": {"load_attempts": True}}}, None),
        ({"models": []}, None),
        ({}, None),
        (None, None),
    ],
)
def test_load_attempts(health: dict[str, Any] | None, expected: int | None) -> None:
    assert load_attempts(health, "global_model") == expected
