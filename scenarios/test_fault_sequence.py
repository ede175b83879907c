"""A seeded sequence of damage, publishes and restarts, then a valid publish.

The run's seed picks the steps, so `model-chaos run -k fault_sequence --seed S`
replays one sequence, and `model-chaos explore --seed S --runs 1` shrinks it
to the fewest steps that still fail.
"""

from harness import Scenario
from harness.sequence import (
    CHECKS,
    DEFAULT_LENGTH,
    draw_sequence,
    run_sequence,
    shrink_command,
)


def test_fault_sequence(chaos: Scenario) -> None:
    steps = draw_sequence(chaos.seed, chaos.model_set, DEFAULT_LENGTH)
    chaos.metrics["shrink"] = shrink_command(chaos)
    run_sequence(chaos, steps)
    chaos.verify(*CHECKS)
