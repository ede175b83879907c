"""The target is killed and started again while its model files are corrupt.

What it kept in memory is gone; it must fall back to the backup (or to the
dummy when the backup is damaged too) and recover once a valid file appears.
"""

import pytest

from harness import Scenario, faults

CHECKS = ("stayed_up", "truthful_health", "no_silent_corruption", "recovered")


@pytest.mark.parametrize("damaged", ["primary", "both"])
def test_restart_corrupt(chaos: Scenario, damaged: str) -> None:
    chaos.populate()
    if not chaos.start():
        chaos.verify(*CHECKS)
    chaos.observe(0.5)

    chaos.inject(faults.garbage(chaos.file("global_model"), chaos.rng))
    if damaged == "both":
        path = chaos.file("global_model", backup=True)
        chaos.inject(faults.garbage(path, chaos.rng))
    chaos.inject(faults.kill(chaos.target))
    chaos.inject(faults.restart(chaos.target))
    chaos.observe(0.5)

    chaos.publish("global_model", "v2")
    chaos.wait_recovered()

    chaos.verify(*CHECKS)
