"""What a loader did with one damaged copy, and how its predictions are judged.

- ``rejected``: the loader refused the copy before serving it;
- ``identical``: it served the copy, and the canary predictions equal the
  undamaged model's;
- ``silent_corruption``: it served the copy, and the canary predictions differ;
- ``predict_error``: it served the copy (or, for the naive loader, nothing),
  and predicting raised;
- ``crash``: the process died, with the signal named;
- ``hang``: the process did not finish within the timeout.

The last four are dangerous, because each is a service that returns wrong
predictions, fails requests or dies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.models import MATCH_TOLERANCE
from target_service.failures import describe_exception
from target_service.manifest import Canary

VERDICTS = (
    "rejected",
    "identical",
    "silent_corruption",
    "predict_error",
    "crash",
    "hang",
)
DANGEROUS = frozenset({"silent_corruption", "predict_error", "crash", "hang"})

# Error texts from a case process are cut to this many characters.
MAX_ERROR = 500


@dataclass(frozen=True)
class Outcome:
    """The verdict on one damaged copy, with the error or signal behind it.

    ``signal`` is the name of the signal that ended the process (``SIGSEGV``)
    for a crash. ``error`` is the exception or reason, ``Type: message``.
    """

    verdict: str
    error: str | None = None
    signal: str | None = None

    @property
    def dangerous(self) -> bool:
        return self.verdict in DANGEROUS

    def to_message(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "error": self.error, "signal": self.signal}

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Outcome:
        return cls(message["verdict"], message.get("error"), message.get("signal"))


def error_text(err: BaseException) -> str:
    return describe_exception(err)[:MAX_ERROR]


def judge_predictions(model: Any, canary: Canary) -> Outcome:
    """Predict the canary inputs as the service's /predict does, and compare.

    The service calls ``predict`` and then ``predict_proba``. Probabilities
    match within the harness's tolerance (1e-6), and predicted classes match
    exactly.
    """
    inputs = np.asarray(canary.inputs, dtype=np.float64)
    try:
        predictions = model.predict(inputs).tolist()
        probabilities = np.asarray(model.predict_proba(inputs), dtype=np.float64)
    except BaseException as err:
        # A loaded pickle can run any code, sys.exit() included.
        return Outcome("predict_error", error_text(err))

    expected = np.asarray(canary.probabilities, dtype=np.float64)
    if probabilities.shape != expected.shape:
        return Outcome(
            "silent_corruption",
            f"probabilities have shape {probabilities.shape}, the undamaged model's "
            f"have {expected.shape}",
        )
    if not np.allclose(probabilities, expected, rtol=0.0, atol=MATCH_TOLERANCE):
        difference = np.abs(probabilities - expected)
        largest = "NaN" if np.isnan(difference).any() else f"{difference.max():.3g}"
        return Outcome(
            "silent_corruption",
            f"probabilities differ from the undamaged model's by up to {largest}",
        )
    if predictions != canary.predictions:
        differing = sum(
            got != want
            for got, want in zip(predictions, canary.predictions, strict=False)
        )
        differing += abs(len(predictions) - len(canary.predictions))
        return Outcome(
            "silent_corruption",
            f"predicted classes differ on {differing} of {len(predictions)} "
            "canary rows",
        )
    return Outcome("identical")
