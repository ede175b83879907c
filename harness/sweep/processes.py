"""The case processes: fork one per damaged copy, watch its phases, collect its verdict.

A case process reports through a pipe, one JSON object a line: ``{"phase":
...}`` when it starts a phase and ``{"verdict": ...}`` at the end, each with
the CPU seconds it has used so far. Each phase has a CPU-time limit, which the
process enforces on itself with ``ITIMER_PROF`` (SIGPROF ends it), and a
wall-clock limit, after which the sweep kills it with SIGKILL. A process that
dies or times out is judged by the loader's rules for the phase it was in, so
that a crash during the hardened loader's validation counts as a rejection.
"""

from __future__ import annotations

import faulthandler
import gc
import json
import os
import resource
import select
import signal
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

from harness.cleanup import die_with_parent
from harness.sweep.damage import Damage
from harness.sweep.timeouts import Timeouts
from harness.sweep.verdict import VERDICTS, Outcome

# A case process that outlives its phase's wall-clock limit by this many
# seconds ends itself with SIGALRM, so that a case blocked without using CPU
# cannot outlive a killed sweep.
WATCHDOG_GRACE = 5.0

# The signals a case process gets from its own CPU and wall-clock watchdogs.
_TIMEOUT_SIGNALS = frozenset({signal.SIGPROF, signal.SIGALRM})

# Address space a case process may add to what the sweep process maps, in
# bytes. A damaged array shape can ask for terabytes; past this limit the
# allocation raises MemoryError in the case instead of exhausting the machine.
MEMORY_HEADROOM = 4 * 2**30

# Exit status of a case process whose own code failed before it sent a verdict.
EXIT_NO_VERDICT = 70


class DeathRules(Protocol):
    """The verdicts a loader gives a case process that died or hung."""

    @property
    def phases(self) -> tuple[str, ...]: ...

    def on_crash(self, phase: str, signal_name: str) -> Outcome: ...

    def on_timeout(self, phase: str, limit: str) -> Outcome: ...


@dataclass
class CaseRun:
    """The end of one case process: its verdict, wall-clock and CPU time.

    ``phases`` maps each phase the process finished to the CPU seconds it
    used, ``duration`` is the wall-clock time from fork to exit.
    """

    damage: Damage
    outcome: Outcome
    duration: float
    phases: dict[str, float]


class CaseChannel:
    """The case process's end of its pipe to the sweep."""

    def __init__(self, fd: int, timeouts: Timeouts) -> None:
        self._fd = fd
        self._timeouts = timeouts

    def arm(self, phase: str) -> None:
        """Set the watchdogs that end this process when ``phase`` runs too long.

        SIGPROF comes once the process has used the phase's CPU time, and
        SIGALRM once the wall-clock limit and a grace period have passed.
        Both end the process, as their default action does.
        """
        signal.setitimer(signal.ITIMER_PROF, self._timeouts.of(phase))
        wall = self._timeouts.wall_of(phase) + WATCHDOG_GRACE
        signal.setitimer(signal.ITIMER_REAL, wall)

    def phase(self, name: str) -> None:
        """Tell the sweep that phase ``name`` starts, and arm its watchdogs."""
        self.arm(name)
        self._send({"phase": name, "cpu": time.process_time()})

    def finish(self, outcome: Outcome) -> NoReturn:
        """Send the verdict and end the process without running any cleanup."""
        self._send({**outcome.to_message(), "cpu": time.process_time()})
        os._exit(0)

    def _send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message).encode() + b"\n"
        # Lines stay below PIPE_BUF, so each write is one atomic piece.
        os.write(self._fd, line)


@dataclass
class _Running:
    """A case process as the sweep follows it.

    ``deadline`` is the wall-clock end of the current phase. ``cpu_marks``
    lists each phase with the CPU seconds the process had used when the phase
    started, which for a forked process count from zero.
    """

    pid: int
    damage: Damage
    started: float
    phase: str
    deadline: float
    cpu_marks: list[tuple[str, float]]
    buffer: bytearray = field(default_factory=bytearray)
    outcome: Outcome | None = None
    cpu_at_end: float | None = None


