"""Installing a model pickled by another scikit-learn version as the primary."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import FaultError
from harness.faults import install_foreign
from harness.models import ModelSet
from target_service.manifest import read_manifest, sha256_bytes, signature_valid

KEY = b"k" * 32


@pytest.mark.parametrize("model", ["global_model", "champion_model"])
def test_install_foreign_default_version(
    model_set: ModelSet, tmp_path: Path, model: str
) -> None:
    event = install_foreign(model_set, tmp_path, model, key=KEY)

    path = tmp_path / f"{model}.pkl"
    known = model_set.get(model, "sklearn-1.2.2")
    manifest = read_manifest(path)
    assert event.kind == "version_mismatch"
    assert event.path == str(path)
    assert event.params == {"version": "sklearn-1.2.2", "sklearn_version": "1.2.2"}
    assert sha256_bytes(path.read_bytes()) == known.sha256
    assert manifest.sklearn_version == "1.2.2"
    assert manifest.numpy_version == "1.26.4"
    assert signature_valid(manifest, KEY)


def test_install_foreign_rejects_current_version(
    model_set: ModelSet, tmp_path: Path
) -> None:
    with pytest.raises(FaultError, match="global_model@v1 was pickled by the running"):
        install_foreign(model_set, tmp_path, "global_model", "v1", key=KEY)


def test_install_foreign_without_foreign_file(
    model_set: ModelSet, tmp_path: Path
) -> None:
    only_current = ModelSet(
        model_set.names,
        model_set.canary_inputs,
        {key: known for key, known in model_set.known.items() if not known.foreign},
    )

    with pytest.raises(FaultError) as raised:
        install_foreign(only_current, tmp_path, "global_model", key=KEY)

    assert str(raised.value) == (
        "the model set has no global_model pickled by another scikit-learn version"
    )
