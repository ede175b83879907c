"""Nothing is damaged: the target serves every model from its primary file."""

from harness import Scenario

CHECKS = ("stayed_up", "truthful_health", "no_silent_corruption", "latency_bound")


def test_baseline(chaos: Scenario) -> None:
    chaos.populate()

    if chaos.start():
        chaos.observe(1.5)

    chaos.verify(*CHECKS)
