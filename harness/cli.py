"""The ``model-chaos`` command: run scenarios, list them, clean up after a run."""

from __future__ import annotations

import argparse
import ast
import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from harness.checks import Bounds
from harness.cleanup import raise_interrupt
from harness.errors import HarnessError, UsageError
from harness.run import check_seconds
from harness.sequence import DEFAULT_LENGTH
from harness.sequence.explore import DEFAULT_BUDGET
from harness.targets.base import LOADERS

logger = logging.getLogger(__name__)

SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "scenarios"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


EXIT_TERMINATED = 143

# Repeats of one run: 1000 of the whole suite already take days.
MAX_REPEAT = 1000

# Set when SIGTERM arrived, which pytest reports as an ordinary interrupt.
_terminated = threading.Event()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _terminated.set()
    raise_interrupt(signum, frame)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    typed = list(argv) if argv is not None else sys.argv[1:]
    args.command_line = shlex.join(["model-chaos", *typed])
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # SIGTERM (from timeout, a CI cancel or systemd) cleans up like Ctrl-C.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        return _call(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _call(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except UsageError as err:
        print(f"model-chaos: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except HarnessError as err:
        print(f"model-chaos: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return _interrupted()
    except BrokenPipeError:
        # The reader of our output went away (`model-chaos list | head`).
        sys.stderr.close()
        return EXIT_OK


def _interrupted() -> int:
    """Remove what this run's killed workers left, and return 130 or 143."""
    from harness.cleanup import clean, current_run
    from harness.targets.launcher import close_shared_launcher

    # Before the message below, so that it is true when it is printed.
    close_shared_launcher()
    run_id = current_run()
    if run_id is not None:
        for line in clean(run_id):
            logger.info("after the interrupt: %s", line)
    if _terminated.is_set():
        print("model-chaos: terminated; everything was cleaned up", file=sys.stderr)
        return EXIT_TERMINATED
    print("model-chaos: interrupted; everything was cleaned up", file=sys.stderr)
    return EXIT_INTERRUPTED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="model-chaos",
        description="Damage the model files of a live inference service and check "
        "how it copes.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log the harness's own steps"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the fault scenarios and write a report")
    run.add_argument(
        "--target",
        choices=("process", "docker"),
        default="process",
        help="run the reference service as a local process (default) or a "
        "Docker container",
    )
    run.add_argument(
        "--loader",
        choices=LOADERS,
        default="hardened",
        help="model loader of the reference service (default: hardened)",
    )
    run.add_argument(
        "--models",
        metavar="DIR",
        help="directory with global_model.pkl and/or champion_model.pkl to test "
        "instead of the built-in models",
    )
    run.add_argument(
        "--report-dir",
        metavar="DIR",
        default="reports",
        help="directory that receives <run-id>/ and the latest link (default: reports)",
    )
    run.add_argument("--seed", type=int, help="seed of the run (default: random)")
    run.add_argument(
        "--repeat", type=int, default=1, metavar="N", help="run each scenario N times"
    )
    run.add_argument(
        "-k", dest="keyword", metavar="EXPR", help="select scenarios by name"
    )
    run.add_argument(
        "-n",
        dest="workers",
        metavar="WORKERS",
        help="run scenarios in this many parallel workers (pytest-xdist), or auto",
    )
    run.add_argument(
        "--recover-within",
        type=float,
        metavar="SECONDS",
        help="time the target has to report healthy after a valid file is "
        "published (default: 10)",
    )
    run.add_argument(
        "--request-latency",
        type=float,
        metavar="SECONDS",
        help="bound on the latency of one predict request (default: 2)",
    )
    run.add_argument(
        "pytest_args",
        nargs="*",
        metavar="-- PYTEST_ARGS",
        help="further arguments for pytest, after --",
    )
    run.set_defaults(func=_run)

    listing = commands.add_parser("list", help="print every scenario with a summary")
    listing.set_defaults(func=_list)

    clean = commands.add_parser(
        "clean", help="remove what an interrupted run left behind"
    )
    clean.add_argument("--run-id", help="only this run's leftovers")
    clean.set_defaults(func=_clean)

    _add_sweep_parser(commands)
    _add_explore_parser(commands)

    image = commands.add_parser("image", help="manage the cached target images")
    image_commands = image.add_subparsers(dest="image_command", required=True)
    prune = image_commands.add_parser("prune", help="remove the cached images")
    prune.set_defaults(func=_image_prune)
    build = image_commands.add_parser("build", help="build the target image now")
    build.set_defaults(func=_image_build)
    return parser


def _add_sweep_parser(commands: argparse._SubParsersAction[Any]) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="damage copies of one model file in many ways and judge what a loader "
        "does with each",
        description="Damage copies of MODEL_FILE (truncated, bits flipped, damage "
        "aimed at pickle opcodes, the compressed stream and NumPy arrays), run "
        "each through a loader of the reference service in its own process, and "
        "report which ones crashed, hung or were served with wrong predictions. "
        "Exit status 0 when no copy was dangerous, 1 otherwise.",
    )
    sweep.add_argument(
        "model_file",
        metavar="MODEL_FILE",
        nargs="?",
        help="joblib model file (default: the built-in global_model, a RandomForest "
        "of about 1 MB)",
    )
    sweep.add_argument(
        "--loader",
        choices=LOADERS,
        default="hardened",
        help="loader whose handling is judged (default: hardened)",
    )
    sweep.add_argument(
        "--flips",
        type=int,
        default=200,
        metavar="N",
        help="damaged copies of each drawn kind: bitflip, opcode, compressed and "
        "array (default: 200)",
    )
    sweep.add_argument(
        "--stride",
        type=int,
        metavar="K",
        help="truncate the file at every K-th byte offset (default: the stride "
        "that gives about 1000 offsets; 1 cuts at every offset)",
    )
    sweep.add_argument(
        "--kinds",
        default="truncate,bitflip,opcode,compressed,array",
        metavar="KINDS",
        help="comma-separated kinds of damage (default: "
        "truncate,bitflip,opcode,compressed,array)",
    )
    sweep.add_argument(
        "--seed", type=int, help="seed of the drawn damage (default: a new random seed)"
    )
    sweep.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="CPU seconds a phase of one case may use before it counts as a hang "
        "(default: 20 times the undamaged file's, at least 1.0)",
    )
    sweep.add_argument(
        "--report-dir",
        metavar="DIR",
        default="reports",
        help="directory that receives <run-id>/sweep.json and the latest link "
        "(default: reports)",
    )
    sweep.set_defaults(func=_sweep)


