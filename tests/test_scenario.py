"""The scenario context: torn writes held on the target's load counter, cleanup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.models import ModelSet
from harness.scenario import Scenario, ScenarioSettings
from harness.targets.base import Target, TargetConfig
from harness.timeline import Timeline


class StaticTarget(Target):
    """A target that is never started and returns a fixed /health body."""

    kind = "static"

    def __init__(
        self, config: TargetConfig, timeline: Timeline, body: dict[str, Any]
    ) -> None:
        super().__init__(config, timeline)
        self.body = body

    def start(self) -> None:
        pass

    def stop(self, timeout: float = 10.0) -> None:
        pass

    def kill(self) -> None:
        pass

    def pause(self) -> None:
        pass

    def unpause(self) -> None:
        pass

    @property
    def exit_code(self) -> int | None:
        return None

    @property
    def running(self) -> bool:
        return True

    @property
    def restart_count(self) -> int:
        return 0

    def logs(self) -> str:
        return ""

    def close(self) -> None:
        pass

    def health(self, timeout: float = 2.0) -> dict[str, Any] | None:
        return self.body


def make_scenario(
    model_set: ModelSet, tmp_path: Path, body: dict[str, Any]
) -> Scenario:
    return Scenario(
        "torn",
        model_set=model_set,
        settings=ScenarioSettings(poll_interval=0.02),
        target_factory=lambda config, timeline: StaticTarget(config, timeline, body),
        seed=3,
        artifacts_dir=tmp_path / "artifacts",
    )


def test_torn_write_without_counter(model_set: ModelSet, tmp_path: Path) -> None:
    body = {"status": "healthy", "models": {"global_model": {"tier": "primary"}}}
    scenario = make_scenario(model_set, tmp_path, body)
    try:
        scenario.populate()
        with scenario.torn_write("global_model", "v2") as write:
            held = write.hold_until_load_attempt()
        fault = scenario.timeline.faults[-1]
    finally:
        scenario.close()

    assert held is False
    assert fault.params["load_attempt_seen"] is False
    assert "reports no load_attempts" in fault.params["note"]
    assert "5 poll intervals" in fault.params["note"]


def test_torn_write_sees_attempt(model_set: ModelSet, tmp_path: Path) -> None:
    state = {"tier": "last_known_good", "load_attempts": 1, "last_error": None}
    body = {"status": "degraded", "models": {"global_model": state}}
    scenario = make_scenario(model_set, tmp_path, body)
    try:
        scenario.populate()
        with scenario.torn_write("global_model", "v2") as write:
            state.update(load_attempts=2, last_error="update in progress")
            held = write.hold_until_load_attempt()
        fault = scenario.timeline.faults[-1]
    finally:
        scenario.close()

    assert held is True
    assert fault.params["load_attempt_seen"] is True
    assert fault.params["service_error"] == "update in progress"
    assert fault.params["tier_while_torn"] == "last_known_good"


def test_torn_write_finishes_file(model_set: ModelSet, tmp_path: Path) -> None:
    state = {"tier": "primary", "load_attempts": 1, "last_error": None}
    scenario = make_scenario(model_set, tmp_path, {"models": {"global_model": state}})
    try:
        scenario.populate()
        with pytest.raises(RuntimeError), scenario.torn_write("global_model", "v2"):
            raise RuntimeError("the scenario failed half-way")
        written = scenario.file("global_model").read_bytes()
    finally:
        scenario.close()

    v2 = model_set.get("global_model", "v2")
    assert v2.path is not None
    assert written == v2.path.read_bytes()


def test_close_removes_scratch_files(model_set: ModelSet, tmp_path: Path) -> None:
    scenario = make_scenario(model_set, tmp_path, {})
    scenario.populate()
    scenario.file("global_model").chmod(0)
    scenario.model_dir.chmod(0o500)

    scenario.close()

    assert not scenario.work_dir.exists()
