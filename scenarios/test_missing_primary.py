"""The primary file is missing at start-up: serve the backup, else the dummy."""

import pytest

from harness import Scenario, faults

CHECKS = ("stayed_up", "truthful_health", "no_silent_corruption")


@pytest.mark.parametrize("backup", [True, False], ids=["with_backup", "no_backup"])
def test_missing_primary(chaos: Scenario, backup: bool) -> None:
    chaos.populate(backup=backup)
    chaos.inject(faults.delete(chaos.file("global_model")))

    if chaos.start():
        chaos.observe(1.0)

    chaos.verify(*CHECKS)