def _add_explore_parser(commands: argparse._SubParsersAction[Any]) -> None:
    explore = commands.add_parser(
        "explore",
        help="run seeded sequences of faults and shrink the ones that fail",
        description="Run seeded sequences of damage, publishes and restarts "
        "against a fresh target each, then publish valid files and check the "
        "target. Each failing sequence is shrunk to the fewest steps that fail "
        "the same checks and written out as a scenario module. Exit status 0 "
        "when every sequence passed, 1 otherwise.",
    )
    explore.add_argument(
        "--target",
        choices=("process", "docker"),
        default="process",
        help="run the reference service as a local process (default) or a "
        "Docker container",
    )
    explore.add_argument(
        "--loader",
        choices=LOADERS,
        default="hardened",
        help="model loader of the reference service (default: hardened)",
    )
    explore.add_argument(
        "--models",
        metavar="DIR",
        help="directory with global_model.pkl and/or champion_model.pkl to test "
        "instead of the built-in models",
    )
    explore.add_argument(
        "--runs",
        type=int,
        default=10,
        metavar="N",
        help="sequences to run, of seeds SEED to SEED+N-1 (default: 10)",
    )
    explore.add_argument(
        "--steps",
        type=int,
        default=DEFAULT_LENGTH,
        metavar="N",
        help=f"steps in each sequence (default: {DEFAULT_LENGTH}, as in "
        "the fault_sequence scenario)",
    )
    explore.add_argument(
        "--seed",
        type=int,
        help="seed of the first sequence (default: a new random seed); the "
        "fault_sequence scenario of `model-chaos run --seed S` ran sequence S",
    )
    explore.add_argument(
        "--budget",
        type=int,
        default=DEFAULT_BUDGET,
        metavar="N",
        help=f"runs of the target that shrinking one sequence may use, besides "
        f"the first run and the confirming run (default: {DEFAULT_BUDGET})",
    )
    explore.add_argument(
        "--recover-within",
        type=float,
        default=Bounds.recover_within,
        metavar="SECONDS",
        help="time the target has to report healthy after the closing publish "
        "(default: 10); a loader that never recovers costs this much per run",
    )
    explore.add_argument(
        "--report-dir",
        metavar="DIR",
        default="reports",
        help="directory that receives <run-id>/explore.json and the latest link "
        "(default: reports)",
    )
    explore.set_defaults(func=_explore)


