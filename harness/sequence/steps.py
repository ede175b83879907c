"""The steps of a fault sequence, and how one is drawn from a seed.

A step is a small record: damage this file, publish that version, write a
file torn in half, restart or pause. Small records let a sequence be shrunk,
saved in a report and written back out as the source of a scenario module.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import shlex
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import joblib
import pytest

from harness import faults
from harness.errors import FaultError, ModelSetError
from harness.faults._io import file_size
from harness.faults.format import KINDS as FORMAT_DAMAGE
from harness.faults.format import applicable_kinds
from harness.models import ModelSet
from harness.scenario import Scenario

logger = logging.getLogger(__name__)

# Damage to a file as it lies on disk.
FILE_DAMAGE = ("truncate", "garbage", "delete")
# The format damage kinds replace a file with a copy of ``v1`` damaged inside
# the model, as a buggy writer would leave it. The manifest already there stays,
# so its sha256 no longer matches.
ACTIONS = (*FILE_DAMAGE, *FORMAT_DAMAGE, "publish", "torn_write", "restart", "pause")
VERSIONS = ("v1", "v2")
SLOTS = ("primary", "backup")

# Checks every sequence must pass; the closing publish makes ``recovered`` apply.
CHECKS = ("stayed_up", "truthful_health", "no_silent_corruption", "recovered")

# Steps in a sequence unless asked otherwise: enough to mix damage with
# publishes and restarts, few enough that a run takes seconds.
DEFAULT_LENGTH = 6

# Seconds the probe records the target after each step, long enough for a few
# of the reloading loader's polls.
STEP_GAP = 0.4

# Seconds a pause step freezes the target.
PAUSE_SECONDS = 1.0

# How often each kind of step is drawn: damage most, since it is what the
# sequences are about, and enough of the others to mix with it.
_WEIGHTS = {"damage": 5, "publish": 2, "restart": 2, "torn_write": 1, "pause": 1}


@dataclass(frozen=True)
class Step:
    """One step of a fault sequence.

    ``model`` and ``slot`` name the file of a damage step. ``model`` and
    ``version`` name the file that a publish step writes, and that a torn
    write writes over the primary. A restart and a pause use neither.
    """

    action: str
    model: str = ""
    slot: str = "primary"
    version: str = ""

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(
                f"unknown step {self.action!r}; expected one of {', '.join(ACTIONS)}"
            )
        if self.slot not in SLOTS:
            raise ValueError(
                f"unknown slot {self.slot!r}; expected one of {', '.join(SLOTS)}"
            )

    def describe(self) -> str:
        if self.action == "restart":
            return "kill and restart the target"
        if self.action == "pause":
            return f"pause the target for {PAUSE_SECONDS:g} s"
        if self.action == "publish":
            return f"publish {self.model} {self.version}"
        if self.action == "torn_write":
            return f"torn write of {self.model} {self.version} over the primary"
        return f"{self.action} {self.model} {self.slot}"

    def source(self) -> str:
        """Return the Python expression that makes this step again."""
        if self.action in ("restart", "pause"):
            return f'Step("{self.action}")'
        if self.action in ("publish", "torn_write"):
            return f'Step("{self.action}", "{self.model}", version="{self.version}")'
        return f'Step("{self.action}", "{self.model}", "{self.slot}")'


def draw_sequence(seed: int, model_set: ModelSet, length: int) -> tuple[Step, ...]:
    """Return ``length`` steps drawn from ``seed`` for the models of ``model_set``.

    The same seed, model set and length always give the same steps, so that
    ``--seed`` replays a sequence and the explorer can shrink the one a
    scenario ran. Format damage is drawn only of the kinds that apply to the
    model, such as no tree damage for a linear model.
    """
    models = model_set.names
    rng = random.Random(f"fault_sequence/{seed}")
    kinds = list(_WEIGHTS)
    weights = list(_WEIGHTS.values())
    steps = []
    for _ in range(length):
        kind = rng.choices(kinds, weights)[0]
        model = rng.choice(models)
        if kind in ("restart", "pause"):
            steps.append(Step(kind))
        elif kind in ("publish", "torn_write"):
            steps.append(Step(kind, model, version=rng.choice(VERSIONS)))
        else:
            # Format damage counts as one kind of damage beside the file ones.
            action = rng.choice((*FILE_DAMAGE, "format"))
            if action == "format":
                applicable = format_kinds(model_set, model)
                action = rng.choice(applicable or FILE_DAMAGE)
            slot = "backup" if rng.random() < 0.3 else "primary"
            steps.append(Step(action, model, slot))
    return tuple(steps)


def shrink_command(scenario: Scenario) -> str:
    """Return the explore command that reruns and shrinks this scenario's sequence."""
    command = ["model-chaos", "explore"]
    for option, value in scenario.selection.items():
        # Explore has no per-request bound: its checks use the default.
        if option != "--request-latency":
            command += [option, value]
    command += ["--seed", str(scenario.seed), "--runs", "1"]
    return shlex.join(command)


