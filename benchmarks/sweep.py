"""Throughput of the damage sweep, compared with a fresh interpreter per case."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.figures import (
    Figure,
    Section,
    at_least,
    format_value,
    markdown_table,
)
from benchmarks.processes import interrupt_group, remove_leftovers
from harness.faults import flip_bits, truncate
from harness.models import KnownModel, builtin_model_set
from harness.run import cache_dir

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent

MODEL = "global_model"

# Targets on 2 cores, in cases per second.
TARGET_TRUNCATE = 200.0
TARGET_BITFLIP = 40.0

# Seconds one sweep may run before it is stopped: a bound on a hung sweep.
SWEEP_TIMEOUT = 1800.0

# Seconds a fresh-interpreter case may take; a damaged forest can make
# predict loop forever, and such a case is killed and counted at this time.
BASELINE_TIMEOUT = 60.0

# A fresh-interpreter case imports scikit-learn's estimators, as a sweep's case
# process has them imported, then loads the damaged copy and predicts on the
# canary rows.
BASELINE_SCRIPT = """
import json, sys
import joblib, numpy, sklearn.ensemble
rows = numpy.asarray(json.loads(sys.argv[2]), dtype=numpy.float64)
model = joblib.load(sys.argv[1])
model.predict(rows)
"""


@dataclass(frozen=True)
class SweepRun:
    """The output of one sweep worker: timing, verdicts and peak memory."""

    kind: str
    seconds: float
    cases: int
    kind_seconds: float
    verdicts: dict[str, int]
    workers: int
    regressions: int
    peak_self_kib: int
    peak_children_kib: int
    case_seconds: dict[str, dict[str, float]]
    phase_cpu_limits: dict[str, float]
    undamaged_phase_cpu_medians: dict[str, float]
    fork_seconds: float

    @property
    def cases_per_second(self) -> float:
        return self.cases / self.seconds


@dataclass(frozen=True)
class BaselineCase:
    """One damaged copy loaded by a fresh ``python -c`` process."""

    damage: str
    seconds: float
    outcome: str


def measure_sweep(
    scratch: Path, *, truncations: int, flips: int, baseline_cases: int, seed: int
) -> Section:
    """Sweep the built-in global model by truncation and by bit flips."""
    section = Section(6, "Damage sweep throughput")
    model_set = builtin_model_set(cache_dir() / "models")
    known = model_set.get(MODEL, "v1")
    assert known.path is not None and known.size is not None
    work = Path(tempfile.mkdtemp(prefix="sweep-", dir=scratch))

    rows = model_set.canary_inputs[MODEL]
    baseline = run_baseline(known, rows, work, baseline_cases, seed)
    per_case = statistics.median(case.seconds for case in baseline)
    stride = max(1, math.ceil(known.size / truncations))
    canary_file = work / "canary.json"
    canary_file.write_text(json.dumps(rows))
    runs = [
        run_worker(known, canary_file, "truncate", stride=stride, flips=1, seed=seed),
        run_worker(
            known, canary_file, "bitflip", stride=stride, flips=flips, seed=seed
        ),
    ]

    section.figures.append(
        Figure(
            "fresh interpreter, median per case",
            per_case,
            "s",
            note=f"{len(baseline)} cases",
        )
    )
    for run, target in zip(runs, (TARGET_TRUNCATE, TARGET_BITFLIP), strict=True):
        section.figures += _run_figures(run, target, per_case)
    section.details += [_runs_table(runs), _baseline_table(baseline)]
    section.method += _method(known, stride, flips)
    return section


def run_baseline(
    known: KnownModel,
    rows: list[list[float]],
    work: Path,
    count: int,
    seed: int,
) -> list[BaselineCase]:
    """Load ``count`` damaged copies, each in a new interpreter, and time them.

    Half the copies are truncated at offsets spread over the file, the other
    half have one bit flipped at a seeded position.
    """
    assert known.path is not None and known.size is not None
    rng = random.Random(seed)
    cases = []
    logger.info("loading %d damaged copies in fresh interpreters", count)
    for index in range(count):
        copy = work / f"baseline-{index}.pkl"
        shutil.copyfile(known.path, copy)
        if index % 2 == 0:
            offset = known.size * (index + 1) // (count + 1)
            truncate(copy, offset)
            damage = f"truncated to {offset} bytes"
        else:
            event = flip_bits(copy, 1, rng)
            flip = event.params["flips"][0]
            damage = f"bit {flip['bit']} of byte {flip['offset']} flipped"
        cases.append(_run_baseline_case(copy, json.dumps(rows), damage))
    return cases


def _run_baseline_case(copy: Path, rows: str, damage: str) -> BaselineCase:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    started = time.perf_counter()
    try:
        # run() kills the child when the timeout passes or Ctrl-C arrives.
        completed = subprocess.run(
            [sys.executable, "-c", BASELINE_SCRIPT, str(copy), rows],
            capture_output=True,
            text=True,
            timeout=BASELINE_TIMEOUT,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        outcome = f"killed after {BASELINE_TIMEOUT:.0f} s"
    else:
        outcome = _describe_exit(completed)
    return BaselineCase(damage, time.perf_counter() - started, outcome)


def _describe_exit(completed: subprocess.CompletedProcess[str]) -> str:
    if completed.returncode == 0:
        return "predicted"
    if completed.returncode < 0:
        return f"killed by signal {-completed.returncode}"
    lines = completed.stderr.strip().splitlines()
    last = lines[-1] if lines else f"exit status {completed.returncode}"
    return last.split(":", 1)[0]


def run_worker(
    known: KnownModel,
    canary_file: Path,
    kind: str,
    *,
    stride: int,
    flips: int,
    seed: int,
) -> SweepRun:
    """Run one sweep in ``benchmarks.sweep_worker`` and return what it printed.

    The worker's files, its ``TMPDIR`` included, go next to ``canary_file``.
    """
    assert known.path is not None
    work = canary_file.parent
    command = [
        sys.executable,
        "-m",
        "benchmarks.sweep_worker",
        "--model-file",
        str(known.path),
        "--kind",
        kind,
        "--flips",
        str(flips),
        "--stride",
        str(stride),
        "--seed",
        str(seed),
        "--out-dir",
        str(work / f"sweep-{kind}"),
        "--canary-file",
        str(canary_file),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
        ),
        "TMPDIR": str(work),
    }
    output = work / f"sweep-{kind}.log"
    logger.info("sweeping %s with kind %s", known.path, kind)
    with open(output, "wb") as log:
        # A session of its own, so that its case processes can be stopped
        # together with it on Ctrl-C or a timeout.
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            cwd=work,
            start_new_session=True,
        )
        try:
            stdout, _ = process.communicate(timeout=SWEEP_TIMEOUT)
        finally:
            if process.poll() is None:
                members = interrupt_group(process, grace=10.0)
                for line in remove_leftovers(members):
                    logger.warning("the %s sweep left this behind: %s", kind, line)
    if process.returncode != 0:
        lines = output.read_text(errors="replace").strip().splitlines()
        raise RuntimeError(
            f"the {kind} sweep exited with status {process.returncode}: "
            f"{lines[-1] if lines else 'no output'}"
        )
    return _parse_run(stdout)


def _parse_run(stdout: bytes) -> SweepRun:
    report: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    if report.get("skipped"):
        raise RuntimeError(
            f"the {report['kind']} sweep was skipped: {report['skipped']}"
        )
    return SweepRun(
        kind=report["kind"],
        seconds=report["seconds"],
        cases=report["cases"],
        kind_seconds=report["kind_seconds"],
        verdicts=report["verdicts"],
        workers=report["workers"],
        regressions=report["regressions"],
        peak_self_kib=report["peak_self_kib"],
        peak_children_kib=report["peak_children_kib"],
        case_seconds=report["case_seconds"],
        phase_cpu_limits=report["phase_cpu_limits"],
        undamaged_phase_cpu_medians=report["undamaged_phase_cpu_medians"],
        fork_seconds=report["fork_seconds"],
    )


def _run_figures(run: SweepRun, target: float, per_case: float) -> list[Figure]:
    rate = Figure(
        f"{run.kind} sweep",
        run.cases_per_second,
        "cases/s",
        at_least(target),
        note=f"{run.cases} cases in {run.seconds:.1f} s, "
        f"{run.cases_per_second * per_case:.0f} times the fresh-interpreter rate",
    )
    if rate.met is False:
        rate.miss_reason = _miss_reason(run)
    return [
        rate,
        Figure(
            f"{run.kind} sweep, ratio to a fresh interpreter per case",
            run.cases_per_second * per_case,
            "x",
        ),
        Figure(
            f"{run.kind} sweep, peak RSS of the sweep process",
            run.peak_self_kib / 1024,
            "MiB",
        ),
        Figure(
            f"{run.kind} sweep, largest peak RSS of a case process",
            run.peak_children_kib / 1024,
            "MiB",
        ),
    ]


def _miss_reason(run: SweepRun) -> str:
    by_verdict = ", ".join(
        f"{verdict} {stats['median'] * 1000:.0f} ms ({_cases(int(stats['cases']))})"
        for verdict, stats in sorted(
            run.case_seconds.items(), key=lambda item: -item[1]["total"]
        )
    )
    reasons = [
        f"every case is a process forked from one of {run.workers} driver "
        "processes, and a fork of a process with scikit-learn imported, its exit "
        f"and reaping took {run.fork_seconds * 1000:.1f} ms (median of 50 in "
        "the sweep process of this run). The median time from fork to exit, by "
        f"verdict, was: {by_verdict}. The cases alone therefore ran at "
        f"{run.cases / run.kind_seconds:.0f} cases/s on {run.workers} workers"
    ]
    if "identical" in run.case_seconds:
        medians = _phases(run.undamaged_phase_cpu_medians, "ms")
        reasons.append(
            "A flip that leaves the file loadable costs a whole load from the "
            f"flipped byte on and a predict (median CPU time of the undamaged "
            f"file: {medians})"
        )
    if "hang" in run.case_seconds:
        limits = _phases(run.phase_cpu_limits, "s")
        reasons.append(
            f"A hang is called only when a phase has used its CPU limit ({limits})"
        )
    setup = run.seconds - run.kind_seconds
    written = (
        f", saving copies and writing {run.regressions} regression scenarios"
        if run.regressions
        else ""
    )
    reasons.append(
        "Loading the undamaged file and timing undamaged cases to set the phase "
        f"limits{written} took {setup:.1f} s of the {run.seconds:.1f} s"
    )
    return ". ".join(reasons)


def _cases(count: int) -> str:
    return f"{count} case" if count == 1 else f"{count} cases"


def _phases(values: dict[str, float], unit: str) -> str:
    scale = 1000 if unit == "ms" else 1
    return ", ".join(
        f"{phase} {format_value(value * scale, unit)}"
        for phase, value in values.items()
    )


def _runs_table(runs: list[SweepRun]) -> str:
    rows = []
    for run in runs:
        rows.append(
            [
                run.kind,
                str(run.cases),
                str(run.workers),
                f"{run.seconds:.1f} s",
                f"{run.kind_seconds:.1f} s",
                format_value(run.cases / run.kind_seconds, "cases/s"),
                ", ".join(f"{v} {n}" for v, n in run.verdicts.items() if n),
                f"{run.peak_self_kib / 1024:.0f} MiB",
                f"{run.peak_children_kib / 1024:.0f} MiB",
            ]
        )
    header = [
        "kind",
        "cases",
        "workers",
        "run_sweep wall time",
        "cases only",
        "rate of the cases only",
        "verdicts",
        "peak RSS, sweep",
        "peak RSS, largest case",
    ]
    return markdown_table(header, rows)


def _baseline_table(cases: list[BaselineCase]) -> str:
    rows = [[case.damage, f"{case.seconds:.2f} s", case.outcome] for case in cases]
    return "Fresh-interpreter cases:\n\n" + markdown_table(
        ["damage", "time", "outcome"], rows
    )


def _method(known: KnownModel, stride: int, flips: int) -> list[str]:
    return [
        f"`harness.sweep.run_sweep` on {MODEL} v1 of the built-in models "
        f"({known.size} bytes, {known.model_class}), loader `basic`, once with "
        f"kind `truncate` (every {stride}th offset) and once with `bitflip` "
        f"({flips} single-bit flips), each in a fresh `python -m "
        "benchmarks.sweep_worker` process. `timeout` keeps its default, so the "
        "sweep sets each phase's CPU time limit from undamaged cases it runs "
        "first. The rate is cases divided by the "
        "wall time of the `run_sweep` call; the table also gives the time of the "
        "cases alone, from the sweep's own summary.",
        "Peak memory is `ru_maxrss` of `resource.getrusage` in that process: "
        "`RUSAGE_SELF` for the sweep process, `RUSAGE_CHILDREN` for the largest "
        "case process it waited for. Forked case processes share most pages "
        "with the sweep process, so their RSS overstates what each adds.",
        "The fresh-interpreter baseline runs each damaged copy in a new `python "
        "-c` process that imports scikit-learn's estimators, loads the copy with "
        "joblib and predicts on the canary rows; its median time per case is "
        "the unit of the ratios.",
    ]
