"""Delta debugging (``ddmin``): reduce a failing input to a 1-minimal one.

Both the damage sweep (flipped bits) and fault sequences (steps) shrink with
it. The caller decides how candidates are tested: the sweep tests a whole round
of candidates as one batch of forked loads, while a fault sequence runs one
live target per candidate and stops at the first that still fails.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T", bound=Hashable)

# Given one round's candidates, returns the index of the first that still
# reproduces the failure, or None when none does.
FirstReproducing = Callable[[Sequence[tuple[T, ...]]], int | None]


def ddmin(items: Sequence[T], first_reproducing: FirstReproducing[T]) -> tuple[T, ...]:
    """Return a subset of ``items`` that still reproduces, with none to spare.

    ``items`` itself is assumed to reproduce, and its elements must be distinct
    (shrink indices when they are not). The result is 1-minimal: removing any
    one element of it loses the failure, as far as the test can tell.
    """
    current = tuple(items)
    chunks = 2
    while len(current) >= 2:
        parts = split(current, chunks)
        # With two chunks each complement is the other chunk, already a part.
        complements = [without(current, part) for part in parts] if chunks > 2 else []
        candidates = [*parts, *complements]

        index = first_reproducing(candidates)
        if index is None:
            if chunks >= len(current):
                break
            chunks = min(len(current), chunks * 2)
            continue
        current = candidates[index]
        chunks = 2 if index < len(parts) else max(chunks - 1, 2)
    return current


def split(items: tuple[T, ...], chunks: int) -> list[tuple[T, ...]]:
    """Cut ``items`` into ``chunks`` runs whose sizes differ by one at most."""
    size, extra = divmod(len(items), chunks)
    parts = []
    start = 0
    for index in range(chunks):
        end = start + size + (1 if index < extra else 0)
        parts.append(items[start:end])
        start = end
    return parts


def without(items: tuple[T, ...], part: tuple[T, ...]) -> tuple[T, ...]:
    dropped = set(part)
    return tuple(item for item in items if item not in dropped)
