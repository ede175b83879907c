"""``run_sweep``: damage copies of one model file every way and judge each one.

The steps:

1. load the undamaged file and record its canary outputs;
2. measure the CPU time of undamaged cases and derive the hang timeouts;
3. run each kind's copies, one process per copy forked where its damage starts;
4. save the copies that crashed, hung or were served with wrong predictions;
5. shrink the dangerous copies to their fewest flips and write regression
   scenarios;
6. write sweep.json.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from threadpoolctl import threadpool_limits

from harness.cleanup import track, untrack
from harness.errors import HarnessError, UsageError
from harness.sweep import timeouts as timeout_rules
from harness.sweep.artifacts import SAVED_VERDICTS, save_copy, write_sweep_json
from harness.sweep.damage import KINDS, Flip, undamaged
from harness.sweep.engine import CaseRunner
from harness.sweep.layout import FileLayout, read_layout
from harness.sweep.loaders import LOADERS, CaseLoader, HardenedCase
from harness.sweep.plan import plan_kind
from harness.sweep.reference import Reference, load_reference
from harness.sweep.regression import write_regression
from harness.sweep.result import CaseResult, KindSummary, Regression, SweepResult
from harness.sweep.shrink import shrink_case
from harness.sweep.timeouts import Timeouts
from target_service.manifest import library_versions

logger = logging.getLogger(__name__)

DEFAULT_FLIPS = 200
# Without --stride, the truncation kind cuts the file at about this many offsets.
DEFAULT_TRUNCATIONS = 1000
DEFAULT_MAX_REGRESSIONS = 10

# Undamaged cases per worker that calibration runs to measure phase times.
CALIBRATION_ROUNDS = 2

# Regression scenarios are written for the most harmful verdicts first.
_REGRESSION_ORDER = ("crash", "hang", "silent_corruption", "predict_error")

# Variables that size the thread pools of OpenMP and the BLAS libraries when
# they start. Forking while such a pool has threads can deadlock the child.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def run_sweep(
    model_file: Path,
    *,
    loader: str = "hardened",
    kinds: Sequence[str] = KINDS,
    flips: int = DEFAULT_FLIPS,
    stride: int | None = None,
    seed: int = 0,
    timeout: float | None = None,
    out_dir: Path,
    canary_inputs: list[list[float]] | None = None,
    workers: int | None = None,
    max_regressions: int = DEFAULT_MAX_REGRESSIONS,
) -> SweepResult:
    """Sweep damaged copies of ``model_file`` through ``loader`` and judge them.

    - ``flips``: copies of each drawn kind (bitflip, opcode, compressed, array);
    - ``stride``: step between truncation offsets, by default the one that
      gives about :data:`DEFAULT_TRUNCATIONS` offsets;
    - ``timeout``: CPU seconds a phase of a case may use, by default measured
      (see :mod:`harness.sweep.timeouts`);
    - ``canary_inputs``: rows to judge predictions on, by default found as
      :mod:`harness.sweep.reference` describes;
    - ``workers``: case processes at a time, by default the CPUs this process
      may use;
    - ``out_dir``: receives sweep.json, ``damaged/`` and at most
      ``max_regressions`` scenarios in ``regressions/``.

    Raises :class:`UsageError` for an invalid argument or a model file that
    cannot be swept.
    """
    _check_arguments(loader, kinds, flips, stride, timeout, workers, max_regressions)
    started_at = _now_iso()
    workers = workers or len(os.sched_getaffinity(0))

    with _single_threaded():
        reference = load_reference(Path(model_file), canary_inputs)
        data = reference.data
        stride = stride or max(1, len(data) // DEFAULT_TRUNCATIONS)
        layout = read_layout(data)
        _make_dir(out_dir)

        with _scratch_dir() as work_dir:
            case_loader = _case_loader(loader, reference, work_dir)
            runner = CaseRunner(data, case_loader, workers=workers)
            limits = _timeouts(runner, case_loader, timeout, workers)
            summaries, cases = _run_kinds(
                runner, limits, data, layout, kinds, flips, stride, seed
            )
            for case in cases:
                if case.verdict in SAVED_VERDICTS:
                    case.saved_file = save_copy(
                        out_dir, case, data, seed=seed, loader=loader
                    )
            command = _command(model_file, loader, kinds, flips, stride, seed, timeout)
            regressions = _write_regressions(
                runner,
                limits,
                cases,
                reference,
                loader,
                command,
                out_dir,
                max_regressions,
            )

    result = SweepResult(
        model_file=Path(model_file),
        model_sha256=reference.sha256,
        model_size=len(data),
        model_name=reference.model_name,
        compressor=layout.compressor,
        loader=loader,
        seed=seed,
        kinds=tuple(kinds),
        flips=flips,
        stride=stride,
        timeouts=limits,
        workers=workers,
        canary_source=reference.canary_source,
        canary_rows=len(reference.manifest.canary.inputs),
        versions=_versions(),
        started_at=started_at,
        ended_at=_now_iso(),
        summaries=summaries,
        cases=cases,
        regressions=regressions,
        out_dir=out_dir,
        notes=_notes(cases, regressions, max_regressions),
    )
    write_sweep_json(result)
    logger.info("sweep of %s written to %s", model_file, result.path)
    return result


def _check_arguments(
    loader: str,
    kinds: Sequence[str],
    flips: int,
    stride: int | None,
    timeout: float | None,
    workers: int | None,
    max_regressions: int,
) -> None:
    if loader not in LOADERS:
        raise UsageError(
            f"unknown loader {loader!r}; choose one of {', '.join(LOADERS)}"
        )
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise UsageError(
            f"unknown damage kind {unknown[0]!r}; choose from {', '.join(KINDS)}"
        )
    if not kinds:
        raise UsageError(f"no damage kind given; choose from {', '.join(KINDS)}")
    if flips < 0:
        raise UsageError(f"--flips {flips}: pass 0 or more")
    if stride is not None and stride < 1:
        raise UsageError(f"--stride {stride}: pass 1 or more")
    if timeout is not None and not timeout > 0:
        raise UsageError(f"--timeout {timeout}: pass a number of seconds above 0")
    if workers is not None and workers < 1:
        raise UsageError(f"workers {workers}: pass 1 or more")
    if max_regressions < 0:
        raise UsageError(f"max_regressions {max_regressions}: pass 0 or more")


@contextmanager
def _single_threaded() -> Iterator[None]:
    """Limit thread pools to one thread and keep old objects out of collections.

    The undamaged file is unpickled once per kind in this process. With the
    objects that exist before the sweep frozen, the garbage collector scans
    only what the sweep allocates. Frozen objects are unfrozen at the end.
    """
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: "1" for name in _THREAD_VARIABLES})
    gc.freeze()
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        gc.unfreeze()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _scratch_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="model-chaos-sweep-"))
    tracked = track("directory", path=str(path))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        untrack(tracked)


def _make_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(
            f"cannot create {out_dir} ({err.strerror or err}); pass a directory "
            "you can write to"
        ) from err


def _case_loader(name: str, reference: Reference, work_dir: Path) -> CaseLoader:
    canary = reference.manifest.canary
    if name == "hardened":
        return HardenedCase(canary, manifest=reference.manifest, work_dir=work_dir)
    return LOADERS[name](canary)


def _timeouts(
    runner: CaseRunner, loader: CaseLoader, timeout: float | None, workers: int
) -> Timeouts:
    """Return the fixed timeout, or measure undamaged cases to derive one.

    Raises HarnessError when an undamaged case is not served unchanged, since
    no damaged copy can be judged against it then.
    """
    if timeout is not None:
        return timeout_rules.fixed(timeout, loader.phases)
    copies = [undamaged(index) for index in range(CALIBRATION_ROUNDS * workers)]
    runs = runner.run_from_start(copies, timeout_rules.calibration())
    durations: dict[str, list[float]] = {}
    for run in runs:
        if run.outcome.verdict != "identical":
            raise HarnessError(
                f"the undamaged file got the verdict {run.outcome.verdict} "
                f"({run.outcome.error or run.outcome.signal}) in a case process; "
                "a sweep needs a file that loads and predicts there"
            )
        for phase, seconds in run.phases.items():
            durations.setdefault(phase, []).append(seconds)
    return timeout_rules.from_durations(durations)


def _run_kinds(
    runner: CaseRunner,
    limits: Timeouts,
    data: bytes,
    layout: FileLayout,
    kinds: Sequence[str],
    flips: int,
    stride: int,
    seed: int,
) -> tuple[dict[str, KindSummary], list[CaseResult]]:
    summaries: dict[str, KindSummary] = {}
    cases: list[CaseResult] = []
    for kind in kinds:
        plan = plan_kind(kind, data, layout, count=flips, stride=stride, seed=seed)
        if plan.skipped is not None:
            summaries[kind] = KindSummary(kind, skipped=plan.skipped)
            logger.info("%s damage skipped: %s", kind, plan.skipped)
            continue
        started = time.monotonic()
        runs = runner.run(plan.damages, limits)
        results = [CaseResult(run.damage, run.outcome, run.duration) for run in runs]
        summaries[kind] = KindSummary.of(kind, results, time.monotonic() - started)
        cases.extend(results)
        logger.info("%s damage: %d copies judged", kind, len(results))
    return summaries, cases


def _write_regressions(
    runner: CaseRunner,
    limits: Timeouts,
    cases: list[CaseResult],
    reference: Reference,
    loader: str,
    command: list[str],
    out_dir: Path,
    max_regressions: int,
) -> list[Regression]:
    """Shrink the dangerous flip-only copies and write a scenario for each.

    Copies are taken from each verdict and kind in turn (see
    :func:`_interleaved`), and two copies that shrink to the same flips get
    one scenario.
    """
    candidates = _interleaved([case for case in cases if _replayable(case)])

    regressions: list[Regression] = []
    written: set[tuple[Flip, ...]] = set()
    for case in candidates:
        if len(regressions) >= max_regressions:
            break
        flips = shrink_case(runner, limits, case)
        if flips in written:
            continue
        written.add(flips)
        path = write_regression(
            out_dir / "regressions",
            case,
            flips,
            sha256=reference.sha256,
            model_name=reference.model_name,
            loader=loader,
            command=command,
        )
        regressions.append(Regression(path, case, flips))
    return regressions


def _interleaved(cases: list[CaseResult]) -> list[CaseResult]:
    """Order copies so that each verdict and kind comes up before any repeats.

    The first copy of every (verdict, kind) pair comes first, verdicts in the
    order of :data:`_REGRESSION_ORDER`, then the second of every pair, and so
    on. A few scenarios then cover a crash, a hang and wrong predictions from
    several kinds of damage rather than many crashes of one kind.
    """
    groups: dict[tuple[int, str], list[CaseResult]] = {}
    for case in cases:
        key = (_REGRESSION_ORDER.index(case.verdict), case.damage.kind)
        groups.setdefault(key, []).append(case)
    ordered = sorted(groups.items())
    rounds = max((len(group) for _, group in ordered), default=0)
    return [
        group[turn]
        for turn in range(rounds)
        for _, group in ordered
        if turn < len(group)
    ]


def _replayable(case: CaseResult) -> bool:
    """Return whether a regression scenario can rebuild the copy from flips alone."""
    return case.dangerous and bool(case.damage.flips) and case.damage.size is None


def _command(
    model_file: Path,
    loader: str,
    kinds: Sequence[str],
    flips: int,
    stride: int,
    seed: int,
    timeout: float | None,
) -> list[str]:
    """Return the ``model-chaos sweep`` command that repeats this sweep."""
    command = [
        "model-chaos",
        "sweep",
        str(model_file),
        "--loader",
        loader,
        "--kinds",
        ",".join(kinds),
        "--flips",
        str(flips),
        "--stride",
        str(stride),
        "--seed",
        str(seed),
    ]
    if timeout is not None:
        command += ["--timeout", str(timeout)]
    return command


def _notes(
    cases: list[CaseResult], regressions: list[Regression], max_regressions: int
) -> list[str]:
    notes = []
    eligible = sum(1 for case in cases if _replayable(case))
    if eligible > len(regressions):
        notes.append(
            f"{eligible} dangerous copies could become regression scenarios; "
            f"{len(regressions)} were written (at most {max_regressions}, one per "
            "distinct set of flips after shrinking)"
        )
    return notes


def _versions() -> dict[str, str]:
    versions = library_versions()
    try:
        versions["model_chaos_version"] = metadata.version("model-chaos")
    except metadata.PackageNotFoundError:
        versions["model_chaos_version"] = "not installed"
    return versions


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
