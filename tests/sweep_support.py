"""A small real forest for the sweep tests, and damage aimed at its node records.

Ten trees of depth at most five load and predict in a few milliseconds, so a
test can run dozens of damaged copies in about a second.
"""

from __future__ import annotations

import struct
from functools import cache
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier

from harness.sweep.damage import Damage, Flip, flips_between
from harness.sweep.layout import ArrayPayload, read_layout

NODE_FIELDS = ("left_child", "right_child", "feature", "threshold")


@cache
def small_forest() -> RandomForestClassifier:
    features, labels = load_breast_cancer(return_X_y=True)
    forest = RandomForestClassifier(
        n_estimators=10, max_depth=5, random_state=0, n_jobs=1
    )
    return forest.fit(features, labels)


def canary_inputs(count: int = 8) -> list[list[float]]:
    """Return real rows of the training data, spread over both classes."""
    features, _ = load_breast_cancer(return_X_y=True)
    rows = features[:: len(features) // count][:count]
    return [[float(value) for value in row] for row in rows]


def write_forest(directory: Path, *, compress: int = 0) -> Path:
    """Dump the small forest to ``directory/global_model.pkl`` and return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "global_model.pkl"
    joblib.dump(small_forest(), path, compress=compress)
    return path


def node_arrays(data: bytes) -> list[ArrayPayload]:
    """Return the payloads of the trees' node records, in tree order."""
    return [p for p in read_layout(data).arrays if "left_child" in p.dtype]


def field_flips(
    data: bytes, payload: ArrayPayload, element: int, field: str, value: Any
) -> tuple[Flip, ...]:
    """Return the flips that set ``field`` of node ``element`` to ``value``."""
    (match,) = [f for f in payload.fields if f.name == field]
    offset = payload.start + element * payload.itemsize + match.offset
    code = "<d" if isinstance(value, float) else "<q"
    new = struct.pack(code, value)
    return flips_between(data[offset : offset + match.size], new, offset)


def node_damage(
    data: bytes, index: int, changes: dict[tuple[int, str], Any], *, tree: int = 0
) -> Damage:
    """Return a copy whose tree ``tree`` has node fields set as in ``changes``.

    ``changes`` maps (node, field) to the new value.
    """
    payload = node_arrays(data)[tree]
    flips: list[Flip] = []
    for (element, field), value in changes.items():
        flips.extend(field_flips(data, payload, element, field, value))
    return Damage("array", index, tuple(sorted(flips)))


def leaves(tree: int = 0) -> np.ndarray:
    """Return the node numbers of the leaves of one tree of the small forest."""
    structure = small_forest().estimators_[tree].tree_
    return np.flatnonzero(structure.children_left == -1)
