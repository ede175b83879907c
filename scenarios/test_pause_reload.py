"""The target is frozen (SIGSTOP or docker pause) just as a new file is published."""

from harness import Scenario, faults

CHECKS = ("stayed_up", "truthful_health", "no_silent_corruption", "recovered")

PAUSE_SECONDS = 1.0


def test_pause_reload(chaos: Scenario) -> None:
    chaos.populate()
    if not chaos.start():
        chaos.verify(*CHECKS)
    chaos.observe(0.5)

    chaos.publish("global_model", "v2")
    chaos.inject(faults.pause(chaos.target, PAUSE_SECONDS))
    chaos.wait_recovered()

    chaos.verify(*CHECKS)
