"""Process groups on Linux: their members, their memory, and stopping them.

Everything here reads /proc, so it works only on Linux.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.run import cache_dir

logger = logging.getLogger(__name__)

# Linux limits an AF_UNIX socket path to 107 bytes, and a multiprocessing fork
# server puts its socket at $TMPDIR/pymp-XXXXXXXX/listener-XXXXXXXX.
_SOCKET_PATH_MAX = 107
_FORKSERVER_SOCKET = "/pymp-12345678/listener-12345678"


@dataclass(frozen=True)
class ProcessMemory:
    """Resident memory of one process, in KiB.

    ``rss_kib`` is VmRSS from /proc/<pid>/status, which counts every resident
    page the process maps, shared or not. ``pss_kib`` is Pss from
    /proc/<pid>/smaps_rollup, which divides each shared page among the processes
    that map it, so that PSS values of forked processes add up without counting
    shared pages twice; ``None`` when the kernel does not provide it.
    """

    pid: int
    role: str
    rss_kib: int
    pss_kib: int | None


def tmpdir_env(directory: Path) -> dict[str, str]:
    """Return the environment that sends a child's temporary files to ``directory``.

    Returns an empty mapping when a fork server's socket path in ``directory``
    would be longer than Linux allows, because the child's fork server could
    not start there. The child then keeps the inherited ``TMPDIR``, and any
    files it leaves behind stay there.
    """
    if len(str(directory)) + len(_FORKSERVER_SOCKET) > _SOCKET_PATH_MAX:
        logger.warning(
            "%s is too long for a fork server's socket path; the child keeps "
            "the inherited TMPDIR",
            directory,
        )
        return {}
    return {"TMPDIR": str(directory)}


def group_members(pgid: int) -> list[int]:
    """Return the pids of the live processes in process group ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _read_stat(int(entry))
        # Fields after the command name: state, ppid, pgrp.
        if stat is not None and stat[0] != "Z" and int(stat[2]) == pgid:
            members.append(int(entry))
    return sorted(members)


def _read_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in brackets may contain spaces and brackets.
    return text.rsplit(")", 1)[1].split()


def process_memory(pid: int, leader: int) -> ProcessMemory | None:
    """Return the memory of ``pid``, or ``None`` when it exited meanwhile.

    ``leader`` is the pid of the service, which leads the process group.
    """
    stat = _read_stat(pid)
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    rss = _status_field(status, "VmRSS")
    if stat is None or rss is None:
        return None

    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        pss = _status_field(rollup, "Pss")
    except OSError:
        pss = None
    role = _role(cmdline, parent=int(stat[1]), leader=leader)
    return ProcessMemory(pid=pid, role=role, rss_kib=rss, pss_kib=pss)


def _status_field(text: str, name: str) -> int | None:
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return int(value.split()[0])
    return None


def _role(cmdline: bytes, *, parent: int, leader: int) -> str:
    """Name a process of the reference service's group from its command line.

    Validation processes are forked from the fork server and keep its command
    line, so their parent process distinguishes them from it.
    """
    text = cmdline.replace(b"\0", b" ").decode(errors="replace")
    if "-m target_service" in text:
        return "service"
    if "forkserver" in text:
        return "fork server" if parent == leader else "validation process"
    if "resource_tracker" in text:
        return "resource tracker"
    return text.strip()[:60] or "unknown"


def group_memory(pgid: int) -> list[ProcessMemory]:
    """Return the memory of every live process in process group ``pgid``."""
    members = (process_memory(pid, pgid) for pid in group_members(pgid))
    return [memory for memory in members if memory is not None]


def interrupt_group(process: subprocess.Popen[bytes], grace: float) -> list[int]:
    """Stop a child that leads its own process group as Ctrl-C would.

    Sends SIGINT to the group so that the child cleans up after itself, then
    SIGKILL to whatever is left after ``grace`` seconds. Returns the pids that
    were in the group when SIGINT was sent, so that leftovers they recorded
    can be removed.
    """
    members = group_members(process.pid)
    _signal_group(process.pid, signal.SIGINT)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        logger.warning(
            "pid %s still runs %.0f s after SIGINT; killing its process group",
            process.pid,
            grace,
        )
    # Workers of the group may outlive its leader.
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()
    return members


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def remove_leftovers(owners: list[int]) -> list[str]:
    """Remove the service process groups and directories that ``owners`` left.

    The harness records every service process group and scratch directory it
    creates under ``<cache>/live/`` and deletes the record once it has removed
    them, so a harness process killed with SIGKILL leaves records behind. Only
    records of ``owners`` are touched, and a group is killed only when its
    leader still runs ``target_service``, because a pid may have been reused.
    Returns one line per removed item.
    """
    live = cache_dir() / "live"
    removed: list[str] = []
    for entry in sorted(live.glob("*.json")) if live.is_dir() else []:
        try:
            info = json.loads(entry.read_text())
            owner = int(info["owner"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if owner not in owners:
            continue

        if info.get("kind") == "process" and _runs_service(int(info["pgid"])):
            _signal_group(int(info["pgid"]), signal.SIGKILL)
            removed.append(f"killed service process group {info['pgid']}")
        elif info.get("kind") == "directory":
            shutil.rmtree(str(info["path"]), ignore_errors=True)
            removed.append(f"removed {info['path']}")
        entry.unlink(missing_ok=True)
    return removed


def _runs_service(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"target_service" in cmdline
