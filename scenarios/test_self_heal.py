"""A valid file is published after a bad one: the target must heal by itself."""

from harness import Scenario, faults

CHECKS = ("stayed_up", "truthful_health", "no_silent_corruption", "recovered")


def test_self_heal(chaos: Scenario) -> None:
    chaos.populate()
    chaos.inject(faults.truncate(chaos.file("global_model"), 1000))
    if not chaos.start():
        chaos.verify(*CHECKS)
    chaos.observe(0.5)

    chaos.publish("global_model", "v2")
    chaos.wait_recovered()

    chaos.verify(*CHECKS)
