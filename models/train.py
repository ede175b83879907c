"""Train the reference models on scikit-learn's bundled breast cancer data set.

``python -m models.train --out DIR`` writes ``DIR/<name>.<version>.pkl`` for each
model and version, uncompressed with ``joblib.dump``, and ``DIR/reference.json``
with the canary inputs and, per ``<name>@<version>``, the file's sha256, its
predicted probabilities and classes on the canary inputs, and the library
versions that wrote it.

Training is deterministic: every estimator has a fixed ``random_state`` and
runs on one thread, so the same settings give the same canary outputs. The
pickled bytes, and so the sha256, can still differ between two interpreter
processes, because pickle writes a repeated string either again or as a
reference to the first one depending on object identity.

The three versions of each model are trained with different settings so that
their canary probabilities differ, so that a prediction alone tells the harness
which file made it. This module runs unchanged on scikit-learn 1.2.2 with
numpy 1.26, which ``models/make_old_fixtures.py`` uses.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from threadpoolctl import threadpool_limits

# scikit-learn is imported inside the functions that train, because importing it
# takes seconds and the harness reads this module's constants on every start.

REFERENCE_FILE = "reference.json"
REFERENCE_FORMAT = 1
MODEL_NAMES = ("global_model", "champion_model")
VERSIONS = ("v1", "v2", "backup")

# Rows of load_breast_cancer() used as canary inputs by both models. Rows 0 and 1
# are clearly class 0 (malignant) and rows 19 and 20 clearly class 1 (benign).
# Rows 135, 255, 363 and 541 are borderline: the v1 models give class 1 a
# probability between 0.2 and 0.9 there, so differently trained versions differ.
CANARY_ROWS = (0, 1, 19, 20, 135, 255, 363, 541)

# Settings per model and version. The random forest of 300 fully grown trees is
# about 1.1 MB as an uncompressed joblib file.
FOREST_SETTINGS: dict[str, dict[str, int]] = {
    "v1": {"n_estimators": 300, "random_state": 0},
    "v2": {"n_estimators": 320, "random_state": 1},
    "backup": {"n_estimators": 280, "random_state": 2},
}
LOGISTIC_SETTINGS: dict[str, dict[str, float]] = {
    "v1": {"C": 1.0},
    "v2": {"C": 0.1},
    "backup": {"C": 10.0},
}

# Two versions must differ by more than this somewhere on the canary rows, far
# above the 1e-6 tolerance the harness matches probabilities with.
MIN_DIFFERENCE = 1e-3


def sklearn_version() -> str:
    """Return the installed scikit-learn version without importing it."""
    return metadata.version("scikit-learn")


def load_data() -> tuple[np.ndarray, np.ndarray]:
    """Return the breast cancer features (569 x 30) and labels (0 malignant)."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return np.asarray(data.data, dtype=np.float64), np.asarray(data.target)


def canary_inputs() -> list[list[float]]:
    """Return the canary rows of the data set as lists of floats."""
    features, _ = load_data()
    return [[float(x) for x in features[row]] for row in CANARY_ROWS]


def build_model(name: str, version: str) -> Any:
    """Return the unfitted estimator of one model and version."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "global_model":
        return RandomForestClassifier(n_jobs=1, **FOREST_SETTINGS[version])
    if name == "champion_model":
        settings = LOGISTIC_SETTINGS[version]
        classifier = LogisticRegression(C=settings["C"], max_iter=5000)
        return Pipeline([("scale", StandardScaler()), ("classify", classifier)])
    raise ValueError(f"unknown model {name!r}; expected one of {MODEL_NAMES}")


def train(name: str, version: str) -> Any:
    """Fit one model and version on the whole data set."""
    features, labels = load_data()
    return build_model(name, version).fit(features, labels)


def model_class(model: Any) -> str:
    """Return the qualified class name of a model, as manifests record it."""
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def library_versions() -> dict[str, str]:
    """Return the versions of the libraries that pickle the models here."""
    return {
        "sklearn_version": sklearn_version(),
        "numpy_version": np.__version__,
        "joblib_version": joblib.__version__,
        "python_version": platform.python_version(),
    }


def canary_outputs(model: Any, inputs: list[list[float]]) -> dict[str, Any]:
    """Return a model's probabilities and predicted classes on the canary inputs."""
    features = np.asarray(inputs, dtype=np.float64)
    probabilities = model.predict_proba(features)
    predictions = model.predict(features)
    return {
        "probabilities": [[float(p) for p in row] for row in probabilities],
        "predictions": [_json_scalar(label) for label in predictions],
    }


