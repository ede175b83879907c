"""Process faults against a small in-memory target that records what was done."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from harness.errors import FaultError, TargetNotReady
from harness.faults import kill, pause, restart
from harness.targets.base import Target, TargetConfig
from harness.timeline import now

START_SECONDS = 0.2


class FakeTarget(Target):
    """A target without a process; start takes ``START_SECONDS`` seconds."""

    kind = "fake"

    def __init__(self, tmp_path: Path, *, ready_after_start: bool = True) -> None:
        config = TargetConfig(loader="hardened", model_dir=tmp_path, log_dir=tmp_path)
        super().__init__(config)
        self.ready_after_start = ready_after_start
        self.calls: list[tuple[str, float]] = []
        self.state = "stopped"
        self._exit_code: int | None = None
        self._restarts = 0

    def start(self) -> None:
        self.calls.append(("start", now()))
        time.sleep(START_SECONDS)
        if not self.ready_after_start:
            self._exit_code = 3
            raise TargetNotReady("fake target exited with status 3 during start-up")
        self.state = "running"
        self._exit_code = None

    def stop(self, timeout: float = 10.0) -> None:
        self.calls.append(("stop", now()))
        self.state = "stopped"
        self._exit_code = 0

    def kill(self) -> None:
        self.calls.append(("kill", now()))
        self.state = "stopped"
        self._exit_code = -9

    def pause(self) -> None:
        self.calls.append(("pause", now()))
        self.state = "paused"

    def unpause(self) -> None:
        self.calls.append(("unpause", now()))
        self.state = "running"

    def restart(self) -> None:
        self._restarts += 1
        super().restart()

    @property
    def exit_code(self) -> int | None:
        return self._exit_code

    @property
    def running(self) -> bool:
        return self.state != "stopped"

    @property
    def restart_count(self) -> int:
        return self._restarts

    def logs(self) -> str:
        return ""

    def close(self) -> None:
        self.state = "stopped"

    def health(self, timeout: float = 2.0) -> dict[str, Any] | None:
        return {"status": "healthy"} if self.state == "running" else None

    def call_names(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def target(tmp_path: Path) -> FakeTarget:
    fake = FakeTarget(tmp_path)
    fake.start()
    fake.calls.clear()
    return fake


def test_kill(target: FakeTarget) -> None:
    event = kill(target)

    assert target.call_names() == ["kill"]
    assert event.kind == "kill"
    assert event.downtime
    assert event.params == {"signal": "SIGKILL", "exit_code": -9}
    assert event.note == "fake target killed with SIGKILL"
    assert event.t_start <= target.calls[0][1] <= event.t_end


def test_restart_records_time_until_ready(target: FakeTarget) -> None:
    event = restart(target)

    assert target.call_names() == ["stop", "start"]
    assert event.kind == "restart"
    assert event.downtime
    assert event.params["ready"] is True
    assert event.params["restart_count"] == 1
    assert event.params["seconds_until_ready"] >= START_SECONDS
    assert event.t_end - event.t_start >= START_SECONDS
    assert event.t_start <= target.calls[0][1]
    assert target.health() is not None


def test_restart_after_kill(target: FakeTarget) -> None:
    killed = kill(target)
    restarted = restart(target)

    assert target.call_names() == ["kill", "stop", "start"]
    assert killed.t_end <= restarted.t_start
    assert restarted.params["ready"] is True


def test_restart_not_ready(tmp_path: Path) -> None:
    fake = FakeTarget(tmp_path)
    fake.start()
    fake.ready_after_start = False

    event = restart(fake)

    assert event.params == {
        "ready": False,
        "seconds_until_ready": None,
        "restart_count": 1,
        "error": "fake target exited with status 3 during start-up",
    }
    assert event.note == "fake target restarted but did not respond again"
    assert event.t_end - event.t_start >= START_SECONDS


def test_pause_spans_unavailability(target: FakeTarget) -> None:
    event = pause(target, 0.2)

    assert target.call_names() == ["pause", "unpause"]
    paused_at = target.calls[0][1]
    resumed_at = target.calls[1][1]
    assert resumed_at - paused_at >= 0.2
    assert event.t_start <= paused_at
    assert event.t_end >= resumed_at
    assert event.downtime
    assert event.params["seconds"] == 0.2
    assert event.params["paused_for"] >= 0.2
    assert target.state == "running"


def test_pause_resumes_after_interrupt(target: FakeTarget) -> None:
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(KeyboardInterrupt):
            pause(target, 10.0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    assert target.call_names() == ["pause", "unpause"]
    assert target.state == "running"


def test_pause_negative_seconds(target: FakeTarget) -> None:
    with pytest.raises(
        FaultError, match=r"invalid pause of -1\.0 s; expected 0 or more"
    ):
        pause(target, -1.0)

    assert target.call_names() == []
