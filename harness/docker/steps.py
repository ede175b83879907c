"""Log the steps of a long image build with their durations."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("harness.docker")


@contextmanager
def timed_step(description: str) -> Iterator[None]:
    """Log ``description`` when the step starts, and its duration when it ends."""
    logger.info("%s ...", description)
    start = time.monotonic()
    try:
        yield
    except BaseException:
        logger.info("%s failed after %.1f s", description, time.monotonic() - start)
        raise
    logger.info("%s done in %.1f s", description, time.monotonic() - start)
