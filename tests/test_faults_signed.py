"""A damaged file with a correctly signed manifest of the undamaged model's outputs."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pytest

from harness.errors import FaultError
from harness.faults import damage_format, sign_damaged
from harness.models import ModelSet
from target_service.manifest import read_manifest, sha256_bytes, signature_valid

KEY = b"k" * 32


def test_sign_damaged_manifest(model_set: ModelSet, tmp_path: Path) -> None:
    model_set.populate(tmp_path, key=KEY, backup=False)
    path = tmp_path / "global_model.pkl"
    reference = model_set.get("global_model", "v1")
    damage_format(path, "leaf_values")

    event = sign_damaged(path, reference, key=KEY)
    manifest = read_manifest(path)

    data = path.read_bytes()
    assert manifest.sha256 == sha256_bytes(data)
    assert manifest.size == len(data)
    assert signature_valid(manifest, KEY)
    assert manifest.canary.inputs == model_set.canary_inputs["global_model"]
    assert manifest.canary.probabilities == reference.probabilities
    assert manifest.canary.predictions == reference.predictions
    assert manifest.sklearn_version == reference.sklearn_version
    assert event.kind == "sign_damaged"
    assert event.params["reference"] == "global_model@v1"


def test_sign_damaged_outputs_differ_from_file(
    model_set: ModelSet, tmp_path: Path
) -> None:
    model_set.populate(tmp_path, key=KEY, backup=False)
    path = tmp_path / "global_model.pkl"
    damage_format(path, "leaf_values")

    sign_damaged(path, model_set.get("global_model", "v1"), key=KEY)
    manifest = read_manifest(path)

    actual = joblib.load(path).predict_proba(np.asarray(manifest.canary.inputs))
    assert not np.allclose(actual, manifest.canary.probabilities, atol=1e-6)


def test_sign_damaged_explicit_inputs(model_set: ModelSet, tmp_path: Path) -> None:
    path = tmp_path / "champion_model.pkl"
    path.write_bytes(b"damaged bytes")
    inputs = model_set.canary_inputs["champion_model"]

    sign_damaged(
        path, model_set.get("champion_model", "v2"), key=KEY, canary_inputs=inputs
    )

    assert read_manifest(path).canary.inputs == inputs


def test_sign_damaged_without_inputs(model_set: ModelSet, tmp_path: Path) -> None:
    path = tmp_path / "global_model.pkl"
    path.write_bytes(b"damaged bytes")

    with pytest.raises(
        FaultError, match=r"no canary inputs for .*; pass canary_inputs"
    ):
        sign_damaged(path, model_set.get("global_model", "v1"), key=KEY)


def test_sign_damaged_input_count_mismatch(model_set: ModelSet, tmp_path: Path) -> None:
    path = tmp_path / "global_model.pkl"
    path.write_bytes(b"damaged bytes")

    with pytest.raises(FaultError) as raised:
        sign_damaged(
            path, model_set.get("global_model", "v1"), key=KEY, canary_inputs=[[0.0]]
        )

    assert str(raised.value) == (
        f"1 canary inputs for {path}, but global_model@v1 has reference outputs for 8"
    )
