"""Replaying a damaged copy found by a sweep on a model file in a scenario."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from harness.errors import FaultError
from harness.faults._io import read_file, write_in_place
from harness.sweep.damage import Damage, Flip
from harness.timeline import FaultEvent, now
from target_service.manifest import sha256_bytes


def replay_damage(
    path: Path, flips: Iterable[Flip], *, size: int | None = None
) -> FaultEvent:
    """Flip exactly these bits of the file at ``path``, then cut it to ``size``.

    ``flips`` are (byte offset, bit) pairs as a sweep records them, bit 0 the
    least significant. The file is rewritten in place, as the other file
    faults do. Raises :class:`FaultError` when a flip or the size lies outside
    the file.
    """
    t_start = now()
    damage = Damage("replay", 0, tuple(sorted(flips)), size)
    data = read_file(path, "replay damage on")
    outside = [flip for flip in damage.flips if not 0 <= flip[0] < len(data)]
    if outside or not all(0 <= bit < 8 for _, bit in damage.flips):
        raise FaultError(
            f"cannot flip {outside or list(damage.flips)} in {path}, which has "
            f"{len(data)} bytes; flips are (byte offset, bit 0 to 7) inside the file",
            path=path,
        )
    if size is not None and not 0 <= size <= len(data):
        raise FaultError(
            f"cannot cut {path} to {size} bytes: it has {len(data)}; choose a "
            f"size from 0 to {len(data)}",
            path=path,
        )

    damaged = damage.apply(data)
    write_in_place(path, damaged, "replay damage on")
    return FaultEvent(
        kind="replay_damage",
        t_start=t_start,
        t_end=now(),
        path=str(path),
        params={
            "flips": [list(flip) for flip in damage.flips],
            "size": size,
            "original_sha256": sha256_bytes(data),
            "sha256": sha256_bytes(damaged),
        },
        note=f"{len(damage.flips)} bits flipped in {path.name}"
        + (f", cut to {size} bytes" if size is not None else ""),
    )
