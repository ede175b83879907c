"""Running fault sequences against live targets and shrinking the ones that fail.

Each run of a sequence gets a fresh target and fresh files, so runs do not
leak into each other. A failing sequence is shrunk with delta debugging over
its steps: a shorter sequence counts as the same failure when it fails at
least the checks the original failed. The shortest one is run once more to
confirm it, since a race can fail one run and pass the next.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.ddmin import ddmin
from harness.models import ModelSet
from harness.scenario import ChecksFailed, Scenario, ScenarioSettings, TargetFactory
from harness.sequence.steps import CHECKS, Step, draw_sequence, run_sequence

# Runs of the target one shrink may use; each costs a start of the target.
DEFAULT_BUDGET = 40


@dataclass(frozen=True)
class Trial:
    """One run of a sequence: the checks that failed and how long it took."""

    steps: tuple[Step, ...]
    failed: tuple[str, ...]
    seconds: float
    details: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": [step.describe() for step in self.steps],
            "failed": list(self.failed),
            "seconds": round(self.seconds, 2),
            "details": self.details,
        }


class TrialRunner:
    """Runs sequences, each against a fresh target on fresh copies of the models."""

    def __init__(
        self,
        *,
        model_set: ModelSet,
        settings: ScenarioSettings,
        target_factory: TargetFactory,
        on_trial: Callable[[int, Trial], None] | None = None,
    ) -> None:
        self.model_set = model_set
        self.settings = settings
        self.target_factory = target_factory
        self.on_trial = on_trial
        self.runs = 0

    def run(self, steps: Sequence[Step]) -> Trial:
        self.runs += 1
        scenario = Scenario(
            f"fault_sequence-run{self.runs}",
            model_set=self.model_set,
            settings=self.settings,
            target_factory=self.target_factory,
            seed=self.runs,
            artifacts_dir=None,
        )
        started = time.monotonic()
        failed: tuple[str, ...] = ()
        details: dict[str, str] = {}
        try:
            run_sequence(scenario, steps)
            scenario.verify(*CHECKS)
        except ChecksFailed as err:
            failed = tuple(result.name for result in err.failed)
            details = {result.name: result.detail for result in err.failed}
        finally:
            scenario.close()
        trial = Trial(tuple(steps), failed, time.monotonic() - started, details)
        if self.on_trial is not None:
            self.on_trial(self.runs, trial)
        return trial


@dataclass
class Shrunk:
    """A failing sequence reduced to the fewest steps that fail the same checks.

    ``confirmed`` is whether one more run of ``steps`` failed those checks
    again; ``exhausted`` whether the run budget ended the shrinking early.
    """

    original: tuple[Step, ...]
    failed: tuple[str, ...]
    steps: tuple[Step, ...]
    trials: list[Trial]
    confirmed: bool
    exhausted: bool


def shrink_sequence(
    run: Callable[[Sequence[Step]], Trial],
    steps: Sequence[Step],
    failed: Sequence[str],
    *,
    budget: int = DEFAULT_BUDGET,
) -> Shrunk:
    """Shrink ``steps``, which failed the checks ``failed``, with ``run``.

    The empty sequence is tried first: a failure that needs no fault at all is
    worth knowing as such. Steps are shrunk by index, since a sequence may hold
    the same step twice.
    """
    expected = set(failed)
    trials: list[Trial] = []
    cache: dict[tuple[int, ...], bool] = {}

    def fails(indices: tuple[int, ...]) -> bool:
        if indices not in cache:
            if len(trials) >= budget:
                return False
            trial = run([steps[i] for i in indices])
            trials.append(trial)
            cache[indices] = expected <= set(trial.failed)
        return cache[indices]

    def first_failing(candidates: Sequence[tuple[int, ...]]) -> int | None:
        return next((i for i, c in enumerate(candidates) if fails(c)), None)

    shortest: tuple[int, ...] = ()
    if not fails(()):
        shortest = ddmin(range(len(steps)), first_failing)
    exhausted = len(trials) >= budget

    confirm = run([steps[i] for i in shortest])
    trials.append(confirm)
    return Shrunk(
        original=tuple(steps),
        failed=tuple(failed),
        steps=tuple(steps[i] for i in shortest),
        trials=trials,
        confirmed=expected <= set(confirm.failed),
        exhausted=exhausted,
    )


@dataclass
class SequenceResult:
    """One drawn sequence: its seed, steps and verdict, and its shrunk form."""

    seed: int
    first: Trial
    shrunk: Shrunk | None = None
    module: Path | None = None

    @property
    def failed(self) -> bool:
        return bool(self.first.failed)


def explore(
    runner: TrialRunner,
    *,
    seed: int,
    runs: int,
    length: int,
    budget: int = DEFAULT_BUDGET,
    on_result: Callable[[SequenceResult], None] | None = None,
) -> list[SequenceResult]:
    """Run the sequences of seeds ``seed`` to ``seed + runs - 1``; shrink failures.

    ``on_result`` is called with each sequence's result, shrunk when it
    failed, as soon as it is known, so that the caller can save it before a
    later sequence is interrupted.
    """
    results = []
    for offset in range(runs):
        sequence_seed = seed + offset
        steps = draw_sequence(sequence_seed, runner.model_set, length)
        result = SequenceResult(sequence_seed, runner.run(steps))
        if result.failed:
            result.shrunk = shrink_sequence(
                runner.run, steps, result.first.failed, budget=budget
            )
        if on_result is not None:
            on_result(result)
        results.append(result)
    return results
