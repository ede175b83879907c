"""The reference models, the old-version fixtures, and the user's model files."""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
import sklearn
from models_support import child_env
from sklearn.exceptions import InconsistentVersionWarning
from sklearn.preprocessing import StandardScaler

import harness.models
import models.train
from harness.errors import ModelSetError, UsageError
from harness.models import (
    CACHE_UNUSED_DAYS,
    FIXTURES_DIR,
    ModelSet,
    builtin_model_set,
    user_model_set,
)
from target_service.manifest import read_manifest, sha256_bytes, signature_valid

KEY = b"k" * 32
NAMES = ("global_model", "champion_model")
VERSIONS = ("v1", "v2", "backup")
OLD = "sklearn-1.2.2"
OLD_DIR = FIXTURES_DIR / OLD


# The built-in model set.


def test_builtin_keys(model_set: ModelSet) -> None:
    expected = {f"{name}@{version}" for name in NAMES for version in VERSIONS}
    expected |= {f"{name}@{OLD}" for name in NAMES} | {"dummy"}

    assert set(model_set.known) == expected
    assert model_set.names == NAMES
    assert model_set.builtin


def test_builtin_files_match_reference(model_set: ModelSet) -> None:
    for key, known in model_set.known.items():
        if key == "dummy":
            continue
        assert known.path is not None
        data = known.path.read_bytes()
        assert sha256_bytes(data) == known.sha256, key
        assert len(data) == known.size, key


def test_forest_file_size(model_set: ModelSet) -> None:
    for version in VERSIONS:
        size = model_set.get("global_model", version).size
        assert size is not None
        assert 900_000 <= size <= 1_400_000, version


def test_reference_outputs_match_files(model_set: ModelSet) -> None:
    for name in NAMES:
        inputs = np.asarray(model_set.canary_inputs[name])
        for version in VERSIONS:
            known = model_set.get(name, version)
            model = joblib.load(known.path)
            assert np.allclose(
                model.predict_proba(inputs), known.probabilities, rtol=0, atol=1e-9
            )
            assert model.predict(inputs).tolist() == known.predictions


def test_canary_inputs_are_documented_rows(model_set: ModelSet) -> None:
    features, labels = models.train.load_data()
    rows = list(models.train.CANARY_ROWS)

    for name in NAMES:
        assert model_set.canary_inputs[name] == features[rows].tolist()
    assert set(labels[rows].tolist()) == {0, 1}


def test_versions_identified_alone(model_set: ModelSet) -> None:
    for name in NAMES:
        for version in ("v2", "backup"):
            known = model_set.get(name, version)
            assert model_set.identify(name, known.probabilities) == (known.key,)

    champion = model_set.get("champion_model", "v1")
    assert model_set.identify("champion_model", champion.probabilities) == (
        "champion_model@v1",
    )


def test_old_forest_predicts_like_v1(model_set: ModelSet) -> None:
    # The 1.2.2 fixture is the v1 recipe, and the forest's trees came out the
    # same, so its outputs cannot tell the two files apart.
    v1 = model_set.get("global_model", "v1")

    assert model_set.identify("global_model", v1.probabilities) == (
        "global_model@v1",
        f"global_model@{OLD}",
    )


def test_identify_dummy(model_set: ModelSet) -> None:
    assert model_set.identify("global_model", [[0.9, 0.1]] * 8) == ("dummy",)
    assert model_set.identify("champion_model", [[0.9, 0.1]]) == ("dummy",)


@pytest.mark.parametrize(
    "probabilities",
    [
        None,
        "abc",
        [],
        [0.5, 0.5],
        [[0.5, 0.5]] * 8,
        [[0.5, 0.5, 0.0]] * 8,
        [["x", "y"]] * 8,
        [[0.1], [0.2, 0.3]],
    ],
)
def test_identify_no_match(model_set: ModelSet, probabilities: object) -> None:
    assert model_set.identify("global_model", probabilities) == ()


def test_identify_tolerance(model_set: ModelSet) -> None:
    known = model_set.get("global_model", "v2")
    close = (np.asarray(known.probabilities) + 5e-7).tolist()
    far = (np.asarray(known.probabilities) + 5e-6).tolist()

    assert model_set.identify("global_model", close) == (known.key,)
    assert model_set.identify("global_model", far) == ()


