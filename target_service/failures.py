"""Why a model file was rejected: a label for metrics and a message for people."""

from __future__ import annotations

# Reasons are Prometheus label values, so the set is fixed and small.
MISSING = "missing"
NOT_REGULAR_FILE = "not_regular_file"
UNREADABLE = "unreadable"
MANIFEST_INVALID = "manifest_invalid"
SIGNATURE_INVALID = "signature_invalid"
UPDATE_IN_PROGRESS = "update_in_progress"
VERSION_MISMATCH = "version_mismatch"
LOAD_ERROR = "load_error"
NOT_A_MODEL = "not_a_model"
PREDICT_ERROR = "predict_error"
CANARY_MISMATCH = "canary_mismatch"
TREE_INVALID = "tree_invalid"
VALIDATION_TIMEOUT = "validation_timeout"
VALIDATION_CRASHED = "validation_crashed"


class LoadFailure(Exception):
    """A model file that must not be served, with the reason and a readable message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __reduce__(self) -> tuple[type[LoadFailure], tuple[str, str]]:
        # Validation processes send failures back through a pipe.
        return (type(self), (self.reason, self.message))


def describe_exception(err: BaseException) -> str:
    """Return ``Type: message``, the form the service reports caught errors in."""
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def classify_exception(err: BaseException) -> str:
    """Return the failure reason for an exception raised while loading a file."""
    if isinstance(err, FileNotFoundError):
        return MISSING
    if isinstance(err, OSError):
        return UNREADABLE
    return LOAD_ERROR
