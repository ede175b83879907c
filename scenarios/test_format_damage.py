"""Damage aimed at the model format: crash, endless loop, wrong answers, missing parts.

These files load without an exception. A tree node whose child is out of range
kills the process at predict (SIGSEGV), a node that points back to the root
loops forever, changed leaf values give wrong predictions silently, and a
removed fitted attribute fails only at predict.
"""

import pytest

from harness import Scenario, faults

CHECKS = ("stayed_up", "truthful_health", "no_silent_corruption", "latency_bound")

KINDS = ["child_out_of_range", "child_loop", "leaf_values", "attribute_removed"]


@pytest.mark.parametrize("kind", KINDS)
def test_format_damage(chaos: Scenario, kind: str) -> None:
    chaos.populate()
    chaos.inject(faults.damage_format(chaos.file("global_model"), kind))

    if chaos.start():
        chaos.observe(1.5)

    chaos.verify(*CHECKS)
