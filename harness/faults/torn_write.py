"""A torn write: a model file rewritten in place and held half-written.

A training job that writes ``global_model.pkl`` directly (``open(path, "wb")``)
leaves a window in which a reader sees the first part of the new file and none
of the rest. :class:`TornWrite` opens that window on purpose and keeps it open
until a condition holds, typically until the target has attempted a load.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from harness.errors import FaultError
from harness.timeline import FaultEvent, now


class TornWrite:
    """Write ``data`` to ``path`` in place, stopping after ``split`` bytes.

    Use :meth:`begin`, then :meth:`hold` while the target looks at the file, then
    :meth:`finish`. As a context manager it begins on entry and closes the file
    on exit; without a call to :meth:`finish` the file stays half-written.
    """

    def __init__(self, path: Path, data: bytes, split: int) -> None:
        if not 0 <= split <= len(data):
            raise FaultError(
                f"invalid split {split} for a write of {len(data)} bytes to {path}; "
                f"choose a split from 0 to {len(data)}",
                path=path,
            )
        self.path = path
        self.data = data
        self.split = split
        self.t_start: float | None = None
        self.held_until_condition: bool | None = None
        self.hold_seconds = 0.0
        self.event: FaultEvent | None = None
        self._handle: IO[bytes] | None = None

    def begin(self) -> None:
        """Truncate the file, write the first ``split`` bytes and fsync them."""
        if self._handle is not None or self.event is not None:
            raise FaultError(f"the torn write to {self.path} has already begun")
        self.t_start = now()
        try:
            self._handle = open(self.path, "wb")
            self._handle.write(self.data[: self.split])
            self._sync()
        except OSError as err:
            self.close()
            raise FaultError(
                f"cannot begin the torn write to {self.path}: {err}", path=self.path
            ) from err

    def hold(
        self, until: Callable[[], bool], timeout: float, interval: float = 0.02
    ) -> bool:
        """Keep the file half-written until ``until()`` is true or ``timeout`` passed.

        Returns whether the condition held before the timeout; both outcomes and
        the time spent are recorded in the event.
        """
        if self._handle is None:
            raise FaultError(f"hold() needs begin() first ({self.path})")
        started = now()
        deadline = started + timeout
        held = until()
        while not held and now() < deadline:
            time.sleep(interval)
            held = until()
        self.held_until_condition = held
        self.hold_seconds += now() - started
        return held

    def finish(self) -> FaultEvent:
        """Write the rest of the data, fsync, close, and return the fault event."""
        if self._handle is None or self.t_start is None:
            raise FaultError(f"finish() needs begin() first ({self.path})")
        try:
            self._handle.write(self.data[self.split :])
            self._sync()
        except OSError as err:
            raise FaultError(
                f"cannot finish the torn write to {self.path}: {err}", path=self.path
            ) from err
        finally:
            self.close()

        # One rounded value for the params and the note, so the two always agree.
        hold_seconds = round(self.hold_seconds, 3)
        self.event = FaultEvent(
            kind="torn_write",
            t_start=self.t_start,
            t_end=now(),
            path=str(self.path),
            params={
                "split": self.split,
                "size": len(self.data),
                "held_until_condition": self.held_until_condition,
                "hold_seconds": hold_seconds,
            },
            note=f"{self.path.name} rewritten in place and held at {self.split} of "
            f"{len(self.data)} bytes for {hold_seconds:.2f} s",
        )
        return self.event

    def close(self) -> None:
        """Close the file if it is open; what was written so far stays."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.close()

    def _sync(self) -> None:
        assert self._handle is not None
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def __enter__(self) -> TornWrite:
        self.begin()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def load_attempts(health: dict[str, Any] | None, model: str) -> int | None:
    """Return ``models[model].load_attempts`` from a ``/health`` body, if present."""
    if not isinstance(health, dict):
        return None
    models = health.get("models")
    if not isinstance(models, dict):
        return None
    state = models.get(model)
    if not isinstance(state, dict):
        return None
    value = state.get("load_attempts")
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value
