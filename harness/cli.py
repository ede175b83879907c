"""The ``model-chaos`` command: run scenarios, list them, clean up after a run."""

from __future__ import annotations

import argparse
import ast
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, UsageError
from harness.targets.base import LOADERS

logger = logging.getLogger(__name__)

SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "scenarios"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except UsageError as err:
        print(f"model-chaos: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except HarnessError as err:
        print(f"model-chaos: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("model-chaos: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our output went away (`model-chaos list | head`).
        sys.stderr.close()
        return EXIT_OK


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
    if args.workers is not None and not (
        args.workers == "auto" or args.workers.isdigit()
    ):
        raise UsageError(f"-n {args.workers}: pass a number of workers or 'auto'")

    _report_dir(args.report_dir)

    if args.models is not None:
        from harness.run import load_model_set

        load_model_set(Path(args.models).resolve())
    if args.target == "docker":
        from harness.targets.docker import check_engine

        check_engine()


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
    print(render_summary(result))
    return EXIT_FAILED if result.dangerous else EXIT_OK


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
        print("model-chaos: interrupted; everything was cleaned up", file=sys.stderr)
        return EXIT_INTERRUPTED
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
