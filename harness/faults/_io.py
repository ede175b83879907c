"""File helpers shared by the fault injectors: checked reads and in-place writes."""

from __future__ import annotations

import os
import random
from pathlib import Path

from harness.errors import FaultError


def read_file(path: Path, action: str) -> bytes:
    """Return the bytes of ``path``; raise FaultError naming ``action`` otherwise."""
    try:
        return path.read_bytes()
    except OSError as err:
        raise FaultError(f"cannot {action} {path}: {err}", path=path) from err


def file_size(path: Path, action: str) -> int:
    try:
        return path.stat().st_size
    except OSError as err:
        raise FaultError(f"cannot {action} {path}: {err}", path=path) from err


def write_in_place(path: Path, data: bytes, action: str) -> None:
    """Replace the content of ``path`` through the same inode, then fsync it.

    This is how damage on a disk or a copy tool that rewrites the file looks to
    a reader: the path never disappears, its content changes.
    """
    try:
        with open(path, "r+b") as handle:
            handle.write(data)
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        raise FaultError(f"cannot {action} {path}: {err}", path=path) from err


def make_rng(rng: random.Random | int) -> tuple[random.Random, int | None]:
    """Return a generator and, when ``rng`` was a seed, that seed for the record."""
    if isinstance(rng, random.Random):
        return rng, None
    return random.Random(rng), rng
