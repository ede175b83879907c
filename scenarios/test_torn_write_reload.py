"""A training job rewrites the primary in place while the target reloads it.

The write is held half-done until the target has looked at the file (its
``load_attempts`` went up), so the race happens on every run rather than by
luck. Then the write and the manifest are finished, and the target must serve
the new version.
"""

from harness import Scenario

CHECKS = ("stayed_up", "truthful_health", "no_silent_corruption", "recovered")


def test_torn_write_reload(chaos: Scenario) -> None:
    chaos.populate()
    if not chaos.start():
        chaos.verify(*CHECKS)
    chaos.observe(0.5)

    with chaos.torn_write("global_model", "v2") as write:
        write.hold_until_load_attempt()
        chaos.observe(0.3)
    chaos.publish_manifest("global_model", "v2")
    chaos.wait_recovered()

    chaos.verify(*CHECKS)