def _run(args: argparse.Namespace) -> int:
    import pytest

    from harness.run import make_run_id

    _check_run_options(args)
    run_id = make_run_id()
    pytest_args = _pytest_args(args, run_id)
    logger.debug("pytest %s", " ".join(pytest_args))

    code = pytest.main(pytest_args)
    return _exit_status(int(code), args)


def _check_run_options(args: argparse.Namespace) -> None:
    if args.repeat < 1:
        raise UsageError(f"--repeat {args.repeat}: pass 1 or more")
    if args.repeat > MAX_REPEAT:
        # pytest collects every repeat before it runs one, in memory.
        raise UsageError(
            f"--repeat {args.repeat}: pass at most {MAX_REPEAT}, and run the "
            "command again for more"
        )
    check_seconds("--recover-within", args.recover_within)
    check_seconds("--request-latency", args.request_latency)
    if args.workers is not None and not (
        args.workers == "auto" or args.workers.isdigit()
    ):
        raise UsageError(f"-n {args.workers}: pass a number of workers or 'auto'")

    _report_dir(args.report_dir)

    if args.models is not None:
        from harness.run import load_model_set

        load_model_set(Path(args.models).resolve())
    _prepare_target(args.target, args.loader)


def _prepare_target(target: str, loader: str) -> None:
    """Check what the target needs before any scenario starts it."""
    if target == "docker":
        _prepare_docker()
        return

    from harness.targets.process import check_temp_dir

    check_temp_dir(loader)


def _prepare_docker() -> None:
    """Check the engine and build the target image before any scenario starts.

    Built here, the image is not built inside the first scenario of each
    worker, where the build's load slowed the other worker's containers.
    """
    from harness.docker import build_target_image
    from harness.targets.docker import check_engine

    check_engine()
    # A first build takes minutes; its steps are shown even without -v.
    logging.getLogger("harness.docker").setLevel(logging.INFO)
    build_target_image()


def _pytest_args(args: argparse.Namespace, run_id: str) -> list[str]:
    pytest_args = [
        str(SCENARIOS_DIR),
        "-c",
        str(SCENARIOS_DIR / "pytest.ini"),
        "--rootdir",
        str(SCENARIOS_DIR),
        "-p",
        "no:cacheprovider",
        "--target",
        args.target,
        "--loader",
        args.loader,
        "--report-dir",
        str(Path(args.report_dir).resolve()),
        "--run-id",
        run_id,
        "--repeat",
        str(args.repeat),
        "--run-command",
        args.command_line,
    ]
    if args.models is not None:
        pytest_args += ["--models", str(Path(args.models).resolve())]
    if args.seed is not None:
        pytest_args += ["--seed", str(args.seed)]
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    if args.workers is not None:
        pytest_args += ["-n", args.workers]
    if args.recover_within is not None:
        pytest_args += ["--recover-within", str(args.recover_within)]
    if args.request_latency is not None:
        pytest_args += ["--request-latency", str(args.request_latency)]
    return pytest_args + list(args.pytest_args)


