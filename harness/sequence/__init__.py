"""Fault sequences: seeded series of damage, publishes, restarts and pauses.

A sequence is drawn from a seed (:func:`draw_sequence`) and run against a live
target (:func:`run_sequence`). The ``fault_sequence`` scenario runs the one of
the run's seed. ``model-chaos explore`` runs many and shrinks each failing one
to the shortest sequence that fails the same checks, then writes that out as a
scenario module.
"""

from harness.sequence.steps import (
    ACTIONS,
    CHECKS,
    DEFAULT_LENGTH,
    Step,
    draw_sequence,
    run_sequence,
    shrink_command,
)

__all__ = [
    "ACTIONS",
    "CHECKS",
    "DEFAULT_LENGTH",
    "Step",
    "draw_sequence",
    "run_sequence",
    "shrink_command",
]