def test_identify_other_model_name(model_set: ModelSet) -> None:
    known = model_set.get("global_model", "v2")

    assert model_set.identify("champion_model", known.probabilities) == ()


def test_get_and_has(model_set: ModelSet) -> None:
    assert model_set.get("global_model", "v2").key == "global_model@v2"
    assert model_set.get("champion_model", "dummy").key == "dummy"
    assert model_set.has("champion_model", OLD)
    assert model_set.has("global_model", "dummy")
    assert not model_set.has("global_model", "v3")


def test_get_unknown_names_known(model_set: ModelSet) -> None:
    with pytest.raises(ModelSetError) as raised:
        model_set.get("global_model", "v3")

    message = str(raised.value)
    assert message.startswith(
        "unknown model version 'global_model@v3'; this model set has: "
    )
    assert "champion_model@backup, champion_model@sklearn-1.2.2" in message
    assert message.endswith("global_model@v2")


def test_by_sha256(model_set: ModelSet) -> None:
    known = model_set.get("champion_model", "backup")
    assert known.sha256 is not None

    assert model_set.by_sha256(known.sha256) == known
    assert model_set.by_sha256("0" * 64) is None


def test_foreign_flags(model_set: ModelSet) -> None:
    for name in NAMES:
        old = model_set.get(name, OLD)
        assert old.foreign
        assert old.sklearn_version == "1.2.2"
        for version in VERSIONS:
            known = model_set.get(name, version)
            assert not known.foreign
            assert known.sklearn_version == sklearn.__version__


def test_dummy_entry(model_set: ModelSet) -> None:
    dummy = model_set.known["dummy"]

    assert dummy.path is None
    assert dummy.sha256 is None
    assert dummy.probabilities == [[0.9, 0.1]] * 8
    assert dummy.predictions == [0] * 8


# Installing files.


def test_install_primary_signed(model_set: ModelSet, tmp_path: Path) -> None:
    path = model_set.install(tmp_path, "global_model", "v2", key=KEY)

    known = model_set.get("global_model", "v2")
    manifest = read_manifest(path)
    assert path == tmp_path / "global_model.pkl"
    assert sha256_bytes(path.read_bytes()) == known.sha256
    assert signature_valid(manifest, KEY)
    assert manifest.model == "global_model"
    assert manifest.sha256 == known.sha256
    assert manifest.size == known.size
    assert manifest.sklearn_version == sklearn.__version__
    assert manifest.model_class == "sklearn.ensemble._forest.RandomForestClassifier"
    assert manifest.canary.inputs == model_set.canary_inputs["global_model"]
    assert manifest.canary.probabilities == known.probabilities
    assert manifest.canary.predictions == known.predictions


def test_install_backup_unsigned(model_set: ModelSet, tmp_path: Path) -> None:
    path = model_set.install(
        tmp_path, "champion_model", "backup", key=None, as_backup=True
    )

    assert path == tmp_path / "champion_model.pkl.backup"
    assert read_manifest(path).hmac is None


def test_install_foreign_records_old_versions(
    model_set: ModelSet, tmp_path: Path
) -> None:
    path = model_set.install(tmp_path, "champion_model", OLD, key=KEY)

    manifest = read_manifest(path)
    assert manifest.sklearn_version == "1.2.2"
    assert manifest.numpy_version == "1.26.4"
    assert manifest.joblib_version == "1.3.2"
    assert manifest.canary.probabilities == (
        model_set.get("champion_model", OLD).probabilities
    )


def test_install_without_manifest_keeps_old(
    model_set: ModelSet, tmp_path: Path
) -> None:
    model_set.install(tmp_path, "global_model", "v1", key=KEY)

    path = model_set.install(tmp_path, "global_model", "v2", key=KEY, manifest=False)

    assert sha256_bytes(path.read_bytes()) == model_set.get("global_model", "v2").sha256
    assert read_manifest(path).sha256 == model_set.get("global_model", "v1").sha256


def test_install_dummy(model_set: ModelSet, tmp_path: Path) -> None:
    with pytest.raises(ModelSetError, match="dummy has no file to install"):
        model_set.install(tmp_path, "global_model", "dummy", key=KEY)


