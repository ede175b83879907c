"""The model served when no model file can be loaded."""

from __future__ import annotations

from typing import Any

import numpy as np

DUMMY_PROBABILITIES = (0.9, 0.1)


class DummyModel:
    """Predict class 0 with probability 0.9 for every row, whatever the input."""

    classes_ = np.array([0, 1])

    def predict(self, X: Any) -> np.ndarray:
        return np.zeros(_row_count(X), dtype=np.int64)

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.tile(np.array(DUMMY_PROBABILITIES), (_row_count(X), 1))


def _row_count(X: Any) -> int:
    return int(np.asarray(X).shape[0])