def format_kinds(model_set: ModelSet, model: str) -> tuple[str, ...]:
    """Return the kinds of format damage that apply to ``model``'s ``v1``."""
    known = model_set.get(model, "v1")
    assert known.path is not None
    return _format_kinds_of(known.path)


@functools.cache
def _format_kinds_of(path: Path) -> tuple[str, ...]:
    with warnings.catch_warnings():
        # A version warning does not change which kinds apply.
        warnings.simplefilter("ignore")
        return applicable_kinds(joblib.load(path))


def check_applicable(model_set: ModelSet, steps: Sequence[Step]) -> None:
    """Skip the scenario when a step needs a model the run's model set lacks.

    A sequence written out for one model set can meet another through
    ``--models``. Without this check its damage would be skipped step by step,
    and the scenario would pass without testing what it was written for.
    """
    for step in steps:
        if step.model and step.model not in model_set.names:
            pytest.skip(
                f"the step {step.describe()!r} needs {step.model}, which this "
                f"run's model files do not include"
            )
        if step.action in FORMAT_DAMAGE:
            kinds = format_kinds(model_set, step.model)
            if step.action not in kinds:
                pytest.skip(
                    f"the step {step.describe()!r} does not apply to this run's "
                    f"{step.model}; it takes {', '.join(kinds) or 'no format damage'}"
                )


def run_sequence(scenario: Scenario, steps: Sequence[Step]) -> None:
    """Start the target on fresh files, apply ``steps``, then publish valid files.

    The probe records the target throughout. A step that cannot apply (damage
    inside a file that is gone, tree damage on a linear model) is recorded as
    skipped. Publishes within the sequence only write files, because later
    steps may undo them. The closing publish of ``v2`` of every model is the
    one the target must serve, and the ``recovered`` check judges it.
    """
    check_applicable(scenario.model_set, steps)
    scenario.metrics["steps"] = [step.describe() for step in steps]
    scenario.populate()
    scenario.start()
    scenario.observe(STEP_GAP)

    for index, step in enumerate(steps):
        scenario.timeline.add_event("step", index=index, step=step.describe())
        try:
            _apply(scenario, step)
        except (FaultError, ModelSetError) as err:
            logger.info("%s: step %d skipped: %s", scenario.name, index, err)
            scenario.timeline.add_event("step_skipped", index=index, reason=str(err))
        scenario.observe(STEP_GAP)

    for model in scenario.model_set.names:
        scenario.publish(model, "v2")
    scenario.wait_recovered()


def _apply(scenario: Scenario, step: Step) -> None:
    if step.action == "restart":
        scenario.inject(faults.kill(scenario.target))
        scenario.inject(faults.restart(scenario.target))
        return
    if step.action == "pause":
        scenario.inject(faults.pause(scenario.target, PAUSE_SECONDS))
        return
    if step.action == "publish":
        scenario.publish(step.model, step.version, promise=False)
        return
    if step.action == "torn_write":
        # Held half-written until the target tried to load it, or for at most
        # the torn write's hold timeout when it never tries.
        with scenario.torn_write(step.model, step.version) as write:
            write.hold_until_load_attempt()
        return

    path = scenario.file(step.model, backup=step.slot == "backup")
    if step.action in FORMAT_DAMAGE:
        scenario.inject(_damaged_copy(scenario, step, path))
    elif step.action == "truncate":
        scenario.inject(faults.truncate(path, file_size(path, "truncate") // 2))
    elif step.action == "garbage":
        # Seeded by the step itself, so that a step writes the same bytes
        # wherever it is in a shrunk sequence.
        scenario.inject(faults.garbage(path, random.Random(step.source())))
    else:
        scenario.inject(faults.delete(path))


def _damaged_copy(scenario: Scenario, step: Step, path: Path) -> faults.FaultEvent:
    """Replace ``path`` with a copy of ``v1`` damaged inside the model.

    The copy is damaged outside the model directory and then renamed into
    place, so that damage which does not apply leaves the file as it was.
    """
    known = scenario.model_set.get(step.model, "v1")
    assert known.path is not None
    # Same file name, so that the fault's note names the right file.
    scratch = scenario.work_dir / "damaging" / path.name
    scratch.parent.mkdir(exist_ok=True)
    try:
        shutil.copyfile(known.path, scratch)
        event = faults.damage_format(scratch, step.action)
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)
    event.path = str(path)
    return event