def test_install_into_missing_directory(model_set: ModelSet, tmp_path: Path) -> None:
    with pytest.raises(ModelSetError, match="cannot install global_model@v1 as"):
        model_set.install(tmp_path / "missing", "global_model", "v1", key=KEY)


def test_populate(model_set: ModelSet, tmp_path: Path) -> None:
    model_set.populate(tmp_path, key=KEY)

    for name in NAMES:
        primary = tmp_path / f"{name}.pkl"
        backup = tmp_path / f"{name}.pkl.backup"
        assert read_manifest(primary).sha256 == model_set.get(name, "v1").sha256
        assert read_manifest(backup).sha256 == model_set.get(name, "backup").sha256
        assert sha256_bytes(primary.read_bytes()) == model_set.get(name, "v1").sha256


def test_populate_without_backup(model_set: ModelSet, tmp_path: Path) -> None:
    model_set.populate(tmp_path, key=KEY, backup=False)

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "champion_model.pkl",
        "champion_model.pkl.manifest.json",
        "global_model.pkl",
        "global_model.pkl.manifest.json",
    ]


# The training cache.


@pytest.fixture
def cache_copy(model_set: ModelSet, tmp_path: Path) -> Path:
    """A copy of the shared training cache that tests may damage."""
    known = model_set.get("global_model", "v1")
    assert known.path is not None
    source = known.path.parent
    cache = tmp_path / "cache"
    shutil.copytree(source, cache / source.name)
    return cache


def test_cache_reused(cache_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="harness.models")

    copy = builtin_model_set(cache_copy)

    assert "training" not in caplog.text
    known = copy.get("global_model", "v1")
    assert known.path is not None
    assert known.path.is_relative_to(cache_copy)


def test_cache_retrains_changed_file(
    model_set: ModelSet, cache_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="harness.models")
    copy = builtin_model_set(cache_copy)
    path = copy.get("champion_model", "v2").path
    assert path is not None
    path.write_bytes(b"damaged")

    retrained = builtin_model_set(cache_copy)

    assert "changed since training; training again" in caplog.text
    assert "training the reference models into" in caplog.text
    # Training is deterministic, but the pickled bytes are not: whether a string
    # is written again or as a reference to an equal one depends on the state
    # of the interpreter. So the outputs are compared, and the new hashes
    # checked against the new files.
    for key, known in retrained.known.items():
        assert known.probabilities == model_set.known[key].probabilities, key
        if known.path is not None:
            assert sha256_bytes(known.path.read_bytes()) == known.sha256, key


def test_install_detects_changed_cache(cache_copy: Path, tmp_path: Path) -> None:
    copy = builtin_model_set(cache_copy)
    path = copy.get("global_model", "v1").path
    assert path is not None
    path.write_bytes(b"damaged")

    with pytest.raises(ModelSetError) as raised:
        copy.install(tmp_path, "global_model", "v1", key=KEY)

    assert str(raised.value) == (
        f"{path} no longer has the sha256 recorded for global_model@v1; "
        "delete the model cache so that the files are made again"
    )


_BUILD_SCRIPT = """
import logging, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO)
from harness.models import builtin_model_set
builtin_model_set(Path(sys.argv[1]))
"""


def test_parallel_workers_train_once(tmp_path: Path) -> None:
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _BUILD_SCRIPT, str(tmp_path)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
            env=child_env(),
        )
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=120)[1] for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0], outputs
    assert sum(out.count("training the reference models") for out in outputs) == 1
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1


def test_train_rejects_alike_versions() -> None:
    same = [[0.2, 0.8], [0.6, 0.4]]

    with pytest.raises(RuntimeError, match="global_model versions a and b predict"):
        models.train.check_distinct("global_model", {"a": same, "b": same})


# The files pickled by scikit-learn 1.2.2, loaded by the running version.


def test_old_fixture_reference() -> None:
    reference = json.loads((OLD_DIR / "reference.json").read_text())

    for name in NAMES:
        entry = reference["models"][f"{name}@{OLD}"]
        data = (OLD_DIR / entry["file"]).read_bytes()
        assert sha256_bytes(data) == entry["sha256"]
        assert entry["sklearn_version"] == "1.2.2"
        assert entry["numpy_version"] == "1.26.4"
        assert entry["settings"] == models.train._settings(name, "v1")


