"""Unpickling model bytes under the service's scikit-learn version policy.

The validation process and the serving process both load through
:func:`load_model_bytes`, so a file passes or fails the same way in each.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import warnings
from typing import Any, BinaryIO

import joblib
import sklearn

from target_service.failures import (
    LOAD_ERROR,
    NOT_A_MODEL,
    VERSION_MISMATCH,
    LoadFailure,
    describe_exception,
)

logger = logging.getLogger(__name__)

_VERSION_WARNING: type[Warning]
try:
    from sklearn.exceptions import InconsistentVersionWarning

    _VERSION_WARNING = InconsistentVersionWarning
except ImportError:
    # scikit-learn before 1.3 warns with a plain UserWarning, recognised by its text.
    _VERSION_WARNING = UserWarning

_OLD_VERSION_WARNING = re.compile(
    r"Trying to unpickle estimator \S+ from version (\S+) "
    r"when using version (\S+?)\.?\s"
)
_MAJOR_MINOR = re.compile(r"(\d+)\.(\d+)")

# warnings.catch_warnings changes process-wide state, so loads in one process
# take turns.
_LOAD_LOCK = threading.Lock()


def versions_compatible(recorded: str, running: str, version_match: str) -> bool:
    """Return whether a model from scikit-learn ``recorded`` may run on ``running``.

    ``version_match`` is ``exact`` (same version string), ``minor`` (same major
    and minor version) or ``any``.
    """
    if version_match == "any":
        return True
    if version_match == "minor":
        recorded_parts = _MAJOR_MINOR.match(recorded)
        running_parts = _MAJOR_MINOR.match(running)
        if recorded_parts is None or running_parts is None:
            return recorded == running
        return recorded_parts.groups() == running_parts.groups()
    return recorded == running


def load_model_bytes(data: bytes, version_match: str) -> Any:
    """Unpickle a model from ``data`` and check that it can predict.

    A scikit-learn version warning raised while unpickling fails the load when
    the pickling version is not allowed by ``version_match``. Raises
    :class:`LoadFailure`.
    """
    return load_model_stream(io.BytesIO(data), version_match)


def load_model_stream(stream: BinaryIO, version_match: str) -> Any:
    """Unpickle a model from a binary stream, as :func:`load_model_bytes` does.

    The stream is read from its current position; the version policy, the
    interface check and the errors are those of :func:`load_model_bytes`.
    """
    with _LOAD_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", category=_VERSION_WARNING)
        try:
            model = joblib.load(stream)
        except Exception as err:
            raise LoadFailure(LOAD_ERROR, describe_exception(err)) from err

    for warning in caught:
        _check_warning(warning, version_match)
    check_model_interface(model)
    return model


def check_model_interface(model: object) -> None:
    """Raise :class:`LoadFailure` unless ``model`` has predict and predict_proba."""
    for method in ("predict", "predict_proba"):
        if not callable(getattr(model, method, None)):
            raise LoadFailure(
                NOT_A_MODEL,
                f"the file contains a {type(model).__name__}, which has no {method} "
                "method",
            )


def _check_warning(warning: warnings.WarningMessage, version_match: str) -> None:
    pickled = _pickled_version(warning)
    if pickled is None:
        logger.warning("warning while unpickling: %s", warning.message)
        return
    running = sklearn.__version__
    if not versions_compatible(pickled, running, version_match):
        raise LoadFailure(
            VERSION_MISMATCH,
            f"pickled by scikit-learn {pickled}, service runs {running} "
            f"(--version-match {version_match})",
        )
    logger.warning(
        "model pickled by scikit-learn %s runs on %s, allowed by --version-match %s",
        pickled,
        running,
        version_match,
    )


def _pickled_version(warning: warnings.WarningMessage) -> str | None:
    message = warning.message
    original = getattr(message, "original_sklearn_version", None)
    if isinstance(original, str):
        return original
    match = _OLD_VERSION_WARNING.search(str(message))
    return match.group(1) if match else None