def _builtin_model_file() -> Path:
    from harness.run import load_model_set

    path = load_model_set(None).get("global_model", "v1").path
    assert path is not None
    return path


def _sweep(args: argparse.Namespace) -> int:
    import random

    from harness.report import point_latest
    from harness.run import make_run_id
    from harness.sweep import run_sweep
    from harness.sweep.summary import render_summary

    kinds = _sweep_kinds(args.kinds)
    report_dir = _report_dir(args.report_dir)
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    run_id = make_run_id()

    result = run_sweep(
        Path(args.model_file) if args.model_file else _builtin_model_file(),
        loader=args.loader,
        kinds=kinds,
        flips=args.flips,
        stride=args.stride,
        seed=seed,
        timeout=args.timeout,
        out_dir=report_dir / run_id,
    )
    point_latest(report_dir, run_id)
    if not result.cases:
        # Exit 0 would claim that the loader survived damage it never saw.
        reasons = "; ".join(
            f"{kind}: {summary.skipped or 'no copy drawn'}"
            for kind, summary in result.summaries.items()
        )
        raise UsageError(
            f"the sweep made no damaged copy ({reasons}); pass other --kinds, or "
            "--flips of 1 or more"
        )
    print(render_summary(result))
    return EXIT_FAILED if result.dangerous else EXIT_OK


def _explore(args: argparse.Namespace) -> int:
    import random

    from harness.cleanup import set_run
    from harness.run import RunContext, make_run_id
    from harness.scenario import ScenarioSettings

    for option, value in (("--runs", args.runs), ("--steps", args.steps)):
        if value < 1:
            raise UsageError(f"{option} {value}: pass 1 or more")
    if args.budget < 1:
        raise UsageError(f"--budget {args.budget}: pass 1 or more runs")
    check_seconds("--recover-within", args.recover_within)
    report_dir = _report_dir(args.report_dir)
    _prepare_target(args.target, args.loader)

    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    context = RunContext(
        run_id=make_run_id(),
        seed=seed,
        loader=args.loader,
        target=args.target,
        report_dir=report_dir,
        models_dir=Path(args.models).resolve() if args.models else None,
        settings=ScenarioSettings(
            loader=args.loader, bounds=Bounds(recover_within=args.recover_within)
        ),
    )
    # Loaded before the run folder exists, so that bad --models leaves none.
    context.model_set()
    set_run(context.run_id)
    return _explore_run(context, args)


def _explore_run(context: Any, args: argparse.Namespace) -> int:
    """Run the sequences of ``context``, keeping explore.json current after each."""
    from harness.report import point_latest
    from harness.run import harness_versions
    from harness.sequence.explore import SequenceResult, TrialRunner, explore
    from harness.sequence.report import (
        render_summary,
        write_explore_json,
        write_module,
    )

    out_dir = context.report_dir / context.run_id
    out_dir.mkdir()
    point_latest(context.report_dir, context.run_id)
    command = _explore_command(args, context.seed)
    print(f"exploring with seed {context.seed}; report: {out_dir}", file=sys.stderr)
    run = {
        "id": context.run_id,
        "command": shlex.join(command),
        "loader": args.loader,
        "target": args.target,
        "seed": context.seed,
        "runs": args.runs,
        "steps": args.steps,
        "started": _now_iso(),
        "finished": None,
        "versions": harness_versions(),
    }
    results: list[SequenceResult] = []
    write_explore_json(out_dir / "explore.json", run, results)

    def keep(result: SequenceResult) -> None:
        # Written as each sequence ends, so an interrupted run keeps what it found.
        if result.shrunk is not None:
            result.module = write_module(
                out_dir / "regressions", result, loader=args.loader, command=command
            )
        results.append(result)
        write_explore_json(out_dir / "explore.json", run, results)

    runner = TrialRunner(
        model_set=context.model_set(),
        settings=context.settings,
        target_factory=context.target_factory(),
        on_trial=_print_trial,
    )
    explore(
        runner,
        seed=context.seed,
        runs=args.runs,
        length=args.steps,
        budget=args.budget,
        on_result=keep,
    )
    run["finished"] = _now_iso()
    write_explore_json(out_dir / "explore.json", run, results)
    print(render_summary(results))
    print(f"report: {out_dir / 'explore.json'}")
    return EXIT_FAILED if any(result.failed for result in results) else EXIT_OK