@pytest.mark.skipif(
    sklearn.__version__ == "1.2.2", reason="the fixture's own scikit-learn is running"
)
def test_old_forest_fails_to_load() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InconsistentVersionWarning)
        with pytest.raises(ValueError, match="node array from the pickle has an"):
            joblib.load(OLD_DIR / "global_model.pkl")


@pytest.mark.skipif(
    sklearn.__version__ == "1.2.2", reason="the fixture's own scikit-learn is running"
)
def test_old_pipeline_loads_with_warning(model_set: ModelSet) -> None:
    with pytest.warns(InconsistentVersionWarning) as record:
        model = joblib.load(OLD_DIR / "champion_model.pkl")

    old = model_set.get("champion_model", OLD)
    inputs = np.asarray(model_set.canary_inputs["champion_model"])
    versions = {getattr(w.message, "original_sklearn_version", None) for w in record}
    assert versions == {"1.2.2"}
    assert np.allclose(model.predict_proba(inputs), old.probabilities, atol=1e-6)


# Models the user brings.


@pytest.fixture
def user_dir(model_set: ModelSet, tmp_path: Path) -> Path:
    directory = tmp_path / "user-models"
    directory.mkdir()
    known = model_set.get("champion_model", "v1")
    assert known.path is not None
    shutil.copyfile(known.path, directory / "champion_model.pkl")
    return directory


def test_user_set_without_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as raised:
        user_model_set(tmp_path, tmp_path / "cache")

    assert str(raised.value) == (
        f"model directory {tmp_path} contains neither global_model.pkl nor "
        "champion_model.pkl; put one or both there (optionally with "
        "<name>.pkl.backup) or leave out --models to use the built-in models"
    )


def test_user_set_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "missing"

    with pytest.raises(UsageError) as raised:
        user_model_set(missing, tmp_path / "cache")

    assert str(raised.value) == (
        f"model directory {missing} does not exist or is not a directory; "
        "pass a directory with global_model.pkl, champion_model.pkl or both"
    )


def test_user_set_versions(user_dir: Path, tmp_path: Path) -> None:
    original = (user_dir / "champion_model.pkl").read_bytes()

    user_set = user_model_set(user_dir, tmp_path / "cache")

    v1 = user_set.get("champion_model", "v1")
    v2 = user_set.get("champion_model", "v2")
    backup = user_set.get("champion_model", "backup")
    assert user_set.names == ("champion_model",)
    assert not user_set.builtin
    assert v1.sha256 == sha256_bytes(original)
    assert v2.sha256 != v1.sha256
    assert backup.sha256 == v1.sha256
    assert v2.probabilities == v1.probabilities
    assert backup.probabilities == v1.probabilities
    assert user_set.identify("champion_model", v1.probabilities) == (
        "champion_model@v1",
        "champion_model@v2",
        "champion_model@backup",
    )
    assert v1.path is not None
    assert v1.path.is_relative_to(tmp_path / "cache")


