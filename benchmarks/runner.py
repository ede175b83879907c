"""The benchmark run: every section in order, then the page."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ParamSpec

from benchmarks.figures import Section
from benchmarks.latency import measure_latency
from benchmarks.machine import describe_machine, library_versions
from benchmarks.memory import memory_section, snapshot
from benchmarks.page import RunInfo, render_page
from benchmarks.probe_rate import measure_probe
from benchmarks.processes import ProcessMemory
from benchmarks.reload import measure_reloads
from benchmarks.service import LiveService
from benchmarks.suite import measure_suite
from benchmarks.sweep import measure_sweep
from harness.errors import HarnessError
from harness.models import builtin_model_set
from harness.run import cache_dir

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"

EXIT_INTERRUPTED = 130

logger = logging.getLogger(__name__)

Arguments = ParamSpec("Arguments")


@dataclass(frozen=True)
class Settings:
    """How much each section measures; times are seconds.

    ``truncations`` is the number of truncation offsets the sweep spreads over
    the file, ``flips`` its number of single-bit flips.
    """

    quick: bool
    probe_seconds: float
    quiet_seconds: float
    fault_seconds: float
    publishes: int
    baseline_cases: int
    truncations: int
    flips: int
    seed: int = 20261204


FULL = Settings(
    quick=False,
    probe_seconds=10.0,
    quiet_seconds=15.0,
    fault_seconds=60.0,
    publishes=10,
    baseline_cases=6,
    truncations=2000,
    flips=400,
)
QUICK = Settings(
    quick=True,
    probe_seconds=3.0,
    quiet_seconds=3.0,
    fault_seconds=8.0,
    publishes=4,
    baseline_cases=2,
    truncations=300,
    flips=60,
)

SERVICE_SECTIONS = {
    2: "Probe sample rate",
    3: "Predict latency without and during faults",
    4: "Publish to healthy",
    5: "Service memory",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Progress of the run on stderr; the harness's own steps only when they
    # are warnings.
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("benchmarks").setLevel(logging.INFO)
    # SIGTERM takes the path of Ctrl-C, so that everything the run started is
    # removed before it exits.
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    started = time.perf_counter()
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = describe_machine()
    scratch = Path(tempfile.mkdtemp(prefix="model-chaos-bench-"))
    try:
        sections = run_sections(QUICK if args.quick else FULL, scratch)
    except KeyboardInterrupt:
        print("benchmarks: interrupted; no page was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    info = RunInfo(
        command=command_line(),
        started_at=started_at,
        seconds=time.perf_counter() - started,
        quick=args.quick,
        machine=machine,
        versions=library_versions(),
        load_at_end=os.getloadavg(),
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render_page(info, sections), encoding="utf-8")
    logger.info("wrote %s in %.0f s", args.output, info.seconds)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="Measure the harness and the reference service on this "
        "machine and write a Markdown page with the figures.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller counts, shorter windows and only `-k baseline` of the suite",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        metavar="PATH",
        help="file to write the page to (default: docs/benchmarks.md in the "
        "repository)",
    )
    return parser


def command_line() -> str:
    """Return the command that started this run, as it could be typed again."""
    executable = Path(sys.executable)
    try:
        shown = str(executable.relative_to(Path.cwd()))
    except ValueError:
        shown = str(executable)
    return shlex.join([shown, *sys.argv])


def run_sections(settings: Settings, scratch: Path) -> list[Section]:
    """Run every section in order; a section that fails is reported, not raised."""
    sections = [
        guarded(
            1, "Default suite wall time", measure_suite, scratch, quick=settings.quick
        )
    ]
    sections += _service_sections(settings, scratch)
    sections.append(
        guarded(
            6,
            "Damage sweep throughput",
            measure_sweep,
            scratch,
            truncations=settings.truncations,
            flips=settings.flips,
            baseline_cases=settings.baseline_cases,
            seed=settings.seed,
        )
    )
    return sorted(sections, key=lambda section: section.number)


def guarded(
    number: int,
    title: str,
    measure: Callable[Arguments, Section],
    *args: Arguments.args,
    **kwargs: Arguments.kwargs,
) -> Section:
    """Run one section; an exception becomes the section's error, with its reason."""
    logger.info("section %d: %s", number, title)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    try:
        section = measure(*args, **kwargs)
    except Exception as err:
        logger.exception("section %d (%s) failed", number, title)
        section = Section(number, title, error=f"{type(err).__name__}: {err}")
    section.seconds = time.perf_counter() - started
    section.load_at_start = load
    return section


def _service_sections(settings: Settings, scratch: Path) -> list[Section]:
    """Run sections 2 to 5 against one live service, started here."""
    try:
        model_set = builtin_model_set(cache_dir() / "models")
        service = LiveService(model_set, scratch)
    except (HarnessError, OSError) as err:
        logger.exception("the reference service could not be set up")
        return _not_run(f"the reference service could not be set up: {err}")

    try:
        try:
            service.start()
        except HarnessError as err:
            logger.error("the reference service did not start: %s", err)
            return _not_run(f"the reference service did not start: {err}")
        logger.info("service ready in %.1f s", service.startup_seconds)

        at_start = snapshot(service)
        sections = [
            guarded(
                2, SERVICE_SECTIONS[2], measure_probe, service, settings.probe_seconds
            ),
            # Before the faults, so that reloads are timed on a quiet service.
            guarded(
                4, SERVICE_SECTIONS[4], measure_reloads, service, settings.publishes
            ),
            guarded(
                3,
                SERVICE_SECTIONS[3],
                measure_latency,
                service,
                quiet_seconds=settings.quiet_seconds,
                fault_seconds=settings.fault_seconds,
                seed=settings.seed,
            ),
        ]
        sections.append(guarded(5, SERVICE_SECTIONS[5], _memory, service, at_start))
        return sections
    finally:
        service.close()


def _not_run(reason: str) -> list[Section]:
    return [Section(n, title, error=reason) for n, title in SERVICE_SECTIONS.items()]


def _memory(service: LiveService, at_start: list[ProcessMemory]) -> Section:
    if not service.target.running:
        raise RuntimeError(
            f"the service exited with status {service.target.exit_code} during "
            "the measurements"
        )
    return memory_section(
        service, at_start, snapshot(service), "after the reload and fault sections"
    )
