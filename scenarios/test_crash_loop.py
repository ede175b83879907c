"""A file that kills the service at predict, under Docker's on-failure restart policy.

A loader that serves the file crashes on the first request, the engine starts
the container again, the next request crashes it again: a crash loop that the
report shows through ``restart_count``. A loader that validates first never
restarts.
"""

from harness import Scenario, faults

CHECKS = ("stayed_up", "truthful_health", "no_silent_corruption")

RESTART_POLICY = {"Name": "on-failure", "MaximumRetryCount": 10}


def test_crash_loop(chaos: Scenario) -> None:
    chaos.require_target("docker", "the restart policy is the container engine's")
    chaos.use_target_options(restart_policy=RESTART_POLICY)
    chaos.populate()
    chaos.inject(faults.damage_format(chaos.file("global_model"), "child_out_of_range"))

    if chaos.start():
        chaos.observe(10.0)

    chaos.verify(*CHECKS)
