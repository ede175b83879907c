"""Delta debugging with a one-candidate-at-a-time test, as fault sequences use it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from harness.ddmin import ddmin, split, without

ITEMS = tuple(range(12))


def first_of(test: Callable[[tuple[int, ...]], bool], tried: list[tuple[int, ...]]):
    """Adapt a test of one candidate to ddmin, stopping at the first that fails."""

    def first(candidates: Sequence[tuple[int, ...]]) -> int | None:
        for index, candidate in enumerate(candidates):
            tried.append(candidate)
            if test(candidate):
                return index
        return None

    return first


def test_shrinks_to_the_needed_items_in_order() -> None:
    tried: list[tuple[int, ...]] = []

    result = ddmin(ITEMS, first_of(lambda c: {2, 9} <= set(c), tried))

    assert result == (2, 9)
    assert all(len(candidate) < len(ITEMS) for candidate in tried)


def test_result_is_one_minimal() -> None:
    def fails(candidate: tuple[int, ...]) -> bool:
        # Any three of the even items fail.
        return len([item for item in candidate if item % 2 == 0]) >= 3

    result = ddmin(ITEMS, first_of(fails, []))

    assert len(result) == 3
    for item in result:
        assert not fails(without(result, (item,)))


def test_one_item_is_not_tested() -> None:
    tried: list[tuple[int, ...]] = []

    assert ddmin((5,), first_of(lambda c: True, tried)) == (5,)
    assert tried == []


def test_nothing_smaller_fails() -> None:
    result = ddmin(ITEMS, first_of(lambda c: len(c) == len(ITEMS), []))

    assert result == ITEMS


def test_split_sizes_differ_by_one_at_most() -> None:
    parts = split(tuple(range(10)), 4)

    assert [len(part) for part in parts] == [3, 3, 2, 2]
    assert sum(parts, ()) == tuple(range(10))
