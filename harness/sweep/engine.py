"""Running damaged copies: one process each, forked where the copy's damage starts.

:meth:`CaseRunner.run` unpickles the undamaged file once through a
:class:`~harness.sweep.reader.ForkingReader`, so that every case process starts
with the prefix it shares with the undamaged file already parsed. Copies whose
damage the reader never reached (a file that joblib does not read to its end)
run from the first byte, as undamaged calibration cases do.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, BinaryIO, cast

from harness.errors import HarnessError
from harness.sweep.damage import Damage
from harness.sweep.loaders import CaseLoader, CaseProcess
from harness.sweep.processes import EXIT_NO_VERDICT, CasePool, CaseRun
from harness.sweep.reader import ForkingReader
from harness.sweep.timeouts import Timeouts
from harness.sweep.verdict import Outcome, error_text


class CaseRunner:
    """Runs damaged copies of ``data`` with one loader, ``workers`` at a time."""

    def __init__(self, data: bytes, loader: CaseLoader, *, workers: int) -> None:
        self._data = data
        self._loader = loader
        self._workers = workers
        # Set in a case process only, right after the fork.
        self._case: CaseProcess | None = None

    def run(self, damages: Sequence[Damage], timeouts: Timeouts) -> list[CaseRun]:
        """Return the run of every copy in ``damages``, in the order given."""
        pool = CasePool(self._loader, workers=self._workers, timeouts=timeouts)
        try:
            reader = ForkingReader(
                self._data, damages, lambda damage: self._fork(pool, damage)
            )
            self._drive(reader)
            for damage in reader.pending:
                self._fork_from_start(pool, damage)
            pool.drain()
        finally:
            pool.close()
        return _in_order(pool.runs, damages)

    def run_from_start(
        self, damages: Sequence[Damage], timeouts: Timeouts
    ) -> list[CaseRun]:
        """Return the runs of copies that each unpickle from the first byte."""
        pool = CasePool(self._loader, workers=self._workers, timeouts=timeouts)
        try:
            for damage in damages:
                self._fork_from_start(pool, damage)
            pool.drain()
        finally:
            pool.close()
        return _in_order(pool.runs, damages)

    def _fork(self, pool: CasePool, damage: Damage) -> bytes | None:
        """Fork a case process for ``damage``; return its bytes there, None here."""
        channel = pool.fork(damage)
        if channel is None:
            return None
        case = CaseProcess(damage, damage.apply(self._data), channel)
        self._case = case
        try:
            stopped = self._loader.admit(case)
        except BaseException as err:
            stopped = self._loader.finish(case, None, err)
        if stopped is not None:
            channel.finish(stopped)
        return case.data

    def _fork_from_start(self, pool: CasePool, damage: Damage) -> None:
        data = self._fork(pool, damage)
        if data is not None:
            self._drive(ForkingReader(data, (), lambda _: None))

    def _drive(self, reader: ForkingReader) -> None:
        """Load through ``reader``; in a case process, finish the case and exit.

        In the sweep process this returns once the undamaged file is loaded.
        A case process never returns from here: it sends its verdict and ends,
        and if it cannot even send one, it exits with EXIT_NO_VERDICT.
        """
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = self._load(reader)
            if self._case is not None:
                self._case.channel.finish(self._loader.finish(self._case, *model))
        except BaseException as err:
            if self._case is None:
                raise
            # Only an exception the loader's own code lets through gets here,
            # such as SystemExit from the serving load, which ends a service.
            escaped = f"{error_text(err)} escaped the loader and ended the process"
            self._case.channel.finish(Outcome("crash", escaped))
        finally:
            if self._case is not None:
                os._exit(EXIT_NO_VERDICT)

    def _load(self, reader: ForkingReader) -> tuple[Any, BaseException | None]:
        # joblib needs only read, readinto, readline, seek and tell of a stream.
        stream = cast(BinaryIO, reader)
        try:
            return self._loader.load(stream), None
        except BaseException as err:
            if self._case is not None:
                return None, err
            if not isinstance(err, Exception):
                raise
            raise HarnessError(
                "the undamaged file failed to load in the sweep process: "
                f"{error_text(err)}"
            ) from err


def _in_order(runs: Iterable[CaseRun], damages: Sequence[Damage]) -> list[CaseRun]:
    position = {id(damage): index for index, damage in enumerate(damages)}
    return sorted(runs, key=lambda run: position[id(run.damage)])
