"""The serving state of one model: the model in memory and what /health reports."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any


class Tier(StrEnum):
    """Origin of the served model: primary file, backup file, memory or the dummy."""

    PRIMARY = "primary"
    BACKUP = "backup"
    LAST_KNOWN_GOOD = "last_known_good"
    DUMMY = "dummy"


@dataclass(frozen=True)
class ServedModel:
    """A model in memory with the facts about the file it was loaded from.

    ``model`` is ``None`` only for the naive loader after a failed load.
    ``version`` is the sha256 of the source file, ``None`` for the dummy.
    """

    model: Any
    tier: Tier
    version: str | None
    source: Path | None
    sklearn_version: str
    loaded_at: datetime | None


@dataclass(frozen=True)
class SlotStatus:
    """One model's entry in the /health response."""

    tier: str
    version: str | None
    source: str | None
    sklearn_version: str
    loaded_at: str | None
    load_attempts: int
    last_error: str | None


class ModelSlot:
    """The model served under one name, swapped atomically by its loader.

    Request threads read ``served`` while a loader thread replaces it, so every
    read and write goes through one lock and a reader always gets a consistent
    model with its tier and version.
    """

    def __init__(self, name: str, served: ServedModel) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._served = served
        self._load_attempts = 0
        self._last_error: str | None = None

    @property
    def served(self) -> ServedModel:
        with self._lock:
            return self._served

    def swap(self, served: ServedModel, last_error: str | None) -> ServedModel:
        """Serve ``served`` from now on and return the model it replaces."""
        with self._lock:
            previous = self._served
            self._served = served
            self._last_error = last_error
            return previous

    def set_tier(self, tier: Tier) -> None:
        """Change the reported tier of the model in memory, keeping the model."""
        with self._lock:
            self._served = replace(self._served, tier=tier)

    def count_attempt(self) -> None:
        with self._lock:
            self._load_attempts += 1

    def set_last_error(self, message: str | None) -> None:
        with self._lock:
            self._last_error = message

    def status(self) -> SlotStatus:
        with self._lock:
            served = self._served
            attempts = self._load_attempts
            last_error = self._last_error
        return SlotStatus(
            tier=str(served.tier),
            version=served.version,
            source=str(served.source) if served.source is not None else None,
            sklearn_version=served.sklearn_version,
            loaded_at=(
                served.loaded_at.isoformat() if served.loaded_at is not None else None
            ),
            load_attempts=attempts,
            last_error=last_error,
        )
