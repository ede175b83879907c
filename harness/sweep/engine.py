"""Running damaged copies: one process each, forked where the copy's damage starts.

:meth:`CaseRunner.run` unpickles the undamaged file through a
:class:`~harness.sweep.reader.ForkingReader`, once per driver process, so that
every case process starts with the prefix it shares with the undamaged file
already parsed. Copies whose
damage the reader never reached (a file that joblib does not read to its end)
run from the first byte, as undamaged calibration cases do.
"""

from __future__ import annotations

import os
import pickle
import signal
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, BinaryIO, cast

from harness.cleanup import die_with_parent
from harness.errors import HarnessError
from harness.sweep.damage import Damage
from harness.sweep.loaders import CaseLoader, CaseProcess
from harness.sweep.processes import EXIT_NO_VERDICT, CasePool, CaseRun
from harness.sweep.reader import ForkingReader
from harness.sweep.timeouts import Timeouts
from harness.sweep.verdict import Outcome, error_text

# The result a driver process sends back for each copy: outcome, duration, phases.
_Result = tuple[Outcome, float, dict[str, float]]

# Copies below this count run from this process: a driver process costs a
# parse of the whole file, which a handful of cases does not pay back.
_SPLIT_AT_LEAST = 64


class CaseRunner:
    """Runs damaged copies of ``data`` with one loader, ``workers`` at a time."""

    def __init__(self, data: bytes, loader: CaseLoader, *, workers: int) -> None:
        self._data = data
        self._loader = loader
        self._workers = workers
        # Set in a case process only, right after the fork.
        self._case: CaseProcess | None = None

    def run(self, damages: Sequence[Damage], timeouts: Timeouts) -> list[CaseRun]:
        """Return the run of every copy in ``damages``, in the order given.

        With several workers and many copies, the copies are split between
        driver processes that each parse the file and fork their own cases.
        A fork of a process with scikit-learn imported took about 8 ms on a
        2-core virtual machine, so one process forking every case could not
        start more than about 120 cases a second.
        """
        if self._workers > 1 and len(damages) >= _SPLIT_AT_LEAST:
            return self._run_in_drivers(damages, timeouts)
        return self._run_here(damages, timeouts)

    def _run_here(self, damages: Sequence[Damage], timeouts: Timeouts) -> list[CaseRun]:
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

    def _run_in_drivers(
        self, damages: Sequence[Damage], timeouts: Timeouts
    ) -> list[CaseRun]:
        groups = [
            list(range(first, len(damages), self._workers))
            for first in range(self._workers)
        ]
        drivers: list[tuple[int, int]] = []
        reaped: set[int] = set()
        runs: dict[int, CaseRun] = {}
        try:
            for indices in groups:
                drivers.append(self._fork_driver(damages, indices, timeouts))
            for (pid, fd), indices in zip(drivers, groups, strict=True):
                results = _read_results(fd, pid, reaped)
                for index, (outcome, duration, phases) in zip(
                    indices, results, strict=True
                ):
                    runs[index] = CaseRun(damages[index], outcome, duration, phases)
        finally:
            for pid, fd in drivers:
                os.close(fd)
                if pid not in reaped:
                    _kill_driver(pid)
        return [runs[index] for index in range(len(damages))]

    def _fork_driver(
        self, damages: Sequence[Damage], indices: list[int], timeouts: Timeouts
    ) -> tuple[int, int]:
        """Fork a driver process that runs the copies at ``indices``."""
        read_fd, write_fd = os.pipe()
        sweep_process = os.getpid()
        pid = os.fork()
        if pid != 0:
            os.close(write_fd)
            return pid, read_fd

        # The driver process. Its own process group lets the sweep process
        # kill it together with its cases, and Ctrl-C is left to the sweep.
        # A sweep process killed with SIGKILL takes the driver with it.
        code = EXIT_NO_VERDICT
        try:
            die_with_parent(sweep_process)
            os.close(read_fd)
            os.setpgid(0, 0)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            # Two cases at a time, so the driver forks one while the other runs.
            runner = CaseRunner(self._data, self._loader, workers=2)
            runs = runner._run_here([damages[i] for i in indices], timeouts)
            results = [(run.outcome, run.duration, run.phases) for run in runs]
            _write_all(write_fd, pickle.dumps(results))
            code = 0
        finally:
            os._exit(code)

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


def _read_results(fd: int, pid: int, reaped: set[int]) -> list[_Result]:
    """Read a driver's results until it closes its pipe, then reap it."""
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    reaped.add(pid)
    if os.waitstatus_to_exitcode(status) != 0 or not chunks:
        raise HarnessError(
            f"a sweep driver process (pid {pid}) ended with status "
            f"{os.waitstatus_to_exitcode(status)} before it sent its results"
        )
    return cast(list[_Result], pickle.loads(b"".join(chunks)))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.close(fd)


def _kill_driver(pid: int) -> None:
    """Kill a driver that was not reaped, with its cases, and reap it."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


def _in_order(runs: Iterable[CaseRun], damages: Sequence[Damage]) -> list[CaseRun]:
    position = {id(damage): index for index, damage in enumerate(damages)}
    return sorted(runs, key=lambda run: position[id(run.damage)])
