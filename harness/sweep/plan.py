"""The damaged copies a sweep makes of each kind, drawn from a seed.

- ``truncate``: the file cut at every ``stride``-th offset;
- ``bitflip``: single bits flipped anywhere in the file;
- ``opcode``: one bit flipped in a pickle opcode byte, in the length before a
  string, bytes or frame argument, or in a memo index;
- ``compressed``: one bit flipped inside the compressed stream of a file saved
  with compression;
- ``array``: a field of one element of a NumPy array payload (a tree node's
  child index, threshold or feature, a leaf value) with one bit flipped or
  set to zero.

A kind that needs a part the file does not have (a compressed stream, pickle
opcodes, raw arrays) returns a note saying why it was skipped instead.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from harness.sweep.damage import KINDS, Damage, flips_between
from harness.sweep.layout import ArrayPayload, FileLayout, Opcode

# Aimed opcode damage cycles through these targets in this order.
OPCODE_TARGETS = ("opcode", "length", "memo")

# How many times a draw may repeat an earlier flip before the kind gives up on
# finding more distinct ones.
_MAX_REPEATS = 1000


@dataclass(frozen=True)
class KindPlan:
    """The damaged copies of one kind, or the reason the kind does not apply."""

    kind: str
    damages: tuple[Damage, ...]
    skipped: str | None = None


def plan_kind(
    kind: str, data: bytes, layout: FileLayout, *, count: int, stride: int, seed: int
) -> KindPlan:
    """Return the damaged copies of ``kind`` for the file ``data``.

    ``count`` is the number of copies of the drawn kinds, ``stride`` the step
    between truncation offsets. Each kind draws from its own generator seeded
    with ``seed``, so a kind's copies do not depend on which other kinds run.
    """
    rng = random.Random(f"{seed}/{kind}")
    if kind == "truncate":
        return KindPlan(kind, truncations(len(data), stride))
    if kind == "bitflip":
        return KindPlan(kind, bit_flips(kind, (0, len(data)), count, rng))
    if kind == "compressed":
        if layout.compressed_span is None:
            return KindPlan(kind, (), _NOT_COMPRESSED)
        params = {"compressor": layout.compressor}
        span = layout.compressed_span
        return KindPlan(kind, bit_flips(kind, span, count, rng, params))
    if layout.compressor is not None:
        return KindPlan(kind, (), _COMPRESSED.format(compressor=layout.compressor))
    if kind == "opcode":
        return KindPlan(kind, opcode_damages(layout.opcodes, count, rng))
    if kind == "array":
        if not layout.arrays:
            return KindPlan(kind, (), _NO_ARRAYS)
        return KindPlan(kind, array_damages(data, layout.arrays, count, rng))
    raise ValueError(f"unknown damage kind {kind!r}; expected one of {KINDS}")


_NOT_COMPRESSED = (
    "the file is not compressed, so it has no compressed stream to damage; "
    "a model saved with joblib.dump(..., compress=3) has one"
)
_COMPRESSED = (
    "the file is compressed ({compressor}), and this damage aims at the pickle "
    "stream inside; sweep a copy saved with compress=0 for it"
)
_NO_ARRAYS = "the file contains no NumPy array written as raw bytes"


def truncations(size: int, stride: int) -> tuple[Damage, ...]:
    """Return the file cut at every ``stride``-th offset below ``size``."""
    return tuple(
        Damage("truncate", index, size=offset, params={"size": offset})
        for index, offset in enumerate(range(0, size, stride))
    )


def bit_flips(
    kind: str,
    span: tuple[int, int],
    count: int,
    rng: random.Random,
    params: Mapping[str, object] | None = None,
) -> tuple[Damage, ...]:
    """Return ``count`` single-bit flips at distinct positions in bytes ``span``."""
    start, end = span
    bits = (end - start) * 8
    positions = rng.sample(range(bits), min(count, bits))
    damages = []
    for index, position in enumerate(positions):
        offset, bit = divmod(position, 8)
        offset += start
        extra = dict(params or {})
        damages.append(
            Damage(
                kind,
                index,
                flips=((offset, bit),),
                params={"offset": offset, "bit": bit, **extra},
            )
        )
    return tuple(damages)


def opcode_damages(
    opcodes: tuple[Opcode, ...], count: int, rng: random.Random
) -> tuple[Damage, ...]:
    """Return ``count`` single-bit flips aimed at opcodes, lengths and memo indices."""
    by_target = {
        "opcode": opcodes,
        "length": tuple(op for op in opcodes if op.role == "length"),
        "memo": tuple(op for op in opcodes if op.role == "memo"),
    }
    targets = [target for target in OPCODE_TARGETS if by_target[target]]
    if not targets:
        return ()

    def draw(index: int) -> Damage:
        target = targets[index % len(targets)]
        opcode = rng.choice(by_target[target])
        if target == "opcode":
            offset, size = opcode.offset, 1
        else:
            offset, size = opcode.field_offset, opcode.field_size
        byte, bit = divmod(rng.randrange(size * 8), 8)
        flip = (offset + byte, bit)
        params = {
            "target": target,
            "opcode": opcode.name,
            "opcode_offset": opcode.offset,
            "offset": flip[0],
            "bit": flip[1],
        }
        return Damage("opcode", index, flips=(flip,), params=params)

    return _distinct(draw, count)


def array_damages(
    data: bytes, arrays: tuple[ArrayPayload, ...], count: int, rng: random.Random
) -> tuple[Damage, ...]:
    """Return ``count`` damaged fields of array elements, half flipped, half zeroed.

    Fields are drawn in proportion to their bytes: an array in proportion to
    its size, an element of it, and a field of the element in proportion to
    the field's size. The damage lands where the file's array bytes are, which
    in a tree ensemble are mostly node records (child indices, features,
    thresholds) and leaf values.
    """
    sizes = list(
        itertools.accumulate(payload.end - payload.start for payload in arrays)
    )

    def draw(index: int) -> Damage:
        payload = rng.choices(arrays, cum_weights=sizes)[0]
        element = rng.randrange(payload.elements)
        field = rng.choices(payload.fields, [f.size for f in payload.fields])[0]
        offset = payload.start + element * payload.itemsize + field.offset
        word = data[offset : offset + field.size]
        params: dict[str, object] = {
            "array": payload.index,
            "dtype": payload.dtype,
            "shape": list(payload.shape),
            "element": element,
            "field": field.name or None,
            "offset": offset,
            "length": field.size,
        }
        # A field that is zero already cannot be zeroed; it gets a flip instead.
        if index % 2 == 1 and any(word):
            flips = flips_between(word, bytes(field.size), offset)
            params["operation"] = "zero"
        else:
            byte, bit = divmod(rng.randrange(field.size * 8), 8)
            flips = ((offset + byte, bit),)
            params.update(operation="flip", bit=byte * 8 + bit)
        return Damage("array", index, flips=flips, params=params)

    return _distinct(draw, count)


def _distinct(draw: Callable[[int], Damage], count: int) -> tuple[Damage, ...]:
    damages: list[Damage] = []
    seen: set[tuple[tuple[int, int], ...]] = set()
    repeats = 0
    while len(damages) < count and repeats < _MAX_REPEATS:
        damage = draw(len(damages))
        if damage.flips in seen:
            repeats += 1
            continue
        seen.add(damage.flips)
        damages.append(damage)
    return tuple(damages)
