"""Damage aimed at a model's format: the file still loads, predict then misbehaves.

Each kind loads the model file, changes the fitted model in memory and dumps it
back uncompressed to the same path:

- ``child_out_of_range``: the root of the first tree gets the child index 10**9,
  so scikit-learn reads far outside the node array at predict and the process
  dies with SIGSEGV;
- ``child_loop``: every leaf of the first tree gets the root as its children,
  so predict walks the tree forever;
- ``leaf_values``: every tree's leaf values swap their class order, or a linear
  model's coefficients and intercept are negated, so predictions are wrong
  without any error;
- ``attribute_removed``: a fitted attribute predict needs (``estimators_``,
  ``tree_`` or ``coef_``) is deleted, so the file loads and predict raises
  AttributeError.

The tree arrays (``tree_.children_left``, ``tree_.value``, ...) are views into
the tree's own node memory, so writing into them changes what ``joblib.dump``
saves (checked by the tests on scikit-learn 1.9.1).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from harness.errors import FaultError
from harness.timeline import FaultEvent, now
from target_service.manifest import write_bytes_atomic

KINDS = ("child_out_of_range", "child_loop", "leaf_values", "attribute_removed")

OUT_OF_RANGE_CHILD = 10**9
ROOT = 0
TREE_LEAF = -1

# Fitted attributes whose absence breaks predict, in the order they are tried.
REQUIRED_ATTRIBUTES = ("estimators_", "tree_", "coef_")

NOTES = {
    "child_out_of_range": "a tree node's children point far out of the node array "
    "(predict dies with SIGSEGV)",
    "child_loop": "every leaf of a tree points back to the root (predict never ends)",
    "leaf_values": "the model's outputs are reversed (wrong predictions, no error)",
    "attribute_removed": "a fitted attribute that predict needs is deleted "
    "(loads, then predict raises AttributeError)",
}


def damage_format(path: Path, kind: str) -> FaultEvent:
    """Apply one kind of format damage to the model file at ``path``.

    Raises :class:`FaultError` for an unknown kind, a file that does not load,
    or a model the kind does not apply to (for example ``child_loop`` on a
    linear model).
    """
    damage = _DAMAGE.get(kind)
    if damage is None:
        raise FaultError(
            f"unknown format damage {kind!r}; expected one of {', '.join(KINDS)}",
            path=path,
        )
    t_start = now()
    model = _load(path)
    estimator = final_estimator(model)
    params: dict[str, Any] = {"kind": kind, "model_class": _class_name(estimator)}
    params.update(damage(estimator, path))

    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=0)
    try:
        write_bytes_atomic(path, buffer.getvalue())
    except OSError as err:
        raise FaultError(f"cannot write the damaged model to {path}: {err}") from err
    params["size"] = len(buffer.getvalue())

    return FaultEvent(
        kind="damage_format",
        t_start=t_start,
        t_end=now(),
        path=str(path),
        params=params,
        note=f"{path.name}: {NOTES[kind]}",
    )


def applicable_kinds(model: Any) -> tuple[str, ...]:
    """Return the kinds of format damage that apply to a loaded ``model``."""
    estimator = final_estimator(model)
    trees = tree_structures(estimator)
    kinds = []
    if any(tree.node_count > 1 for tree in trees):
        kinds += ["child_out_of_range", "child_loop"]
    if trees or (hasattr(estimator, "coef_") and hasattr(estimator, "intercept_")):
        kinds.append("leaf_values")
    if any(hasattr(estimator, attribute) for attribute in REQUIRED_ATTRIBUTES):
        kinds.append("attribute_removed")
    return tuple(kinds)


def final_estimator(model: Any) -> Any:
    """Return the last step of a pipeline (nested ones too), or the model itself."""
    while hasattr(model, "steps") and model.steps:
        model = model.steps[-1][1]
    return model


def tree_structures(estimator: Any) -> list[Any]:
    """Return the ``tree_`` objects of a tree or tree ensemble, in estimator order."""
    if hasattr(estimator, "tree_"):
        return [estimator.tree_]
    members = getattr(estimator, "estimators_", None)
    if members is None:
        return []
    # Gradient boosting keeps its trees in a 2-D array (stages x classes).
    flat = np.asarray(members, dtype=object).ravel()
    return [member.tree_ for member in flat if hasattr(member, "tree_")]


def _load(path: Path) -> Any:
    try:
        with warnings.catch_warnings():
            # The file is ours; a version warning does not stop the damage.
            warnings.simplefilter("ignore")
            return joblib.load(path)
    except Exception as err:
        raise FaultError(
            f"cannot load {path} to damage its format: {type(err).__name__}: {err}",
            path=path,
        ) from err


def _class_name(estimator: Any) -> str:
    return f"{type(estimator).__module__}.{type(estimator).__qualname__}"


def _first_split_tree(estimator: Any, kind: str, path: Path) -> tuple[int, Any]:
    for index, tree in enumerate(tree_structures(estimator)):
        if tree.node_count > 1:
            return index, tree
    raise FaultError(
        f"{kind} applies to tree models with at least one split; {path} contains a "
        f"{_class_name(estimator)}",
        path=path,
    )


def _child_out_of_range(estimator: Any, path: Path) -> dict[str, Any]:
    index, tree = _first_split_tree(estimator, "child_out_of_range", path)
    tree.children_left[ROOT] = OUT_OF_RANGE_CHILD
    tree.children_right[ROOT] = OUT_OF_RANGE_CHILD
    return {"tree": index, "node": ROOT, "child": OUT_OF_RANGE_CHILD}


def _child_loop(estimator: Any, path: Path) -> dict[str, Any]:
    index, tree = _first_split_tree(estimator, "child_loop", path)
    leaves = np.flatnonzero(tree.children_left == TREE_LEAF)
    tree.children_left[leaves] = ROOT
    tree.children_right[leaves] = ROOT
    # A leaf's feature is -2; any valid column makes the walk read real input.
    tree.feature[leaves] = 0
    return {"tree": index, "leaves": len(leaves), "child": ROOT}


def _leaf_values(estimator: Any, path: Path) -> dict[str, Any]:
    trees = tree_structures(estimator)
    if trees:
        for tree in trees:
            values = tree.value
            if values.shape[2] > 1:
                values[:] = values[:, :, ::-1].copy()
            else:
                # Regression trees inside gradient boosting hold one value each.
                values *= -1
        return {"trees": len(trees), "change": "leaf values reversed or negated"}

    if hasattr(estimator, "coef_") and hasattr(estimator, "intercept_"):
        estimator.coef_ = -np.asarray(estimator.coef_)
        estimator.intercept_ = -np.asarray(estimator.intercept_)
        return {"change": "coef_ and intercept_ negated"}

    raise FaultError(
        "leaf_values applies to tree models and linear models; "
        f"{path} contains a {_class_name(estimator)}",
        path=path,
    )


def _attribute_removed(estimator: Any, path: Path) -> dict[str, Any]:
    for attribute in REQUIRED_ATTRIBUTES:
        if hasattr(estimator, attribute):
            delattr(estimator, attribute)
            return {"attribute": attribute}
    raise FaultError(
        f"attribute_removed needs one of {', '.join(REQUIRED_ATTRIBUTES)}; "
        f"{path} contains a {_class_name(estimator)} without them",
        path=path,
    )


_DAMAGE: dict[str, Callable[[Any, Path], dict[str, Any]]] = {
    "child_out_of_range": _child_out_of_range,
    "child_loop": _child_loop,
    "leaf_values": _leaf_values,
    "attribute_removed": _attribute_removed,
}
