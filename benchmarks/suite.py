"""Wall time of ``model-chaos run``: the default suite against the process target."""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.figures import Figure, Section, at_most, markdown_table
from benchmarks.processes import interrupt_group, remove_leftovers, tmpdir_env

logger = logging.getLogger(__name__)

TARGET_SECONDS = 60.0

# Seconds a suite run may take before it is stopped: a bound on a hung run,
# far above the several minutes a full serial run takes on 2 cores.
FULL_TIMEOUT = 3600.0
QUICK_TIMEOUT = 600.0

# Seconds model-chaos gets to clean up after SIGINT before it is killed.
INTERRUPT_GRACE = 60.0


@dataclass
class SuiteRun:
    """One ``model-chaos run``: its command, exit status, time and report summary."""

    label: str
    arguments: list[str]
    exit_code: int | None = None
    seconds: float = 0.0
    summary: dict[str, int] = field(default_factory=dict)
    scenario_seconds: dict[str, float] = field(default_factory=dict)
    startup_seconds: float = 0.0
    startups: int = 0
    error: str | None = None
    output_tail: str = ""


def measure_suite(scratch: Path, *, quick: bool) -> Section:
    """Time the default suite, serially and with two pytest-xdist workers."""
    section = Section(1, "Default suite wall time")
    selection = ["-k", "baseline"] if quick else []
    runs = [
        run_suite("serial", selection, scratch, quick=quick),
        run_suite("-n 2", [*selection, "-n", "2"], scratch, quick=quick),
    ]
    for run in runs:
        section.figures.append(_figure(run, runs[0], quick=quick))
    section.details.append(_details_table(runs))
    section.method += _method(quick)
    return section


def model_chaos_command() -> list[str]:
    """Return the ``model-chaos`` console script of the running environment."""
    script = Path(sys.executable).parent / "model-chaos"
    if not script.is_file():
        raise FileNotFoundError(
            f"{script} not found: install the project into this environment "
            "(pip install -e .) so that the model-chaos command exists"
        )
    return [str(script)]


def run_suite(
    label: str, arguments: list[str], scratch: Path, *, quick: bool
) -> SuiteRun:
    """Run ``model-chaos run`` with ``arguments`` and time it.

    The run gets its own report directory and ``TMPDIR`` inside ``scratch``,
    so that the files its scenarios leave behind (a service killed with SIGKILL
    leaves its fork server's directory) are removed with ``scratch``.
    """
    run = SuiteRun(label, arguments)
    work = Path(tempfile.mkdtemp(prefix="suite-", dir=scratch))
    (work / "tmp").mkdir()
    command = [
        *model_chaos_command(),
        "run",
        "--report-dir",
        str(work / "reports"),
        *arguments,
    ]
    env = {**os.environ, **tmpdir_env(work / "tmp")}
    timeout = QUICK_TIMEOUT if quick else FULL_TIMEOUT

    logger.info("running %s", shlex.join(command))
    with open(work / "output.log", "wb") as log:
        # A session of its own, so that on Ctrl-C or a timeout the run and
        # its xdist workers get one SIGINT and clean up their services.
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,
            start_new_session=True,
        )
        started = time.perf_counter()
        try:
            run.exit_code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            run.error = f"stopped after the {timeout:.0f} s timeout"
        finally:
            run.seconds = time.perf_counter() - started
            if process.poll() is None:
                _stop(process)

    run.output_tail = _tail(work / "output.log")
    _read_report(run, work / "reports" / "latest" / "report.json")
    return run


def _stop(process: subprocess.Popen[bytes]) -> None:
    members = interrupt_group(process, INTERRUPT_GRACE)
    for line in remove_leftovers(members):
        logger.warning("model-chaos run left this behind: %s", line)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _read_report(run: SuiteRun, path: Path) -> None:
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        if run.error is None:
            run.error = f"no report: {err}"
        return

    run.summary = {k: v for k, v in report["summary"].items() if isinstance(v, int)}
    for entry in report["scenarios"]:
        run.scenario_seconds[entry["name"]] = float(entry.get("duration") or 0.0)
        seconds, count = _startup_seconds(entry["timeline"]["events"])
        run.startup_seconds += seconds
        run.startups += count