def test_user_set_keeps_the_first_v2(
    user_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pickling again gives other bytes in another process, and parallel
    # workers must all expect the v2 that is on disk.
    cache = tmp_path / "cache"
    first = user_model_set(user_dir, cache).get("champion_model", "v2")
    monkeypatch.setattr(
        harness.models,
        "_dump_with_other_protocol",
        lambda model, original: pickle.dumps(model, protocol=2),
    )

    second = user_model_set(user_dir, cache).get("champion_model", "v2")

    assert second.sha256 == first.sha256
    assert second.path is not None
    assert sha256_bytes(second.path.read_bytes()) == first.sha256


def test_user_set_canary_inputs(user_dir: Path, tmp_path: Path) -> None:
    first = user_model_set(user_dir, tmp_path / "cache")
    second = user_model_set(user_dir, tmp_path / "other-cache")

    inputs = first.canary_inputs["champion_model"]
    assert len(inputs) == 8
    assert all(len(row) == 30 for row in inputs)
    assert inputs == second.canary_inputs["champion_model"]
    assert first.known["dummy"].probabilities == [[0.9, 0.1]] * 8


def test_user_set_backup_file(
    model_set: ModelSet, user_dir: Path, tmp_path: Path
) -> None:
    backup = model_set.get("champion_model", "backup")
    assert backup.path is not None
    shutil.copyfile(backup.path, user_dir / "champion_model.pkl.backup")

    user_set = user_model_set(user_dir, tmp_path / "cache")

    assert user_set.get("champion_model", "backup").sha256 == backup.sha256
    assert user_set.identify(
        "champion_model", user_set.get("champion_model", "backup").probabilities
    ) == ("champion_model@backup",)


def test_user_set_install_keeps_originals(user_dir: Path, tmp_path: Path) -> None:
    original = (user_dir / "champion_model.pkl").read_bytes()
    model_dir = tmp_path / "scratch"
    model_dir.mkdir()
    user_set = user_model_set(user_dir, tmp_path / "cache")

    user_set.populate(model_dir, key=KEY)
    (model_dir / "champion_model.pkl").write_bytes(b"damaged")

    assert (user_dir / "champion_model.pkl").read_bytes() == original
    manifest = read_manifest(model_dir / "champion_model.pkl.backup")
    assert signature_valid(manifest, KEY)
    assert manifest.canary.inputs == user_set.canary_inputs["champion_model"]


def test_user_set_foreign_file(
    user_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shutil.copyfile(OLD_DIR / "champion_model.pkl", user_dir / "champion_model.pkl")

    user_set = user_model_set(user_dir, tmp_path / "cache")

    v1 = user_set.get("champion_model", "v1")
    assert v1.foreign
    assert v1.sklearn_version == "1.2.2"
    assert not user_set.get("champion_model", "v2").foreign
    assert "was pickled by scikit-learn 1.2.2" in caplog.text


def test_user_set_unloadable_file(user_dir: Path, tmp_path: Path) -> None:
    path = user_dir / "global_model.pkl"
    path.write_bytes(b"<html>502</html>")

    with pytest.raises(UsageError) as raised:
        user_model_set(user_dir, tmp_path / "cache")

    assert str(raised.value) == (
        f"cannot load model file {path} with scikit-learn {sklearn.__version__}: "
        "KeyError: 60"
    )


def test_user_set_not_a_classifier(user_dir: Path, tmp_path: Path) -> None:
    path = user_dir / "global_model.pkl"
    buffer = io.BytesIO()
    joblib.dump(StandardScaler().fit([[0.0, 1.0], [1.0, 0.0]]), buffer)
    path.write_bytes(buffer.getvalue())

    with pytest.raises(UsageError) as raised:
        user_model_set(user_dir, tmp_path / "cache")

    assert str(raised.value) == (
        f"model file {path} contains a StandardScaler without predict, predict_proba; "
        "the harness needs a fitted classifier"
    )


def test_user_set_backup_other_features(
    model_set: ModelSet, user_dir: Path, tmp_path: Path
) -> None:
    backup = user_dir / "champion_model.pkl.backup"
    buffer = io.BytesIO()
    small = models.train.build_model("champion_model", "v1")
    joblib.dump(small.fit([[0.0, 1.0], [1.0, 0.0]], [0, 1]), buffer)
    backup.write_bytes(buffer.getvalue())

    with pytest.raises(UsageError) as raised:
        user_model_set(user_dir, tmp_path / "cache")

    assert str(raised.value) == (
        f"{backup} expects 2 features but {user_dir / 'champion_model.pkl'} expects "
        "30; a backup must take the same inputs as its primary"
    )


def test_cache_removes_folders_unused_for_long(cache_copy: Path) -> None:
    long_ago = time.time() - (CACHE_UNUSED_DAYS + 1) * 24 * 3600
    recently = time.time() - (CACHE_UNUSED_DAYS - 1) * 24 * 3600
    stale = cache_copy / "0123456789abcdef"
    stale.mkdir()
    (stale / "global_model.v1.pkl").write_bytes(b"an old library's model")
    (cache_copy / f"{stale.name}.lock").touch()
    os.utime(stale, (long_ago, long_ago))
    kept = cache_copy / "fedcba9876543210"
    kept.mkdir()
    os.utime(kept, (recently, recently))
    training = cache_copy / ".abcdef0123456789.training"
    training.mkdir()
    os.utime(training, (long_ago, long_ago))

    builtin_model_set(cache_copy)

    assert not stale.exists()
    assert not (cache_copy / f"{stale.name}.lock").exists()
    assert kept.is_dir()
    assert training.is_dir()
