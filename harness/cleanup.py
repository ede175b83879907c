"""Leftovers of runs that could not clean up after themselves.

Every service process group and scratch directory the harness creates is
recorded as a small JSON file under ``<cache>/live/`` and removed again when it
is cleaned up. A run killed with SIGKILL cannot do that, so ``model-chaos clean``
reads those files and removes what they name, together with any container
labelled ``model-chaos.run``.
"""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import os
import secrets
import shutil
import signal
from pathlib import Path
from types import FrameType

logger = logging.getLogger(__name__)

# The run that entries recorded by this process belong to, so that
# ``model-chaos clean --run-id`` removes only that run's leftovers.
_run_id: str | None = None


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an interrupt so that every cleanup on the way runs."""


def raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """Signal handler that turns SIGTERM into :class:`Terminated`."""
    raise Terminated(f"received signal {signum}")


def die_with_parent(parent: int) -> None:
    """Have Linux kill this forked process with SIGKILL when ``parent`` exits.

    A parent killed with SIGKILL cannot stop its children itself. ``parent`` is
    the pid this process was forked from: when it has already gone, this
    process exits at once.
    """
    if _libc().prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0):
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}")
    if os.getppid() != parent:
        os._exit(1)


# From <linux/prctl.h>.
_PR_SET_PDEATHSIG = 1


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def set_run(run_id: str | None) -> None:
    """Record ``run_id`` in every entry this process tracks from now on."""
    global _run_id
    _run_id = run_id


def current_run() -> str | None:
    """Return the run id set with :func:`set_run`, if any."""
    return _run_id


def _live_dir() -> Path:
    from harness.run import cache_dir

    return cache_dir() / "live"


def track(kind: str, **info: object) -> Path:
    """Record a process group or directory the harness must remove later.

    A process group's entry also records when its leader started, so that
    :func:`clean` never kills a later process that was given the same pid.
    """
    if kind == "process":
        info["started"] = start_time(int(str(info["pgid"])))
    directory = _live_dir()
    directory.mkdir(parents=True, exist_ok=True)
    entry = directory / f"{kind}-{os.getpid()}-{secrets.token_hex(4)}.json"
    record = {"kind": kind, "owner": os.getpid(), "run_id": _run_id, **info}
    entry.write_text(json.dumps(record))
    return entry


def untrack(entry: Path) -> None:
    entry.unlink(missing_ok=True)


def clean(run_id: str | None = None) -> list[str]:
    """Remove leftovers of runs whose harness process is gone; return what it did.

    Entries whose owner process still runs belong to a live run and are kept.
    """
    done = []
    directory = _live_dir()
    for entry in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        info = json.loads(entry.read_text())
        if _alive(int(info["owner"])):
            continue
        if run_id is not None and info.get("run_id") != run_id:
            continue
        done.append(_remove(info))
        untrack(entry)
    done += _clean_containers(run_id)
    return done


def start_time(pid: int) -> int | None:
    """Return when process ``pid`` started, in clock ticks after boot, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 of stat(5); the command name in brackets may contain spaces.
    return int(stat.rsplit(")", 1)[1].split()[19])


def _remove(info: dict[str, object]) -> str:
    if info["kind"] == "process":
        pgid = int(str(info["pgid"]))
        started = info.get("started")
        if started is not None and start_time(pgid) != started:
            return f"service process group {pgid} was already gone"
        if _is_service(pgid):
            os.killpg(pgid, signal.SIGKILL)
            return f"killed service process group {pgid}"
        return f"service process group {pgid} was already gone"

    path = Path(str(info["path"]))
    shutil.rmtree(path, ignore_errors=True)
    return f"removed {path}"


def _is_service(pid: int) -> bool:
    # A recycled pid may now belong to an unrelated program; kill only ours.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"target_service" in cmdline


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_containers(run_id: str | None) -> list[str]:
    try:
        from harness.targets.docker import clean as clean_containers
    except ImportError:
        return []
    try:
        return [f"removed container {name}" for name in clean_containers(run_id)]
    except Exception as err:  # no engine here is not an error for `clean`
        logger.info("containers not cleaned: %s", err)
        return [f"containers not checked: {err}"]
