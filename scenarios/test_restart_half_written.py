"""The target restarts while a training job has written half of the primary.

This is the start-up race: the file is held half-written until the restarted
target has made its first load attempt, then the write and manifest finish and
the target must pick up the new version by itself.
"""

from harness import Scenario, faults

CHECKS = ("stayed_up", "truthful_health", "no_silent_corruption", "recovered")


def test_restart_half_written(chaos: Scenario) -> None:
    chaos.populate()
    if not chaos.start():
        chaos.verify(*CHECKS)
    chaos.observe(0.5)

    with chaos.torn_write("global_model", "v2") as write:
        chaos.inject(faults.restart(chaos.target))
        write.hold_until_load_attempt(after_restart=True)
        chaos.observe(0.3)
    chaos.publish_manifest("global_model", "v2")
    chaos.wait_recovered()

    chaos.verify(*CHECKS)
