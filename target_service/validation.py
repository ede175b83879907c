"""Validating a model file in a child process before the service loads it.

A damaged model can make scikit-learn crash with SIGSEGV or loop forever in
``predict``, which no ``try``/``except`` survives. Each candidate is therefore
unpickled and run on its manifest's canary inputs in a process of its own, with
a timeout. The processes come from the fork server of
:mod:`target_service.forking`, so one validation costs a fork, not an
interpreter start.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from target_service.failures import (
    CANARY_MISMATCH,
    LOAD_ERROR,
    MANIFEST_INVALID,
    PREDICT_ERROR,
    TREE_INVALID,
    VALIDATION_CRASHED,
    VALIDATION_TIMEOUT,
    LoadFailure,
    describe_exception,
)
from target_service.forking import start_forkserver
from target_service.manifest import Canary
from target_service.unpickle import load_model_bytes

logger = logging.getLogger(__name__)

# Outputs of the same file on the same libraries are identical, and the
# tolerance only absorbs BLAS rounding across builds.
CANARY_TOLERANCE = 1e-9

# A validation process that outlives the parent's timeout by this many seconds
# ends itself, so that a looping model cannot outlive a killed service.
_WATCHDOG_GRACE = 2.0

# How long a process that has sent its result may take to exit, in seconds.
_EXIT_GRACE = 2.0


class Validator:
    """Run candidate model files in child processes with a timeout."""

    def __init__(self, timeout: float, version_match: str) -> None:
        self.timeout = timeout
        self.version_match = version_match
        self._context = get_context("forkserver")

    def start(self) -> None:
        """Start the fork server now, so its imports overlap with the service's."""
        start_forkserver()

    def validate(self, data: bytes, canary: Canary, label: str) -> None:
        """Unpickle ``data`` in a child process and compare its canary outputs.

        ``label`` names the file in the validation process's name. Raises
        :class:`LoadFailure` when the model fails to load, differs from the
        canary, crashes the process or runs past the timeout.
        """
        # A fork server started without the preload list would import
        # scikit-learn again in every validation process.
        start_forkserver()
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_validate_in_child,
            args=(sender, data, canary, self.version_match, self.timeout),
            name=f"validate {label}",
            daemon=True,
        )
        try:
            try:
                process.start()
            except OSError as err:
                raise LoadFailure(
                    VALIDATION_CRASHED,
                    f"could not start a validation process: {describe_exception(err)}",
                ) from err
            finally:
                sender.close()
            failure = self._wait_for_result(process, receiver)
        finally:
            receiver.close()
            _reap(process)
        if failure is not None:
            raise failure

    def _wait_for_result(
        self, process: BaseProcess, receiver: Connection
    ) -> LoadFailure | None:
        ready = wait([receiver, process.sentinel], timeout=self.timeout)
        if receiver in ready:
            try:
                result: LoadFailure | None = receiver.recv()
                return result
            except EOFError:
                pass  # the process died before it sent a result
        if not ready:
            process.kill()
            process.join()
            return LoadFailure(
                VALIDATION_TIMEOUT, f"validation timed out after {self.timeout} s"
            )
        process.join()
        return LoadFailure(VALIDATION_CRASHED, _describe_exit(process.exitcode))