def _json_scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def check_distinct(name: str, outputs: dict[str, list[list[float]]]) -> None:
    """Raise RuntimeError when two versions of a model predict alike on the canary."""
    labels = sorted(outputs)
    for i, first in enumerate(labels):
        for second in labels[i + 1 :]:
            a = np.asarray(outputs[first])
            b = np.asarray(outputs[second])
            if float(np.max(np.abs(a - b))) <= MIN_DIFFERENCE:
                raise RuntimeError(
                    f"{name} versions {first} and {second} predict the same "
                    f"probabilities on the canary rows {CANARY_ROWS}; change the "
                    "training settings so that they differ"
                )


def train_models(
    out: Path,
    *,
    versions: Sequence[str] = VERSIONS,
    label: str | None = None,
    file_name: str = "{name}.{version}.pkl",
) -> dict[str, Any]:
    """Train every model in ``versions``, write the files and return the reference.

    ``label`` replaces the version in the reference keys and file names (the old
    fixtures are the ``v1`` settings labelled ``sklearn-1.2.2``). ``file_name`` is
    formatted with ``name`` and ``version``.
    """
    out.mkdir(parents=True, exist_ok=True)
    inputs = canary_inputs()
    reference: dict[str, Any] = {
        "format": REFERENCE_FORMAT,
        "dataset": "sklearn.datasets.load_breast_cancer",
        "canary_rows": list(CANARY_ROWS),
        "canary_inputs": {name: inputs for name in MODEL_NAMES},
        "models": {},
    }

    # One BLAS and OpenMP thread: the order of floating-point sums stays fixed,
    # and no thread pool is left running in a process that may fork later.
    with threadpool_limits(limits=1):
        for name in MODEL_NAMES:
            probabilities: dict[str, list[list[float]]] = {}
            for version in versions:
                shown = label or version
                entry = _train_one(out, name, version, shown, file_name, inputs)
                reference["models"][f"{name}@{shown}"] = entry
                probabilities[shown] = entry["probabilities"]
            check_distinct(name, probabilities)

    write_reference(out, reference)
    return reference


def _train_one(
    out: Path,
    name: str,
    version: str,
    shown: str,
    file_name: str,
    inputs: list[list[float]],
) -> dict[str, Any]:
    model = train(name, version)
    path = out / file_name.format(name=name, version=shown)
    joblib.dump(model, path, compress=0)
    data = path.read_bytes()
    return {
        "model": name,
        "version": shown,
        "file": path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "model_class": model_class(model),
        "settings": _settings(name, version),
        **canary_outputs(model, inputs),
        **library_versions(),
    }


def _settings(name: str, version: str) -> dict[str, Any]:
    if name == "global_model":
        return dict(FOREST_SETTINGS[version])
    return dict(LOGISTIC_SETTINGS[version])


def write_reference(out: Path, reference: dict[str, Any]) -> None:
    text = json.dumps(reference, indent=2, sort_keys=True) + "\n"
    (out / REFERENCE_FILE).write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="directory to write the models to"
    )
    args = parser.parse_args(argv)

    reference = train_models(args.out)
    for key, entry in sorted(reference["models"].items()):
        print(f"{key}: {args.out / entry['file']} ({entry['size']} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
