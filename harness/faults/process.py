"""Faults on the target's process: kill, restart, pause.

Each returns a :class:`~harness.timeline.FaultEvent` with ``downtime`` set, whose
``t_start``/``t_end`` span the time the harness made the target unavailable.
"""

from __future__ import annotations

import logging
import time

from harness.errors import FaultError, TargetNotReady
from harness.targets.base import Target
from harness.timeline import FaultEvent, now

logger = logging.getLogger(__name__)


def kill(target: Target) -> FaultEvent:
    """Kill the target with SIGKILL and leave it down.

    The event ends when the process is gone. The restart that follows records
    its own downtime.
    """
    t_start = now()
    target.kill()
    return FaultEvent(
        kind="kill",
        t_start=t_start,
        t_end=now(),
        params={"signal": "SIGKILL", "exit_code": target.exit_code},
        note=f"{target.kind} target killed with SIGKILL",
        downtime=True,
    )


def restart(target: Target) -> FaultEvent:
    """Restart the target and wait until ``/health`` responds again.

    ``params["seconds_until_ready"]`` is the time from the restart request until
    the target responded. A target that does not respond within its start-up
    timeout is recorded (``ready`` false, with the error) rather than raised, so
    that the checks report it.
    """
    t_start = now()
    error = None
    try:
        target.restart()
    except TargetNotReady as err:
        error = str(err)
        # The event records it for the checks; it is a finding, not a harness fault.
        logger.info(
            "the %s target did not respond after a restart: %s", target.kind, err
        )
    ready = error is None and target.health() is not None
    t_end = now()

    params: dict[str, object] = {
        "ready": ready,
        "seconds_until_ready": round(t_end - t_start, 3) if ready else None,
        "restart_count": target.restart_count,
    }
    if error is not None:
        params["error"] = error
    note = (
        f"{target.kind} target restarted; it responded after {t_end - t_start:.2f} s"
        if ready
        else f"{target.kind} target restarted but did not respond again"
    )
    return FaultEvent(
        kind="restart",
        t_start=t_start,
        t_end=t_end,
        params=params,
        note=note,
        downtime=True,
    )


def pause(target: Target, seconds: float) -> FaultEvent:
    """Freeze the target for ``seconds``, then resume it, also after an interrupt."""
    if seconds < 0:
        raise FaultError(f"invalid pause of {seconds} s; expected 0 or more")
    t_start = now()
    target.pause()
    try:
        time.sleep(seconds)
    finally:
        target.unpause()
    t_end = now()
    return FaultEvent(
        kind="pause",
        t_start=t_start,
        t_end=t_end,
        params={"seconds": seconds, "paused_for": round(t_end - t_start, 3)},
        note=f"{target.kind} target frozen for {t_end - t_start:.2f} s",
        downtime=True,
    )
