"""One damaged copy of a model file: bits flipped, the file cut short, or both.

Every kind of damage a sweep makes is written as bit flips and a truncation.
One record then replays it exactly, a shrinker can drop flips one by one, and a
regression scenario can rebuild the file from the undamaged one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KINDS = ("truncate", "bitflip", "opcode", "compressed", "array")

# A flip is (byte offset, bit), bit 0 being the least significant bit.
Flip = tuple[int, int]


@dataclass(frozen=True)
class Damage:
    """The change that turns an undamaged file into one damaged copy.

    ``flips`` are applied first, then the file is cut to its first ``size``
    bytes (``None`` keeps the whole file). ``index`` numbers the copies of one
    kind in the order they were drawn. ``params`` describe the damage in the
    kind's own terms (an opcode name, an array field) for the report.
    """

    kind: str
    index: int
    flips: tuple[Flip, ...] = ()
    size: int | None = None
    params: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def first_offset(self) -> int:
        """Return the first byte where this copy differs from the undamaged file.

        A reader that has not reached this offset has read the same bytes from
        both files. An undamaged copy returns an offset past the end of any file.
        """
        offsets = [offset for offset, _ in self.flips]
        if self.size is not None:
            offsets.append(self.size)
        return min(offsets, default=_NEVER)

    def apply(self, data: bytes) -> bytes:
        """Return the damaged copy of ``data``."""
        if not self.flips:
            return data if self.size is None else data[: self.size]
        damaged = bytearray(data)
        for offset, bit in self.flips:
            damaged[offset] ^= 1 << bit
        if self.size is not None:
            del damaged[self.size :]
        return bytes(damaged)

    def with_flips(self, flips: tuple[Flip, ...]) -> Damage:
        """Return the same damage with only ``flips`` (a shrinker's candidate)."""
        return Damage(self.kind, self.index, tuple(sorted(flips)), self.size, {})

    def describe(self) -> str:
        """Return a short text for details and listings.

        For example ``bitflip #3 (byte 1204 bit 5)`` or ``array #7 (zero
        left_child of element 12 of array 301, byte 5208)``.
        """
        aim = _aim(self.params)
        parts = [aim] if aim else []
        where = ", ".join(f"byte {offset} bit {bit}" for offset, bit in self.flips[:3])
        if len(self.flips) > 3:
            where = f"{len(self.flips)} bits from byte {self.flips[0][0]}"
        if where:
            parts.append(where)
        if self.size is not None:
            parts.append(f"cut to {self.size} bytes")
        label = f"{self.kind} #{self.index}"
        return f"{label} ({', '.join(parts)})" if parts else label

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "index": self.index,
            "flips": [list(flip) for flip in self.flips],
            "size": self.size,
            "params": dict(self.params),
        }


_NEVER = 2**63 - 1


def _aim(params: dict[str, Any]) -> str:
    """Return what aimed damage hit, from the params of the opcode and array kinds."""
    if "opcode" in params:
        target, opcode = params["target"], params["opcode"]
        return f"{target} of {opcode} at byte {params['opcode_offset']}"
    if "array" in params:
        field = params.get("field") or "item"
        return (
            f"{params['operation']} {field} of element {params['element']} of "
            f"array {params['array']}"
        )
    return ""


def undamaged(index: int = 0) -> Damage:
    """Return the copy without damage, which calibration runs as a reference case."""
    return Damage("undamaged", index)


def flips_between(before: bytes, after: bytes, offset: int) -> tuple[Flip, ...]:
    """Return the flips that turn the bytes ``before`` into ``after`` at ``offset``."""
    flips: list[Flip] = []
    for position, (old, new) in enumerate(zip(before, after, strict=True)):
        changed = old ^ new
        flips.extend((offset + position, bit) for bit in range(8) if changed >> bit & 1)
    return tuple(flips)
