"""A damaged file arrives with a correctly signed manifest; only validation can tell.

This is a bit flip in memory or a serializer bug between predicting and writing:
the manifest's hash matches the damaged bytes, but its canary outputs were
recorded from the undamaged model. The file is published while the target runs.
"""

import pytest

from harness import Scenario, faults

CHECKS = ("stayed_up", "truthful_health", "no_silent_corruption", "latency_bound")

KINDS = ["child_out_of_range", "child_loop", "leaf_values", "attribute_removed"]


@pytest.mark.parametrize("kind", KINDS)
def test_signed_damage(chaos: Scenario, kind: str) -> None:
    chaos.populate()
    if not chaos.start():
        chaos.verify(*CHECKS)
    chaos.observe(0.5)

    path = chaos.file("global_model")
    reference = chaos.model_set.get("global_model", "v1")
    chaos.inject(faults.damage_format(path, kind))
    chaos.inject(faults.sign_damaged(path, reference, key=chaos.key))
    chaos.observe(chaos.settings.validate_timeout + 1.0)

    chaos.verify(*CHECKS)
