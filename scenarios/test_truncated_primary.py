"""The primary file is cut short, as by a copy that stopped early."""

import pytest

from harness import Scenario, faults

CHECKS = ("stayed_up", "truthful_health", "no_silent_corruption", "latency_bound")

# Where the file ends, as a function of its full size in bytes.
OFFSETS = {
    "empty": lambda size: 0,
    "header": lambda size: 20,
    "middle": lambda size: size // 2,
    "last_byte": lambda size: size - 1,
}


@pytest.mark.parametrize("where", list(OFFSETS))
def test_truncated_primary(chaos: Scenario, where: str) -> None:
    chaos.populate()
    path = chaos.file("global_model")
    chaos.inject(faults.truncate(path, OFFSETS[where](path.stat().st_size)))

    if chaos.start():
        chaos.observe(1.0)

    chaos.verify(*CHECKS)
