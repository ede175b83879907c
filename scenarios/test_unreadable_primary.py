"""The primary path cannot be read as a file: a directory, a dangling link, a FIFO.

Opening a FIFO for reading blocks until a writer appears, so a loader that
opens it the ordinary way never finishes starting.
"""

import pytest

from harness import Scenario, faults

CHECKS = ("stayed_up", "truthful_health", "no_silent_corruption")

KINDS = ["directory", "dangling_symlink", "fifo"]


@pytest.mark.parametrize("kind", KINDS)
def test_unreadable_primary(chaos: Scenario, kind: str) -> None:
    chaos.populate()
    chaos.inject(faults.make_unreadable(chaos.file("global_model"), kind))

    if chaos.start():
        chaos.observe(1.0)

    chaos.verify(*CHECKS)
