"""Format damage on the real reference models: crash, endless loop, wrong outputs."""

from __future__ import annotations

import signal
from pathlib import Path

import joblib
import numpy as np
import pytest
from models_support import copy_model, predict_in_child, predicted_probabilities

from harness.errors import FaultError
from harness.faults import damage_format
from harness.faults.format import OUT_OF_RANGE_CHILD, final_estimator
from harness.models import ModelSet


def test_child_out_of_range_loads_then_segfaults(
    model_set: ModelSet, tmp_path: Path
) -> None:
    path = copy_model(model_set, "global_model", "v1", tmp_path)

    event = damage_format(path, "child_out_of_range")
    result = predict_in_child(path, model_set.canary_inputs["global_model"])

    assert event.params["child"] == OUT_OF_RANGE_CHILD
    assert result.loaded, result.stderr
    assert not result.hung
    assert result.returncode == -signal.SIGSEGV, result.stderr


def test_child_loop_loads_then_hangs(model_set: ModelSet, tmp_path: Path) -> None:
    path = copy_model(model_set, "global_model", "v1", tmp_path)

    event = damage_format(path, "child_loop")
    result = predict_in_child(path, model_set.canary_inputs["global_model"])

    assert event.params["leaves"] > 0
    assert result.loaded, result.stderr
    assert result.hung


def test_undamaged_copy_predicts_in_child(model_set: ModelSet, tmp_path: Path) -> None:
    path = copy_model(model_set, "global_model", "v1", tmp_path)

    result = predict_in_child(path, model_set.canary_inputs["global_model"])

    assert model_set.identify("global_model", predicted_probabilities(result))


def test_tree_writes_persist_through_dump(model_set: ModelSet, tmp_path: Path) -> None:
    out_of_range = copy_model(model_set, "global_model", "v1", tmp_path / "a")
    loop = copy_model(model_set, "global_model", "v1", tmp_path / "b")

    damage_format(out_of_range, "child_out_of_range")
    damage_format(loop, "child_loop")

    # Loading is safe; only predict walks the damaged nodes.
    first_tree = joblib.load(out_of_range).estimators_[0].tree_
    assert first_tree.children_left[0] == OUT_OF_RANGE_CHILD
    assert first_tree.children_right[0] == OUT_OF_RANGE_CHILD
    looped = joblib.load(loop).estimators_[0].tree_
    assert np.all(looped.children_left != -1)
    assert np.all(looped.children_right != -1)


@pytest.mark.parametrize("model", ["global_model", "champion_model"])
def test_leaf_values_reverse_predictions(
    model_set: ModelSet, tmp_path: Path, model: str
) -> None:
    path = copy_model(model_set, model, "v1", tmp_path)
    reference = model_set.get(model, "v1")
    inputs = np.asarray(model_set.canary_inputs[model])

    event = damage_format(path, "leaf_values")
    damaged = joblib.load(path)

    probabilities = damaged.predict_proba(inputs)
    expected = np.asarray(reference.probabilities)[:, ::-1]
    assert np.allclose(probabilities, expected, atol=1e-9)
    assert list(damaged.predict(inputs)) != reference.predictions
    assert model_set.identify(model, probabilities.tolist()) == ()
    assert event.params["kind"] == "leaf_values"


@pytest.mark.parametrize(
    ("model", "attribute"),
    [("global_model", "estimators_"), ("champion_model", "coef_")],
)
def test_attribute_removed_fails_at_predict(
    model_set: ModelSet, tmp_path: Path, model: str, attribute: str
) -> None:
    path = copy_model(model_set, model, "v1", tmp_path)

    event = damage_format(path, "attribute_removed")
    damaged = joblib.load(path)

    assert event.params["attribute"] == attribute
    assert not hasattr(final_estimator(damaged), attribute)
    with pytest.raises(AttributeError):
        damaged.predict(np.asarray(model_set.canary_inputs[model]))


@pytest.mark.parametrize("kind", ["child_out_of_range", "child_loop"])
def test_tree_damage_rejects_linear_model(
    model_set: ModelSet, tmp_path: Path, kind: str
) -> None:
    path = copy_model(model_set, "champion_model", "v1", tmp_path)
    before = path.read_bytes()

    with pytest.raises(FaultError) as raised:
        damage_format(path, kind)

    assert str(raised.value) == (
        f"{kind} applies to tree models with at least one split; {path} contains a "
        "sklearn.linear_model._logistic.LogisticRegression"
    )
    assert path.read_bytes() == before


def test_damage_format_unknown_kind(model_set: ModelSet, tmp_path: Path) -> None:
    path = copy_model(model_set, "global_model", "v1", tmp_path)

    with pytest.raises(FaultError, match="unknown format damage 'bad_kind'; expected"):
        damage_format(path, "bad_kind")


def test_damage_format_unloadable_file(tmp_path: Path) -> None:
    path = tmp_path / "global_model.pkl"
    path.write_bytes(b"not a pickle")

    with pytest.raises(FaultError, match=r"cannot load .* to damage its format"):
        damage_format(path, "leaf_values")


def test_damage_format_event(model_set: ModelSet, tmp_path: Path) -> None:
    path = copy_model(model_set, "global_model", "v1", tmp_path)

    event = damage_format(path, "child_loop")

    assert event.kind == "damage_format"
    assert event.path == str(path)
    assert event.t_start <= event.t_end
    assert event.params["model_class"] == (
        "sklearn.ensemble._forest.RandomForestClassifier"
    )
    assert event.params["size"] == path.stat().st_size
    assert event.note == (
        "global_model.pkl: every leaf of a tree points back to the root "
        "(predict never ends)"
    )
