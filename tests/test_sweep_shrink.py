"""Delta debugging over flipped bits, with predicates and with real damaged copies."""

from __future__ import annotations

from collections.abc import Sequence

from harness.sweep.damage import Flip
from harness.sweep.shrink import shrink_flips

FLIPS = tuple((offset, offset % 8) for offset in range(0, 160, 10))


def needs(required: set[Flip], calls: list[int]):
    """Return a batch test that reproduces when every required flip is present."""

    def reproduces(candidates: Sequence[tuple[Flip, ...]]) -> list[bool]:
        calls.append(len(candidates))
        return [required <= set(candidate) for candidate in candidates]

    return reproduces


def test_shrinks_to_required_flips() -> None:
    calls: list[int] = []
    required = {FLIPS[3], FLIPS[11]}

    result = shrink_flips(FLIPS, needs(required, calls))

    assert set(result) == required
    assert calls


def test_shrinks_to_one_flip() -> None:
    calls: list[int] = []

    result = shrink_flips(FLIPS, needs({FLIPS[7]}, calls))

    assert result == (FLIPS[7],)


def test_result_is_one_minimal() -> None:
    def reproduces(candidates: Sequence[tuple[Flip, ...]]) -> list[bool]:
        # Any three of the first eight flips reproduce.
        return [len(set(c) & set(FLIPS[:8])) >= 3 for c in candidates]

    result = shrink_flips(FLIPS, reproduces)

    assert len(result) == 3
    for flip in result:
        smaller = tuple(f for f in result if f != flip)
        assert reproduces([smaller]) == [False]


def test_single_flip_is_kept() -> None:
    calls: list[int] = []

    result = shrink_flips(FLIPS[:1], needs({FLIPS[0]}, calls))

    assert result == FLIPS[:1]
    assert calls == []
