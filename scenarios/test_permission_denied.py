"""The primary file cannot be read by the service's non-root user.

Root ignores file modes, so this runs where the service is not root: in the
container of the Docker target.
"""

from harness import Scenario, faults

CHECKS = ("stayed_up", "truthful_health", "no_silent_corruption")


def test_permission_denied(chaos: Scenario) -> None:
    chaos.require_target("docker", "the container's service runs as a non-root user")
    chaos.populate()
    chaos.inject(faults.make_unreadable(chaos.file("global_model"), "no_permission"))

    if chaos.start():
        chaos.observe(1.0)

    chaos.verify(*CHECKS)
