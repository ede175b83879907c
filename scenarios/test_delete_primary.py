"""The primary file is deleted before start-up, or while the target runs.

A running target that keeps the model in memory must say it serves the last
known good model; after a restart it has only the backup left.
"""

import pytest

from harness import Scenario, faults

CHECKS = ("stayed_up", "truthful_health", "no_silent_corruption")


@pytest.mark.parametrize("when", ["before_start", "while_running"])
def test_delete_primary(chaos: Scenario, when: str) -> None:
    chaos.populate()
    if when == "before_start":
        chaos.inject(faults.delete(chaos.file("global_model")))
    if not chaos.start():
        chaos.verify(*CHECKS)
    chaos.observe(0.5)

    if when == "while_running":
        chaos.inject(faults.delete(chaos.file("global_model")))
        chaos.observe(1.0)
        chaos.inject(faults.restart(chaos.target))
        chaos.observe(1.0)

    chaos.verify(*CHECKS)