class CasePool:
    """Up to ``workers`` case processes at a time, forked from this process."""

    def __init__(self, rules: DeathRules, *, workers: int, timeouts: Timeouts) -> None:
        self._rules = rules
        self._workers = workers
        self._timeouts = timeouts
        self._running: dict[int, _Running] = {}
        self.runs: list[CaseRun] = []

    def fork(self, damage: Damage) -> CaseChannel | None:
        """Fork a case process for ``damage``, once a worker slot is free.

        Returns the channel in the case process and ``None`` in this one.
        """
        self._collect(block=False)
        while len(self._running) >= self._workers:
            self._collect(block=True)

        read_fd, write_fd = os.pipe()
        parent = os.getpid()
        with warnings.catch_warnings():
            # Python 3.12 and later warn when a process with threads forks. The
            # case process only unpickles and predicts, and takes no lock that
            # another thread of the sweep process may hold.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()

        if pid == 0:
            die_with_parent(parent)
            os.close(read_fd)
            for other in self._running:
                os.close(other)
            self._running.clear()
            _enter_case_process()
            channel = CaseChannel(write_fd, self._timeouts)
            channel.arm(self._rules.phases[0])
            return channel

        os.close(write_fd)
        started = time.monotonic()
        first = self._rules.phases[0]
        self._running[read_fd] = _Running(
            pid=pid,
            damage=damage,
            started=started,
            phase=first,
            deadline=started + self._timeouts.wall_of(first),
            cpu_marks=[(first, 0.0)],
        )
        return None

    def drain(self) -> None:
        """Wait until every case process has ended and its verdict is collected."""
        while self._running:
            self._collect(block=True)

    def close(self) -> None:
        """Kill and reap every case process still running."""
        for fd, running in list(self._running.items()):
            _kill(running.pid)
            os.close(fd)
        self._running.clear()

    def _collect(self, *, block: bool) -> None:
        if not self._running:
            return
        wait = 0.0
        if block:
            earliest = min(running.deadline for running in self._running.values())
            wait = max(0.0, earliest - time.monotonic())
        ready, _, _ = select.select(list(self._running), [], [], wait)
        for fd in ready:
            self._read(fd)

        now = time.monotonic()
        for fd, running in list(self._running.items()):
            if running.deadline <= now:
                _kill(running.pid)
                self._drain_pipe(fd, running)
                seconds = self._timeouts.wall_of(running.phase)
                outcome = self._rules.on_timeout(
                    running.phase, f"{seconds:.3g} s of wall-clock time"
                )
                self._finish(fd, running, outcome)

    def _read(self, fd: int) -> None:
        running = self._running[fd]
        chunk = os.read(fd, 65536)
        if chunk:
            self._take_lines(running, chunk)
            return
        _, status = os.waitpid(running.pid, 0)
        self._finish(fd, running, self._judge_exit(running, status))

    def _drain_pipe(self, fd: int, running: _Running) -> None:
        # The process is dead, so the pipe contains all it wrote and then EOF.
        while chunk := os.read(fd, 65536):
            self._take_lines(running, chunk)

    def _take_lines(self, running: _Running, chunk: bytes) -> None:
        running.buffer += chunk
        *lines, rest = running.buffer.split(b"\n")
        running.buffer = bytearray(rest)
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                # Only the channel writes to this pipe; a line that is not
                # JSON came from code in the damaged pickle and is no verdict.
                continue
            if not isinstance(message, dict):
                continue
            cpu = float(message.get("cpu", 0.0))
            if "phase" in message:
                running.phase = str(message["phase"])
                running.cpu_marks.append((running.phase, cpu))
                wall = self._timeouts.wall_of(running.phase)
                running.deadline = time.monotonic() + wall
            elif message.get("verdict") in VERDICTS:
                running.outcome = Outcome.from_message(message)
                running.cpu_at_end = cpu

    def _judge_exit(self, running: _Running, status: int) -> Outcome:
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            if number in _TIMEOUT_SIGNALS:
                # One of the case's own watchdogs ended it.
                limit = (
                    f"{self._timeouts.of(running.phase):.3g} s of CPU time"
                    if number == signal.SIGPROF
                    else f"{self._timeouts.wall_of(running.phase):.3g} s"
                )
                return self._rules.on_timeout(running.phase, limit)
            return self._rules.on_crash(running.phase, signal_name(number))
        if running.outcome is not None:
            return running.outcome
        code = os.waitstatus_to_exitcode(status)
        return Outcome(
            "crash",
            f"the case process exited with status {code} before sending a verdict",
        )

    def _finish(self, fd: int, running: _Running, outcome: Outcome) -> None:
        os.close(fd)
        del self._running[fd]
        duration = time.monotonic() - running.started
        self.runs.append(
            CaseRun(running.damage, outcome, duration, _phase_cpu(running))
        )


def _phase_cpu(running: _Running) -> dict[str, float]:
    """Return the CPU seconds of each phase the process finished."""
    marks = running.cpu_marks
    ends = [cpu for _, cpu in marks[1:]]
    if running.cpu_at_end is not None:
        ends.append(running.cpu_at_end)
    phases: dict[str, float] = {}
    for (name, start), end in zip(marks, ends, strict=False):
        phases[name] = phases.get(name, 0.0) + end - start
    return phases


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


def _enter_case_process() -> None:
    """Set up a freshly forked case process.

    Ctrl-C is left to the sweep process, which kills its cases. SIGALRM and
    SIGPROF get their default action (end the process) even where a test
    plugin or a profiler handles them.
    The case writes nothing to the terminal: its errors reach the sweep as
    verdicts. Warnings are ignored as a service with default filters only
    prints them, and the sweep's own filters (pytest's ``error``) must not
    turn them into failures.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.signal(signal.SIGPROF, signal.SIG_DFL)
    if faulthandler.is_enabled():
        faulthandler.disable()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    warnings.resetwarnings()
    warnings.simplefilter("ignore")
    # The objects inherited from the sweep process stay out of this process's
    # garbage collections, which then only scan what the case allocates: a
    # load of a 300-tree forest takes about half the time (measured on a
    # 2-core machine).
    gc.freeze()
    _limit_memory()


def _limit_memory() -> None:
    try:
        with open("/proc/self/statm") as statm:
            mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = mapped + MEMORY_HEADROOM
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