def _print_trial(number: int, trial: Any) -> None:
    verdict = f"failed {', '.join(trial.failed)}" if trial.failed else "passed"
    steps = f"{len(trial.steps)} step" + ("" if len(trial.steps) == 1 else "s")
    print(f"run {number}: {steps}, {verdict} ({trial.seconds:.1f} s)", file=sys.stderr)


def _explore_command(args: argparse.Namespace, seed: int) -> list[str]:
    """Return the explore command that runs the same sequences again."""
    command = ["model-chaos", "explore", "--loader", args.loader]
    if args.target != "process":
        command += ["--target", args.target]
    if args.models:
        command += ["--models", args.models]
    command += ["--seed", str(seed), "--runs", str(args.runs)]
    if args.steps != DEFAULT_LENGTH:
        command += ["--steps", str(args.steps)]
    if args.recover_within != Bounds.recover_within:
        command += ["--recover-within", f"{args.recover_within:g}"]
    return command


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


def _sweep_kinds(text: str) -> list[str]:
    from harness.sweep import KINDS

    kinds = [kind.strip() for kind in text.split(",") if kind.strip()]
    for kind in kinds:
        if kind not in KINDS:
            raise UsageError(
                f"--kinds: unknown kind {kind!r}; pass a comma-separated list of "
                f"{', '.join(KINDS)}"
            )
    if not kinds:
        raise UsageError(
            f"--kinds {text!r}: no kind given; pass a comma-separated list of "
            f"{', '.join(KINDS)}"
        )
    return kinds


def _report_dir(path: str) -> Path:
    report_dir = Path(path)
    if report_dir.exists() and not report_dir.is_dir():
        raise UsageError(
            f"--report-dir {report_dir}: exists and is not a directory; pass a "
            "directory, or a path to create one at"
        )
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(
            f"--report-dir {report_dir}: cannot create it ({err.strerror}); pass a "
            "directory you can write to"
        ) from err
    if not os.access(report_dir, os.W_OK):
        raise UsageError(
            f"--report-dir {report_dir}: not writable; pass a directory you can "
            "write to"
        )
    return report_dir


def _exit_status(code: int, args: argparse.Namespace) -> int:
    import pytest

    if code == pytest.ExitCode.OK:
        return EXIT_OK
    if code == pytest.ExitCode.TESTS_FAILED:
        return EXIT_FAILED
    if code == pytest.ExitCode.INTERRUPTED:
        return _interrupted()
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        selection = f"-k {args.keyword!r}" if args.keyword else "the selection"
        print(
            f"model-chaos: error: {selection} selects no scenario; "
            "`model-chaos list` prints their names",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return EXIT_USAGE


def scenario_summaries() -> list[tuple[str, str]]:
    """Return ``(name, one-line summary)`` of every scenario module, sorted."""
    summaries = []
    for path in sorted(SCENARIOS_DIR.glob("test_*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        summary = doc.strip().splitlines()[0] if doc.strip() else ""
        summaries.append((path.stem.removeprefix("test_"), summary))
    return summaries


def _list(args: argparse.Namespace) -> int:
    for name, summary in scenario_summaries():
        print(f"{name}  {summary}")
    return EXIT_OK


def _clean(args: argparse.Namespace) -> int:
    from harness.cleanup import clean

    for line in clean(args.run_id):
        print(line)
    return EXIT_OK


def _image_prune(args: argparse.Namespace) -> int:
    from harness.docker import prune_images

    for tag in prune_images():
        print(f"removed {tag}")
    return EXIT_OK


def _image_build(args: argparse.Namespace) -> int:
    from harness.docker import build_target_image

    print(build_target_image())
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
