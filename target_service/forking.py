"""The fork server that validation processes are forked from.

It imports NumPy, joblib and scikit-learn once, so that each validation
process starts as a fork with them loaded. This module imports none of them
itself, so that the service's entry point can start the fork server before its
own imports and the two run side by side.
"""

from __future__ import annotations

import inspect
import logging
import os
import signal
import socket
import sys
import threading
from multiprocessing import connection, forkserver, get_context, resource_tracker, util

logger = logging.getLogger(__name__)

# The estimator modules are the ones most pickles need; a missing one is
# skipped by the fork server.
PRELOAD_MODULES = [
    "target_service.validation",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "sklearn.tree",
]

# The parameters of multiprocessing.forkserver.main in Python 3.11, whose fork
# server fork_forkserver can set up.
_KNOWN_MAIN_PARAMETERS = ["listener_fd", "alive_r", "preload", "main_path", "sys_path"]


def start_forkserver() -> None:
    """Start this process's fork server in the background if it is not running."""
    get_context("forkserver").set_forkserver_preload(PRELOAD_MODULES)
    forkserver.ensure_running()


def fork_forkserver() -> None:
    """Start the fork server as a fork of this process instead of a new interpreter.

    The standard library starts its fork server as a fresh interpreter, which
    then imports scikit-learn again: about a second of CPU time. A fork starts
    with every module this process has already imported, and imports the rest
    itself, side by side with this process. Forking is only safe while this
    process has one thread, so this must run before the server starts. Anywhere
    else, and on a Python whose ``forkserver.main`` takes other parameters, it
    falls back to :func:`start_forkserver`.

    NOTE: the standard library has no public way to hand it a fork server it
    did not start, so this sets the private fields of its ``ForkServer``, as
    ``ForkServer.ensure_running`` does in Python 3.11.
    """
    server = getattr(forkserver, "_forkserver", None)
    if server is None or not _can_fork_server(server):
        start_forkserver()
        return

    get_context("forkserver").set_forkserver_preload(PRELOAD_MODULES)
    # The tracker is shared by the fork server's children and must exist first.
    resource_tracker.ensure_running()
    with socket.socket(socket.AF_UNIX) as listener:
        address = connection.arbitrary_address("AF_UNIX")  # type: ignore[attr-defined]
        listener.bind(address)
        if not util.is_abstract_socket_namespace(address):
            os.chmod(address, 0o600)
        listener.listen()
        alive_r, alive_w = os.pipe()
        _flush_std_streams()
        pid = os.fork()
        if pid == 0:
            os.close(alive_w)
            _serve_forks(listener.fileno(), alive_r)
        os.close(alive_r)

    server._forkserver_address = address
    server._forkserver_alive_fd = alive_w
    server._forkserver_pid = pid
    logger.debug("fork server forked as pid %d", pid)


def _can_fork_server(server: object) -> bool:
    if threading.active_count() > 1:
        return False
    if getattr(server, "_forkserver_pid", 0) is not None:
        return False  # already running, or a fork server of another shape
    parameters = list(inspect.signature(forkserver.main).parameters)
    return parameters == _KNOWN_MAIN_PARAMETERS


def _serve_forks(listener_fd: int, alive_r: int) -> None:
    """Run the standard fork server loop in this forked child, and never return."""
    code = 1
    try:
        # A fresh interpreter would have Python's default handlers, and a
        # validation process must die of SIGTERM like any other process.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        forkserver.main(listener_fd, alive_r, PRELOAD_MODULES, sys_path=sys.path)
        code = 0
    except SystemExit:
        code = 0  # the loop raises it once every client has gone
    except BaseException:
        sys.excepthook(*sys.exc_info())
    finally:
        _flush_std_streams()
        os._exit(code)


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass


def shutdown_forkserver() -> None:
    """Stop this process's fork server and resource tracker if they run.

    NOTE: the standard library (Python 3.11 to 3.13) has no public way to stop
    them, so this calls their private ``_stop`` methods when present. Both also
    exit by themselves once every process holding their pipes has exited.
    """
    for helper in (
        getattr(forkserver, "_forkserver", None),
        getattr(resource_tracker, "_resource_tracker", None),
    ):
        stop = getattr(helper, "_stop", None)
        if callable(stop):
            stop()
