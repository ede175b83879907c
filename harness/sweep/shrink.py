"""Shrinking a dangerous copy to the fewest bit flips that still do the same harm.

This is delta debugging (the ``ddmin`` algorithm) over the copy's flips.
Each round splits the flips into chunks and tests every chunk and every
complement at once, as one batch of damaged copies. The copies share the
prefix of the file up to their first flip, so a round costs about one load. The result
is 1-minimal: dropping any single flip loses the verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from harness.ddmin import ddmin
from harness.sweep.damage import Flip
from harness.sweep.engine import CaseRunner
from harness.sweep.result import CaseResult
from harness.sweep.timeouts import Timeouts

# Tests a batch of candidate flip sets; returns, for each, whether it still
# gives the verdict being shrunk.
BatchTest = Callable[[Sequence[tuple[Flip, ...]]], list[bool]]


def shrink_flips(flips: Sequence[Flip], reproduces: BatchTest) -> tuple[Flip, ...]:
    """Return the smallest subset of ``flips`` found that still ``reproduces``.

    ``flips`` itself is assumed to reproduce; a single flip is returned as it is.
    """

    def first_reproducing(candidates: Sequence[tuple[Flip, ...]]) -> int | None:
        verdicts = reproduces(candidates)
        return next((i for i, hit in enumerate(verdicts) if hit), None)

    return ddmin(sorted(flips), first_reproducing)


def shrink_case(
    runner: CaseRunner, limits: Timeouts, case: CaseResult
) -> tuple[Flip, ...]:
    """Return the fewest of ``case``'s flips that give the same verdict and signal."""
    target = case.outcome

    def reproduces(candidates: Sequence[tuple[Flip, ...]]) -> list[bool]:
        damages = [case.damage.with_flips(flips) for flips in candidates]
        return [
            run.outcome.verdict == target.verdict
            and run.outcome.signal == target.signal
            for run in runner.run(damages, limits)
        ]

    return shrink_flips(case.damage.flips, reproduces)
