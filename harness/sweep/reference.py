"""The undamaged model file of a sweep, and the canary outputs copies are judged on.

The canary inputs come from the first of these that exists:

1. the inputs the caller passes;
2. a manifest next to the file that matches it;
3. the ``reference.json`` that ``models/train.py`` writes next to the built-in
   models;
4. rows drawn from the model's ``n_features_in_``, as the publisher draws them.

The outputs are always predicted here from the undamaged model.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import sklearn

from harness.errors import UsageError
from target_service.config import check_model_name
from target_service.failures import describe_exception
from target_service.manifest import (
    Manifest,
    ManifestError,
    read_manifest,
    sha256_bytes,
)
from target_service.publish import PublishError, build_manifest, make_canary_inputs

REFERENCE_FILE = "reference.json"

# A file whose name does not start with a valid model name is recorded as this.
DEFAULT_MODEL_NAME = "model"


@dataclass(frozen=True)
class Reference:
    """The undamaged file and its manifest, which records the canary outputs.

    ``manifest`` is unsigned. ``canary_source`` names where its canary inputs
    came from: ``argument``, ``manifest``, ``reference.json`` or ``drawn``.
    """

    path: Path
    data: bytes
    sha256: str
    manifest: Manifest
    canary_source: str

    @property
    def model_name(self) -> str:
        return self.manifest.model


def load_reference(
    path: Path, canary_inputs: list[list[float]] | None = None
) -> Reference:
    """Read and load the undamaged model file, and record its canary outputs.

    Raises :class:`UsageError` naming the file when it is missing, does not
    load, is not a classifier, or fails on its canary inputs.
    """
    data = _read(path)
    model, pickled_by = _load(path, data)
    sha256 = sha256_bytes(data)

    source = "argument"
    if canary_inputs is None:
        canary_inputs, source = _canary_inputs(path, sha256, model)
    try:
        manifest = build_manifest(
            _model_name(path),
            data,
            model,
            canary_inputs,
            versions={"sklearn_version": pickled_by},
        )
    except PublishError as err:
        raise UsageError(f"model file {path}: {err}") from err
    return Reference(path, data, sha256, manifest, source)


def _read(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(
            f"model file {path} not found; pass the path of a joblib model file"
        ) from None
    except OSError as err:
        raise UsageError(
            f"cannot read model file {path}: {err.strerror or err}; pass a readable "
            "joblib model file"
        ) from err
    if not data:
        raise UsageError(f"model file {path} is empty; pass a joblib model file")
    return data


def _load(path: Path, data: bytes) -> tuple[Any, str]:
    """Load the model; return it and the scikit-learn version that pickled it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = joblib.load(io.BytesIO(data))
        except Exception as err:
            raise UsageError(
                f"cannot load model file {path} with scikit-learn "
                f"{sklearn.__version__}: {describe_exception(err)}; pass a joblib "
                "file of a fitted model that loads here"
            ) from err

    pickled_by = str(sklearn.__version__)
    for warning in caught:
        original = getattr(warning.message, "original_sklearn_version", None)
        if isinstance(original, str):
            pickled_by = original

    missing = [
        method
        for method in ("predict", "predict_proba")
        if not callable(getattr(model, method, None))
    ]
    if missing:
        raise UsageError(
            f"model file {path} contains a {type(model).__name__} without "
            f"{' and '.join(missing)}; the sweep needs a fitted classifier"
        )
    return model, pickled_by


def _model_name(path: Path) -> str:
    name = path.name.split(".", 1)[0]
    try:
        return check_model_name(name)
    except ValueError:
        return DEFAULT_MODEL_NAME


def _canary_inputs(
    path: Path, sha256: str, model: Any
) -> tuple[list[list[float]], str]:
    try:
        manifest = read_manifest(path)
    except ManifestError:
        manifest = None
    if manifest is not None and manifest.sha256 == sha256:
        return manifest.canary.inputs, "manifest"

    from_reference = _reference_inputs(path, sha256)
    if from_reference is not None:
        return from_reference, REFERENCE_FILE

    try:
        return make_canary_inputs(model), "drawn"
    except PublishError as err:
        raise UsageError(f"model file {path}: {err}") from err


def _reference_inputs(path: Path, sha256: str) -> list[list[float]] | None:
    """Return the canary inputs ``models/train.py`` recorded for this very file."""
    try:
        reference = json.loads((path.parent / REFERENCE_FILE).read_text("utf-8"))
        for entry in reference["models"].values():
            if entry["file"] == path.name and entry["sha256"] == sha256:
                inputs = reference["canary_inputs"][entry["model"]]
                return [[float(value) for value in row] for row in inputs]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None
