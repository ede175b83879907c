"""A background thread that calls a poll function at a fixed interval."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from target_service.failures import describe_exception

logger = logging.getLogger(__name__)


class Watcher:
    """Call ``poll`` every ``interval`` seconds in a daemon thread until stopped.

    An exception from ``poll`` is logged and the thread goes on, so a bug in one
    poll does not end reloading for good. The same exception text is logged
    once and then only counted.
    """

    def __init__(
        self, interval: float, poll: Callable[[], None], name: str = "model-watcher"
    ) -> None:
        self.interval = interval
        self._poll = poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._last_error: str | None = None
        self._repeats = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to stop and wait for the poll in progress to finish."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._poll()
            except Exception as err:
                self._log_error(err)

    def _log_error(self, err: Exception) -> None:
        text = describe_exception(err)
        if text == self._last_error:
            self._repeats += 1
            logger.debug("poll failed again (%d times): %s", self._repeats + 1, text)
            return
        self._last_error = text
        self._repeats = 0
        logger.error(
            "poll failed, retrying in %.1f s: %s", self.interval, text, exc_info=err
        )