def check_canary(model: Any, canary: Canary) -> None:
    """Raise :class:`LoadFailure` unless ``model`` reproduces the canary outputs."""
    if not canary.inputs:
        raise LoadFailure(MANIFEST_INVALID, "manifest has no canary inputs")
    try:
        inputs = np.asarray(canary.inputs, dtype=np.float64)
        expected = np.asarray(canary.probabilities, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise LoadFailure(
            MANIFEST_INVALID, f"manifest canary is not numeric: {err}"
        ) from err

    try:
        probabilities = np.asarray(model.predict_proba(inputs), dtype=np.float64)
        predictions = model.predict(inputs).tolist()
    except Exception as err:
        raise LoadFailure(
            PREDICT_ERROR, f"canary prediction failed: {describe_exception(err)}"
        ) from err

    if probabilities.shape != expected.shape:
        raise LoadFailure(
            CANARY_MISMATCH,
            "canary outputs differ from the manifest: probabilities have shape "
            f"{probabilities.shape}, the manifest records {expected.shape}",
        )
    if not np.allclose(probabilities, expected, rtol=0.0, atol=CANARY_TOLERANCE):
        largest = float(np.max(np.abs(probabilities - expected)))
        raise LoadFailure(
            CANARY_MISMATCH,
            "canary outputs differ from the manifest: probabilities differ by up "
            f"to {largest:.3g} (tolerance {CANARY_TOLERANCE:g})",
        )
    if predictions != canary.predictions:
        differing = sum(
            1
            for got, recorded in zip(predictions, canary.predictions, strict=False)
            if got != recorded
        )
        differing += abs(len(predictions) - len(canary.predictions))
        raise LoadFailure(
            CANARY_MISMATCH,
            "canary outputs differ from the manifest: predictions differ on "
            f"{differing} of {len(predictions)} rows",
        )


def check_tree_links(model: Any) -> None:
    """Raise :class:`LoadFailure` when a decision tree in ``model`` is malformed.

    scikit-learn does not check a tree's node links when it unpickles one, and
    its predict then follows whatever links it finds. A child index outside the node
    array reads memory that changes from run to run, so the canary outputs may
    come out right in validation and wrong in the serving process. scikit-learn
    appends each node after its parent, so every child index is above its
    parent's and below the node count; a leaf has no child on either side; and
    a split uses one of the model's features.
    """
    for label, tree in _trees(model, "model"):
        nodes = int(tree.node_count)
        left = np.asarray(tree.children_left)
        right = np.asarray(tree.children_right)
        feature = np.asarray(tree.feature)
        index = np.arange(nodes)
        leaf = left == -1
        split = ~leaf
        broken = (
            (leaf != (right == -1))
            | (split & ((left <= index) | (left >= nodes)))
            | (split & ((right <= index) | (right >= nodes)))
            | (split & ((feature < 0) | (feature >= int(tree.n_features))))
        )
        if np.any(broken):
            node = int(np.argmax(broken))
            raise LoadFailure(
                TREE_INVALID,
                f"{label} is malformed at node {node} of {nodes}: children "
                f"{int(left[node])} and {int(right[node])}, feature "
                f"{int(feature[node])} of {int(tree.n_features)}",
            )


def _trees(model: Any, label: str) -> Iterator[tuple[str, Any]]:
    """Yield the trees inside ``model``: its own, its estimators' and its steps'."""
    tree = getattr(model, "tree_", None)
    if tree is not None and hasattr(tree, "children_left"):
        yield label, tree
    estimators = getattr(model, "estimators_", None)
    if estimators is not None:
        # A forest keeps a list, gradient boosting a 2-D array of trees.
        for number, estimator in enumerate(np.ravel(np.asarray(estimators, object))):
            yield from _trees(estimator, f"{label} tree {number}")
    for name, step in getattr(model, "steps", None) or ():
        yield from _trees(step, f"{label} step {name}")


def _validate_in_child(
    sender: Connection,
    data: bytes,
    canary: Canary,
    version_match: str,
    timeout: float,
) -> None:
    # The default action of SIGALRM ends the process even while the model
    # loops in native code with the GIL released.
    signal.setitimer(signal.ITIMER_REAL, timeout + _WATCHDOG_GRACE)
    result: LoadFailure | None = None
    try:
        with threadpool_limits(limits=1):
            model = load_model_bytes(data, version_match)
            check_canary(model, canary)
            # After the canary, so that a tree whose predict crashes or loops
            # is still rejected for that, in the words the operator expects.
            check_tree_links(model)
    except LoadFailure as failure:
        result = failure
    except BaseException as err:
        # A pickle can run arbitrary code, including sys.exit().
        result = LoadFailure(LOAD_ERROR, describe_exception(err))
    sender.send(result)
    sender.close()


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"validation process died with {name}"
    return f"validation process exited with status {exitcode} before sending a result"


def _reap(process: BaseProcess) -> None:
    if process.pid is None:
        return
    process.join(_EXIT_GRACE)
    if process.exitcode is None:
        logger.warning(
            "validation process %d did not exit after sending its result; killing it",
            process.pid,
        )
        process.kill()
        process.join()
    process.close()
