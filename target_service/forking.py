"""The fork server that validation processes are forked from.

It imports NumPy, joblib and scikit-learn once, so that each validation
process starts as a fork with them loaded. This module imports none of them
itself, so that the service's entry point can start the fork server before its
own imports and the two run side by side.
"""

from __future__ import annotations

from multiprocessing import forkserver, get_context, resource_tracker

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


def start_forkserver() -> None:
    """Start this process's fork server in the background if it is not running."""
    get_context("forkserver").set_forkserver_preload(PRELOAD_MODULES)
    forkserver.ensure_running()


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
