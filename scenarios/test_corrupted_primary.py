"""The primary file is damaged on disk in place: bit flips, zeroes, foreign content."""

import pytest

from harness import Scenario, faults

CHECKS = ("stayed_up", "truthful_health", "no_silent_corruption", "latency_bound")

KINDS = [
    "bit_flips",
    "zeroed_page",
    "garbage",
    "html_page",
    "lfs_pointer",
    "empty_file",
    "zero_filled",
]


def damage(chaos: Scenario, kind: str) -> faults.FaultEvent:
    path = chaos.file("global_model")
    size = path.stat().st_size
    if kind == "bit_flips":
        return faults.flip_bits(path, 8, chaos.rng)
    if kind == "zeroed_page":
        return faults.zero_page(path, chaos.rng.randrange(0, size - 4096))
    if kind == "garbage":
        return faults.garbage(path, chaos.rng)
    content = {
        "html_page": "html",
        "lfs_pointer": "lfs_pointer",
        "empty_file": "empty",
        "zero_filled": "zeros",
    }
    return faults.replace_content(path, content[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_corrupted_primary(chaos: Scenario, kind: str) -> None:
    chaos.populate()
    chaos.inject(damage(chaos, kind))

    if chaos.start():
        chaos.observe(1.0)

    chaos.verify(*CHECKS)
