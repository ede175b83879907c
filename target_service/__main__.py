"""Run the reference service: ``python -m target_service --model-dir DIR --port N``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from target_service.config import (
    DEFAULT_MODELS,
    VERSION_MATCHES,
    ServiceConfig,
    check_model_name,
)
from target_service.manifest import read_key_file

logger = logging.getLogger(__name__)

LOADER_NAMES = ("naive", "basic", "hardened")
LOG_LEVELS = ("debug", "info", "warning", "error")

# The hardened loader forks validation processes, and forking after OpenMP or
# BLAS threads have started can deadlock, so their pools get one thread. The
# variables must be set before NumPy or scikit-learn is imported.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

# Seconds uvicorn waits for open requests at shutdown, well below the 10 s that
# ``docker stop`` waits by default before it sends SIGKILL.
GRACEFUL_SHUTDOWN_SECONDS = 3

# Seconds to wait for the server's idle worker threads after shutdown.
_THREAD_EXIT_GRACE = 2.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m target_service",
        description="Serve scikit-learn models from a directory over HTTP.",
    )

    parser.add_argument(
        "--model-dir",
        type=Path,
        required=True,
        help="directory with NAME.pkl files, their backups and manifests",
    )
    parser.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )

    parser.add_argument(
        "--loader",
        choices=LOADER_NAMES,
        default="hardened",
        help="how model files are loaded (default hardened)",
    )
    parser.add_argument(
        "--hmac-key-file",
        type=Path,
        help="file with the key that signs manifests; without it the hardened "
        "loader checks sha256 only",
    )
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help="comma-separated model names to serve (default %(default)s)",
    )

    parser.add_argument(
        "--poll-interval",
        type=float,
        default=0.2,
        help="seconds between checks of the model files for changes (default 0.2)",
    )
    parser.add_argument(
        "--validate-timeout",
        type=float,
        default=5.0,
        help="seconds a model may take to load and predict its canary inputs in "
        "the validation process (default 5.0)",
    )
    parser.add_argument(
        "--version-match",
        choices=VERSION_MATCHES,
        default="exact",
        help="how the scikit-learn version of a model must match the running one: "
        "exact, minor (same major.minor) or any (default exact)",
    )

    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="lowest level of the messages logged to stderr (default info)",
    )
    return parser


def parse_config(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> tuple[argparse.Namespace, ServiceConfig]:
    """Parse and check the command line; exits with status 2 on bad usage."""
    args = parser.parse_args(argv)
    if not args.model_dir.is_dir():
        parser.error(
            f"--model-dir {args.model_dir} is not a directory: create it or pass the "
            "directory that holds the model files"
        )
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is out of range: use 0 to 65535")
    for option, value in (
        ("--poll-interval", args.poll_interval),
        ("--validate-timeout", args.validate_timeout),
    ):
        if not value > 0:
            parser.error(f"{option} {value} must be a positive number of seconds")

    models = tuple(name.strip() for name in args.models.split(","))
    try:
        for name in models:
            check_model_name(name)
    except ValueError as err:
        parser.error(f"--models {args.models!r}: {err}")
    if len(set(models)) != len(models):
        parser.error(f"--models {args.models!r} names a model twice")

    key = None
    if args.hmac_key_file is not None:
        try:
            key = read_key_file(args.hmac_key_file)
        except (OSError, ValueError) as err:
            parser.error(
                f"--hmac-key-file {args.hmac_key_file} cannot be used ({err}): "
                "pass a readable file that holds the publisher's key"
            )

    config = ServiceConfig(
        model_dir=args.model_dir.resolve(),
        loader=args.loader,
        models=models,
        hmac_key=key,
        poll_interval=args.poll_interval,
        validate_timeout=args.validate_timeout,
        version_match=args.version_match,
    )
    return args, config


def limit_native_threads() -> None:
    for variable in THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")


def main(argv: list[str] | None = None) -> int:
    limit_native_threads()
    parser = build_parser()
    args, config = parse_config(parser, argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if config.hmac_key is not None and config.loader != "hardened":
        logger.warning(
            "--hmac-key-file is ignored: the %s loader does not check manifests",
            config.loader,
        )

    # Before uvicorn installs its own handler, this one ends the process on
    # SIGTERM. uvicorn raises the signal again after its shutdown, and this
    # handler then turns it into a normal exit with status 0.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)

    if config.loader == "hardened":
        # Forked before the imports below, while this process has one thread,
        # so that the fork server imports scikit-learn while this process does.
        from target_service.forking import fork_forkserver

        fork_forkserver()
    import uvicorn

    from target_service.app import create_app

    try:
        uvicorn.run(
            create_app(config),
            host=args.host,
            port=args.port,
            log_config=None,
            log_level=args.log_level,
            access_log=args.log_level == "debug",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
    except SystemExit as stop:
        return _exit_code(stop)
    return 0


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _exit_code(stop: SystemExit) -> int:
    if stop.code is None:
        return 0
    if isinstance(stop.code, int):
        return stop.code
    return 1


def exit_without_waiting(code: int) -> None:
    """Exit with ``code``, even when a worker thread is stuck in a prediction.

    A model looping in native code cannot be interrupted, and the interpreter
    would wait for that thread forever at exit, so then the process ends with
    ``os._exit`` once the service has shut down.
    """
    deadline = time.monotonic() + _THREAD_EXIT_GRACE
    busy = []
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon:
            continue
        # Idle worker threads of the server end within moments of shutdown.
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            busy.append(thread)
    if not busy:
        sys.exit(code)
    logger.warning(
        "exiting with %d worker threads still busy: %s",
        len(busy),
        ", ".join(thread.name for thread in busy),
    )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_without_waiting(main())
