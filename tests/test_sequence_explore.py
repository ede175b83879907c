"""Shrinking fault sequences, with scripted verdicts and with live targets."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import pytest

from harness.checks import Bounds
from harness.models import ModelSet
from harness.scenario import ScenarioSettings
from harness.sequence import Step
from harness.sequence.explore import (
    SequenceResult,
    Trial,
    TrialRunner,
    explore,
    shrink_sequence,
)
from harness.targets.process import ProcessTarget

DAMAGE = Step("child_out_of_range", "global_model", "primary")
RESTART = Step("restart")
NOISE = (
    Step("truncate", "champion_model", "backup"),
    Step("publish", "champion_model", version="v2"),
    Step("garbage", "global_model", "backup"),
)
SEQUENCE = (NOISE[0], RESTART, NOISE[1], DAMAGE, NOISE[2], RESTART)


class ScriptedRuns:
    """Judges sequences by rule instead of running a target.

    Every sequence fails ``recovered``; one in which ``DAMAGE`` is later
    followed by ``RESTART`` also fails ``stayed_up``, as with the basic loader.
    """

    def __init__(self, *, flaky_after: int | None = None) -> None:
        self.sequences: list[tuple[Step, ...]] = []
        self.flaky_after = flaky_after

    def __call__(self, steps: Sequence[Step]) -> Trial:
        self.sequences.append(tuple(steps))
        failed = ["recovered"]
        flaky = self.flaky_after is not None and len(self.sequences) > self.flaky_after
        if _crashes(steps) and not flaky:
            failed.insert(0, "stayed_up")
        return Trial(tuple(steps), tuple(failed), 0.0)


def _crashes(steps: Sequence[Step]) -> bool:
    damaged = False
    for step in steps:
        damaged = damaged or step == DAMAGE
        if damaged and step == RESTART:
            return True
    return False


def test_shrinks_to_damage_then_restart() -> None:
    runs = ScriptedRuns()

    shrunk = shrink_sequence(runs, SEQUENCE, ("stayed_up", "recovered"))

    assert shrunk.steps == (DAMAGE, RESTART)
    assert shrunk.confirmed
    assert not shrunk.exhausted
    assert shrunk.original == SEQUENCE
    assert runs.sequences[0] == ()
    assert len(shrunk.trials) == len(runs.sequences)


def test_each_sequence_runs_once() -> None:
    runs = ScriptedRuns()

    shrink_sequence(runs, SEQUENCE, ("stayed_up", "recovered"))

    # The confirming run repeats the result on purpose; nothing else repeats.
    assert len(set(runs.sequences[:-1])) == len(runs.sequences) - 1


def test_failure_without_faults_shrinks_to_no_step() -> None:
    runs = ScriptedRuns()

    shrunk = shrink_sequence(runs, SEQUENCE, ("recovered",))

    assert shrunk.steps == ()
    assert runs.sequences == [(), ()]


def test_budget_ends_shrinking_early() -> None:
    runs = ScriptedRuns()

    shrunk = shrink_sequence(runs, SEQUENCE, ("stayed_up", "recovered"), budget=3)

    # No step, the first half, the second half; then the confirming run.
    assert shrunk.exhausted
    assert len(runs.sequences) == 4
    assert shrunk.steps == (DAMAGE, NOISE[2], RESTART)


def test_unconfirmed_when_the_last_run_passes() -> None:
    runs = ScriptedRuns(flaky_after=4)

    shrunk = shrink_sequence(runs, SEQUENCE, ("stayed_up", "recovered"))

    assert not shrunk.confirmed


def test_explore_shrinks_each_failing_seed(model_set: ModelSet) -> None:
    runs = ScriptedRuns()
    runner = SimpleNamespace(model_set=model_set, run=runs)
    reported: list[SequenceResult] = []

    results = explore(runner, seed=40, runs=3, length=4, on_result=reported.append)  # type: ignore[arg-type]

    assert [result.seed for result in results] == [40, 41, 42]
    assert reported == results
    assert all(r.shrunk is not None for r in results if r.failed)


@pytest.fixture
def runner_for(model_set: ModelSet):
    def make(loader: str) -> TrialRunner:
        settings = ScenarioSettings(loader=loader, bounds=Bounds(recover_within=3.0))
        return TrialRunner(
            model_set=model_set, settings=settings, target_factory=ProcessTarget
        )

    return make


def test_basic_crashes_on_damage_then_restart(runner_for) -> None:
    trial = runner_for("basic").run((DAMAGE, RESTART))

    assert trial.failed == ("stayed_up", "recovered")
    assert "stayed_up" in trial.details


def test_hardened_survives_damage_then_restart(runner_for) -> None:
    trial = runner_for("hardened").run((DAMAGE, RESTART))

    assert trial.failed == ()