def _startup_seconds(events: list[dict[str, Any]]) -> tuple[float, int]:
    """Return the time from each ``target_started`` to ready or not ready, summed."""
    total, count, started = 0.0, 0, None
    for event in events:
        if event["kind"] == "target_started":
            started = event["t"]
        elif event["kind"] in ("target_ready", "target_not_ready") and started:
            total += event["t"] - started
            count += 1
            started = None
    return total, count


def _figure(run: SuiteRun, serial: SuiteRun, *, quick: bool) -> Figure:
    # The target is for the whole suite, so a quick run's figure has none.
    scope = (
        f"`-k baseline` only, not comparable with the {TARGET_SECONDS:.0f} s "
        "target for the whole suite"
        if quick
        else "every scenario"
    )
    figure = Figure(
        f"wall time, {run.label}",
        None if run.error else run.seconds,
        "s",
        None if quick else at_most(TARGET_SECONDS),
        note=f"{scope}; {_outcome(run)}",
    )
    if run.error:
        figure.note += f"; {run.error}"
    elif figure.met is False:
        figure.miss_reason = _miss_reason(run, serial)
    return figure


def _outcome(run: SuiteRun) -> str:
    if not run.summary:
        return f"exit status {run.exit_code}"
    counts = ", ".join(
        f"{count} {name}"
        for name, count in run.summary.items()
        if name != "total" and count
    )
    return f"exit status {run.exit_code}: {counts or 'no scenario ran'}"


def _miss_reason(run: SuiteRun, serial: SuiteRun) -> str:
    slowest = sorted(run.scenario_seconds.items(), key=lambda kv: -kv[1])[:3]
    slow_text = ", ".join(f"{name} ({seconds:.0f} s)" for name, seconds in slowest)
    scenario_total = sum(run.scenario_seconds.values())
    reason = (
        f"each of the {len(run.scenario_seconds)} scenario runs starts its own "
        f"service, and the {run.startups} start-ups add up to "
        f"{run.startup_seconds:.0f} s of the {scenario_total:.0f} s that the "
        "scenarios took together (summed over workers). The rest went to the "
        "scenario bodies: faults, fixed observation windows and waits for "
        f"recovery. The slowest scenarios were {slow_text}"
    )
    if run is not serial and serial.seconds and not serial.error:
        speedup = serial.seconds / run.seconds
        reason += (
            f". Two workers ran {speedup:.2f} times as fast as one, because the "
            f"workers and the services they start share {os.cpu_count()} CPUs"
        )
    return reason


def _details_table(runs: list[SuiteRun]) -> str:
    rows = []
    for run in runs:
        command = ["model-chaos", "run", "--report-dir", "DIR", *run.arguments]
        rows.append(
            [
                f"`{shlex.join(command)}`",
                _outcome(run),
                f"{run.seconds:.1f} s",
                f"{sum(run.scenario_seconds.values()):.1f} s",
                f"{run.startup_seconds:.1f} s ({run.startups})",
            ]
        )
    header = [
        "command",
        "outcome",
        "wall time",
        "sum of scenario durations",
        "service start-ups (count)",
    ]
    table = markdown_table(header, rows)
    failed = [run for run in runs if run.error or run.exit_code not in (0, None)]
    for run in failed:
        table += (
            f"\n\nLast lines of the `{run.label}` run's output:\n\n"
            f"```\n{run.output_tail}\n```"
        )
    return table


def _method(quick: bool) -> list[str]:
    notes = [
        "`model-chaos run` (process target, hardened loader, the defaults) runs "
        "as a subprocess with a scratch `--report-dir` and `TMPDIR`. The wall "
        "time includes interpreter and pytest start-up, and the start of one "
        "service launcher per pytest process: each service is a fork of it.",
        "Scenario durations and service start-ups come from the run's "
        "`report.json`: a start-up is the time from `target_started` to "
        "`target_ready` (or `target_not_ready`) on each scenario's timeline.",
    ]
    if quick:
        notes.append(
            "Quick run: only `-k baseline` was measured, so these figures do not "
            "show the whole suite's time."
        )
    return notes
