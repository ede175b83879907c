"""The primary is garbage and the backup is valid: serve the backup, and say so."""

from harness import Scenario, faults

CHECKS = ("stayed_up", "truthful_health", "no_silent_corruption")


def test_backup_fallback(chaos: Scenario) -> None:
    chaos.populate()
    for model in chaos.model_set.names:
        chaos.inject(faults.garbage(chaos.file(model), chaos.rng))

    if chaos.start():
        chaos.observe(0.5)
        chaos.inject(faults.restart(chaos.target))
        chaos.observe(1.5)

    chaos.verify(*CHECKS)
