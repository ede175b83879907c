"""The three loaders and the validation process, run in this process on real files.

The hardened loader is driven by calling ``poll()`` directly. Its watcher
threads get an interval of an hour, so they never poll on their own, except in
the test of the watcher itself.
"""

from __future__ import annotations

import copy
import logging
import os
import pickle
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn
from service_support import (
    canary_rows,
    dump,
    install,
    manifest_for,
    other_version_pickle,
    trained_models,
    wait_for,
    write_pickles,
)

from target_service.config import ServiceConfig
from target_service.failures import LoadFailure
from target_service.forking import shutdown_forkserver
from target_service.loaders import Loader, create_loader
from target_service.manifest import sha256_bytes
from target_service.metrics import ServiceMetrics
from target_service.publish import publish
from target_service.validation import Validator, check_tree_links

KEY = b"loader-test-key"
NEVER = 3600.0
RUNNING = sklearn.__version__


@pytest.fixture(scope="module", autouse=True)
def forkserver() -> Iterator[None]:
    """Share one fork server across the module and stop it at the end."""
    yield
    shutdown_forkserver()


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Model files by name, the damaged forests among them."""
    return write_pickles(tmp_path_factory.mktemp("sources"))


@pytest.fixture(scope="module")
def files(sources: dict[str, Path]) -> dict[str, bytes]:
    """The bytes of each file in ``sources``."""
    return {name: path.read_bytes() for name, path in sources.items()}


MODEL_NAMES = ("global_model", "champion_model")


def make_loader(
    model_dir: Path,
    loader: str = "hardened",
    *,
    key: bytes | None = KEY,
    models: tuple[str, ...] = ("global_model",),
    validate_timeout: float = 5.0,
    version_match: str = "exact",
    poll_interval: float = NEVER,
) -> Loader:
    config = ServiceConfig(
        model_dir=model_dir,
        loader=loader,
        models=models,
        hmac_key=key,
        poll_interval=poll_interval,
        validate_timeout=validate_timeout,
        version_match=version_match,
    )
    return create_loader(config, ServiceMetrics())


@contextmanager
def started(loader: Loader) -> Iterator[Loader]:
    try:
        loader.start()
        yield loader
    finally:
        loader.close()


def status(loader: Loader, model: str = "global_model") -> dict[str, object]:
    return vars(loader.slots[model].status())


# The validation process on its own.


def validate(
    data: bytes,
    canary_model: object,
    timeout: float = 5.0,
    version_match: str = "exact",
) -> None:
    manifest = manifest_for("global_model", data, canary_model)
    Validator(timeout, version_match).validate(data, manifest.canary, "test")


def test_validator_accepts_good_model(files: dict[str, bytes]) -> None:
    validate(files["forest"], trained_models().forest)


def test_validator_rejects_truncated(files: dict[str, bytes]) -> None:
    data = files["forest"][: len(files["forest"]) // 2]

    with pytest.raises(LoadFailure) as raised:
        validate(data, trained_models().forest)

    assert raised.value.reason == "load_error"


def test_validator_times_out_on_endless_loop(files: dict[str, bytes]) -> None:
    with pytest.raises(LoadFailure) as raised:
        validate(files["hanging"], trained_models().forest, timeout=1.0)

    assert raised.value.reason == "validation_timeout"
    assert raised.value.message == "validation timed out after 1.0 s"


def test_validator_reports_segfault(files: dict[str, bytes]) -> None:
    with pytest.raises(LoadFailure) as raised:
        validate(files["segfaulting"], trained_models().forest)

    assert raised.value.reason == "validation_crashed"
    assert raised.value.message == "validation process died with SIGSEGV"


def unreached_split(forest: Any, rows: list[list[float]]) -> tuple[int, int]:
    """Return a tree and a split node of ``forest`` that no canary row reaches."""
    for number, estimator in enumerate(forest.estimators_):
        tree = estimator.tree_
        reached = estimator.decision_path(np.asarray(rows)).toarray().any(axis=0)
        splits = np.flatnonzero((tree.children_left != -1) & ~reached)
        if splits.size:
            return number, int(splits[0])
    raise AssertionError("every split of the forest is reached by a canary row")


def test_validator_rejects_feature_out_of_range(tmp_path: Path) -> None:
    # The canary rows never reach the damaged split, so only the check of the
    # tree's links can find it. Predict on other rows would read past the row.
    forest = copy.deepcopy(trained_models().forest)
    number, node = unreached_split(forest, canary_rows())
    forest.estimators_[number].tree_.feature[node] = 524312
    data = dump(forest, tmp_path / "forest.pkl")

    with pytest.raises(LoadFailure) as raised:
        validate(data, trained_models().forest)

    assert raised.value.reason == "tree_invalid"
    assert raised.value.message == (
        f"model tree {number} is malformed at node {node} of "
        f"{forest.estimators_[number].tree_.node_count}: children "
        f"{forest.estimators_[number].tree_.children_left[node]} and "
        f"{forest.estimators_[number].tree_.children_right[node]}, feature 524312 "
        "of 30"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("children_left", 0),  # back to the root: predict would loop
        ("children_right", 10**9),  # past the node array: predict would crash
        ("feature", -3),
    ],
)
def test_tree_links_checked(field: str, value: int) -> None:
    forest = copy.deepcopy(trained_models().forest)
    getattr(forest.estimators_[3].tree_, field)[0] = value

    with pytest.raises(LoadFailure, match=r"^model tree 3 is malformed at node 0 of"):
        check_tree_links(forest)


def test_tree_links_of_a_leaf_with_one_child() -> None:
    forest = copy.deepcopy(trained_models().forest)
    tree = forest.estimators_[0].tree_
    leaf = int(np.flatnonzero(tree.children_left == -1)[0])
    tree.children_right[leaf] = tree.node_count - 1

    with pytest.raises(LoadFailure, match=f"at node {leaf} of"):
        check_tree_links(forest)


def test_tree_links_of_sound_models() -> None:
    models = trained_models()

    check_tree_links(models.forest)
    check_tree_links(models.logistic)
    check_tree_links(models.forest.estimators_[0])


def test_validator_rejects_canary_mismatch(files: dict[str, bytes]) -> None:
    with pytest.raises(LoadFailure) as raised:
        validate(files["other_forest"], trained_models().forest)

    assert raised.value.reason == "canary_mismatch"
    assert raised.value.message.startswith(
        "canary outputs differ from the manifest: probabilities differ by up to"
    )


def test_validator_rejects_object_without_predict(files: dict[str, bytes]) -> None:
    manifest = manifest_for("global_model", files["forest"], trained_models().forest)

    with pytest.raises(LoadFailure) as raised:
        Validator(5.0, "exact").validate(files["dict"], manifest.canary, "test")

    assert raised.value.reason == "not_a_model"
    assert raised.value.message == (
        "the file contains a dict, which has no predict method"
    )


class _ExitOnLoad:
    """Pickles to a call of ``os._exit(7)``: unpickling it ends the process."""

    def __reduce__(self) -> tuple[object, tuple[int]]:
        return (os._exit, (7,))


def test_validator_reports_process_exit(files: dict[str, bytes]) -> None:
    manifest = manifest_for("global_model", files["forest"], trained_models().forest)
    data = pickle.dumps(_ExitOnLoad())

    with pytest.raises(LoadFailure) as raised:
        Validator(5.0, "exact").validate(data, manifest.canary, "test")

    assert raised.value.reason == "validation_crashed"
    assert raised.value.message == (
        "validation process exited with status 7 before sending a result"
    )


def test_validator_rejects_other_version_pickle(files: dict[str, bytes]) -> None:
    data, pickled_by = other_version_pickle(files["logistic"])

    with pytest.raises(LoadFailure) as raised:
        validate(data, trained_models().logistic)

    assert raised.value.reason == "version_mismatch"
    assert raised.value.message == (
        f"pickled by scikit-learn {pickled_by}, service runs {RUNNING} "
        "(--version-match exact)"
    )


def test_validator_allows_other_version_with_any(files: dict[str, bytes]) -> None:
    data, _ = other_version_pickle(files["logistic"])

    validate(data, trained_models().logistic, version_match="any")


# The hardened loader.


def publish_all(
    model_dir: Path, sources: dict[str, Path], key: bytes | None = KEY
) -> None:
    rows = canary_rows()
    publish(model_dir, "global_model", sources["forest"], key=key, canary_inputs=rows)
    publish(
        model_dir, "champion_model", sources["logistic"], key=key, canary_inputs=rows
    )


def publish_backup(model_dir: Path, sources: dict[str, Path]) -> None:
    publish(
        model_dir,
        "global_model",
        sources["other_forest"],
        key=KEY,
        canary_inputs=canary_rows(),
        as_backup=True,
    )


def test_hardened_serves_good_files(
    tmp_path: Path, sources: dict[str, Path], files: dict[str, bytes]
) -> None:
    publish_all(tmp_path, sources)
    loader = make_loader(tmp_path, models=("global_model", "champion_model"))

    with started(loader):
        forest = status(loader, "global_model")
        logistic = status(loader, "champion_model")

    assert loader.integrity == "hmac"
    assert forest["tier"] == "primary"
    assert forest["version"] == sha256_bytes(files["forest"])
    assert forest["source"] == str(tmp_path / "global_model.pkl")
    assert forest["sklearn_version"] == RUNNING
    assert forest["load_attempts"] == 1
    assert forest["last_error"] is None
    assert forest["loaded_at"] is not None
    assert logistic["tier"] == "primary"
    assert logistic["version"] == sha256_bytes(files["logistic"])


def test_hardened_without_key_checks_sha256(
    tmp_path: Path, sources: dict[str, Path]
) -> None:
    publish_all(tmp_path, sources, key=None)
    loader = make_loader(tmp_path, key=None)

    with started(loader):
        assert loader.integrity == "sha256"
        assert status(loader)["tier"] == "primary"


def test_hardened_truncated_primary_falls_back(
    tmp_path: Path, sources: dict[str, Path], files: dict[str, bytes]
) -> None:
    publish_all(tmp_path, sources)
    publish_backup(tmp_path, sources)
    size = len(files["forest"])
    (tmp_path / "global_model.pkl").write_bytes(files["forest"][:1000])
    loader = make_loader(tmp_path)

    with started(loader):
        entry = status(loader)

    assert entry["tier"] == "backup"
    assert entry["version"] == sha256_bytes(files["other_forest"])
    assert entry["last_error"] == (
        "global_model.pkl: update in progress: file has 1000 bytes, "
        f"manifest says {size}"
    )
    assert entry["load_attempts"] == 2


def test_hardened_truncated_with_matching_manifest(
    tmp_path: Path, files: dict[str, bytes]
) -> None:
    data = files["forest"][: len(files["forest"]) // 2]
    manifest = manifest_for("global_model", data, trained_models().forest)
    install(tmp_path, "global_model.pkl", data, manifest, KEY)
    loader = make_loader(tmp_path)

    with started(loader):
        entry = status(loader)

    assert entry["tier"] == "dummy"
    assert str(entry["last_error"]).startswith("global_model.pkl: ")
    assert "update in progress" not in str(entry["last_error"])


def test_hardened_missing_primary_uses_backup(
    tmp_path: Path, sources: dict[str, Path]
) -> None:
    publish_backup(tmp_path, sources)
    loader = make_loader(tmp_path)

    with started(loader):
        entry = status(loader)

    assert entry["tier"] == "backup"
    assert entry["source"] == str(tmp_path / "global_model.pkl.backup")
    assert entry["last_error"] == "global_model.pkl: file not found"


def test_hardened_nothing_serves_dummy(tmp_path: Path) -> None:
    loader = make_loader(tmp_path)

    with started(loader):
        entry = status(loader)

    assert entry["tier"] == "dummy"
    assert entry["version"] is None
    assert entry["source"] is None
    assert entry["load_attempts"] == 2
    assert entry["last_error"] == (
        "global_model.pkl: file not found; global_model.pkl.backup: file not found"
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: os.mkfifo(path), "not a regular file but a FIFO"),
        (lambda path: path.mkdir(), "not a regular file but a directory"),
        (
            lambda path: path.symlink_to(path.with_name("gone.pkl")),
            "dangling symlink to",
        ),
    ],
    ids=["fifo", "directory", "dangling-symlink"],
)
def test_hardened_rejects_unreadable_primary(
    tmp_path: Path, sources: dict[str, Path], make: object, message: str
) -> None:
    publish_all(tmp_path, sources)
    publish_backup(tmp_path, sources)
    primary = tmp_path / "global_model.pkl"
    primary.unlink()
    make(primary)  # type: ignore[operator]
    loader = make_loader(tmp_path)

    # A blocking open of the FIFO would hang here instead of falling back.
    with started(loader):
        entry = status(loader)

    assert entry["tier"] == "backup"
    assert str(entry["last_error"]).startswith(f"global_model.pkl: {message}")


def test_hardened_rejects_fifo_manifest(
    tmp_path: Path, sources: dict[str, Path]
) -> None:
    publish_all(tmp_path, sources)
    manifest = tmp_path / "global_model.pkl.manifest.json"
    manifest.unlink()
    os.mkfifo(manifest)
    loader = make_loader(tmp_path)

    with started(loader):
        entry = status(loader)

    assert entry["tier"] == "dummy"
    assert str(entry["last_error"]).startswith(
        "global_model.pkl: manifest global_model.pkl.manifest.json: "
        "not a regular file but a FIFO"
    )


def test_hardened_rejects_unsigned_manifest(
    tmp_path: Path, files: dict[str, bytes]
) -> None:
    # A forger without the key writes another model with a correct sha256.
    manifest = manifest_for(
        "global_model", files["other_forest"], trained_models().other_forest
    )
    install(tmp_path, "global_model.pkl", files["other_forest"], manifest)
    loader = make_loader(tmp_path)

    with started(loader):
        entry = status(loader)

    assert entry["tier"] == "dummy"
    assert str(entry["last_error"]).startswith(
        "global_model.pkl: manifest is not signed, and this service requires an HMAC"
    )


def test_hardened_rejects_other_key(tmp_path: Path, files: dict[str, bytes]) -> None:
    manifest = manifest_for("global_model", files["forest"], trained_models().forest)
    install(tmp_path, "global_model.pkl", files["forest"], manifest, b"another key")
    loader = make_loader(tmp_path)

    with started(loader):
        entry = status(loader)

    assert str(entry["last_error"]).startswith(
        "global_model.pkl: manifest HMAC is invalid: "
        "signed with another key or modified"
    )


def test_hardened_rejects_manifest_of_other_model(
    tmp_path: Path, files: dict[str, bytes]
) -> None:
    manifest = manifest_for("champion_model", files["forest"], trained_models().forest)
    install(tmp_path, "global_model.pkl", files["forest"], manifest, KEY)
    loader = make_loader(tmp_path)

    with started(loader):
        entry = status(loader)

    assert str(entry["last_error"]).startswith(
        "global_model.pkl: manifest is for model 'champion_model', not 'global_model'"
    )


def test_hardened_rejects_canary_mismatch(
    tmp_path: Path, files: dict[str, bytes]
) -> None:
    # Correctly signed, right sha256, but outputs recorded from another model.
    manifest = manifest_for(
        "global_model", files["other_forest"], trained_models().forest
    )
    install(tmp_path, "global_model.pkl", files["other_forest"], manifest, KEY)
    loader = make_loader(tmp_path)

    with started(loader):
        entry = status(loader)

    assert entry["tier"] == "dummy"
    assert str(entry["last_error"]).startswith(
        "global_model.pkl: canary outputs differ from the manifest"
    )


def install_with_version(model_dir: Path, data: bytes, version: str) -> None:
    manifest = manifest_for(
        "global_model",
        data,
        trained_models().forest,
        versions={"sklearn_version": version},
    )
    install(model_dir, "global_model.pkl", data, manifest, KEY)


def same_minor(version: str) -> str:
    major, minor = version.split(".")[:2]
    return f"{major}.{minor}.999"


def test_hardened_rejects_version_mismatch(
    tmp_path: Path, files: dict[str, bytes]
) -> None:
    install_with_version(tmp_path, files["forest"], "1.2.2")
    loader = make_loader(tmp_path)

    with started(loader):
        entry = status(loader)

    assert entry["tier"] == "dummy"
    assert str(entry["last_error"]).startswith(
        f"global_model.pkl: manifest records scikit-learn 1.2.2, service runs "
        f"{RUNNING} (--version-match exact); "
    )


@pytest.mark.parametrize(
    ("version_match", "recorded", "tier"),
    [
        ("minor", "same-minor", "primary"),
        ("minor", "0.1.0", "dummy"),
        ("any", "0.1.0", "primary"),
        ("exact", "same-minor", "dummy"),
    ],
)
def test_hardened_version_match_policy(
    tmp_path: Path,
    files: dict[str, bytes],
    version_match: str,
    recorded: str,
    tier: str,
) -> None:
    version = same_minor(RUNNING) if recorded == "same-minor" else recorded
    install_with_version(tmp_path, files["forest"], version)
    loader = make_loader(tmp_path, version_match=version_match)

    with started(loader):
        entry = status(loader)

    assert entry["tier"] == tier
    if tier == "primary":
        assert entry["sklearn_version"] == version


def test_hardened_rejects_version_warning(
    tmp_path: Path, files: dict[str, bytes]
) -> None:
    # The manifest records the running version, the pickle records another.
    data, pickled_by = other_version_pickle(files["logistic"])
    manifest = manifest_for("global_model", data, trained_models().logistic)
    install(tmp_path, "global_model.pkl", data, manifest, KEY)
    loader = make_loader(tmp_path)

    with started(loader):
        entry = status(loader)

    assert entry["tier"] == "dummy"
    assert str(entry["last_error"]).startswith(
        f"global_model.pkl: pickled by scikit-learn {pickled_by}, service runs "
        f"{RUNNING} (--version-match exact); "
    )


def install_damaged(model_dir: Path, data: bytes) -> None:
    # The manifest matches the damaged bytes and is signed, but its canary
    # outputs come from the undamaged forest, so only validation can tell.
    manifest = manifest_for("global_model", data, trained_models().forest)
    install(model_dir, "global_model.pkl", data, manifest, KEY)


def test_hardened_endless_loop_times_out(
    tmp_path: Path, sources: dict[str, Path], files: dict[str, bytes]
) -> None:
    install_damaged(tmp_path, files["hanging"])
    publish_backup(tmp_path, sources)
    loader = make_loader(tmp_path, validate_timeout=1.0)

    with started(loader):
        entry = status(loader)

    assert entry["tier"] == "backup"
    assert entry["last_error"] == ("global_model.pkl: validation timed out after 1.0 s")


def test_hardened_segfault_rejected(
    tmp_path: Path, sources: dict[str, Path], files: dict[str, bytes]
) -> None:
    install_damaged(tmp_path, files["segfaulting"])
    publish_backup(tmp_path, sources)
    loader = make_loader(tmp_path)

    with started(loader):
        entry = status(loader)

    assert entry["tier"] == "backup"
    assert entry["last_error"] == (
        "global_model.pkl: validation process died with SIGSEGV"
    )


def test_hardened_damaged_models_start_in_parallel(
    tmp_path: Path, files: dict[str, bytes]
) -> None:
    install_damaged(tmp_path, files["hanging"])
    manifest = manifest_for("champion_model", files["hanging"], trained_models().forest)
    install(tmp_path, "champion_model.pkl", files["hanging"], manifest, KEY)
    loader = make_loader(
        tmp_path, models=("global_model", "champion_model"), validate_timeout=2.0
    )

    with started(loader):
        entries = {
            name: status(loader, name) for name in ("global_model", "champion_model")
        }

    for entry in entries.values():
        assert entry["tier"] == "dummy"
        assert "validation timed out after 2.0 s" in str(entry["last_error"])


def test_hardened_hot_reload_sequence(
    tmp_path: Path,
    sources: dict[str, Path],
    files: dict[str, bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="target_service")
    publish_all(tmp_path, sources)
    primary = tmp_path / "global_model.pkl"
    loader = make_loader(tmp_path)

    with started(loader):
        loader.poll()
        assert status(loader)["load_attempts"] == 1

        publish(
            tmp_path,
            "global_model",
            sources["other_forest"],
            key=KEY,
            canary_inputs=canary_rows(),
        )
        loader.poll()
        entry = status(loader)
        assert entry["tier"] == "primary"
        assert entry["version"] == sha256_bytes(files["other_forest"])
        assert entry["load_attempts"] == 2

        # A file written in place, its manifest not yet updated.
        primary.write_bytes(files["forest"])
        loader.poll()
        loader.poll()
        loader.poll()
        entry = status(loader)
        assert entry["tier"] == "last_known_good"
        assert entry["version"] == sha256_bytes(files["other_forest"])
        assert str(entry["last_error"]).startswith(
            "global_model.pkl: update in progress"
        )
        assert entry["load_attempts"] == 5
        assert (
            caplog.text.count("rejected " + str(primary) + ": update in progress") == 1
        )

        publish(
            tmp_path,
            "global_model",
            sources["forest"],
            key=KEY,
            canary_inputs=canary_rows(),
        )
        loader.poll()
        entry = status(loader)
        assert entry["tier"] == "primary"
        assert entry["version"] == sha256_bytes(files["forest"])
        assert entry["last_error"] is None
        assert "was rejected as update_in_progress 2 more times" in caplog.text

        primary.unlink()
        loader.poll()
        entry = status(loader)
        assert entry["tier"] == "last_known_good"
        assert entry["version"] == sha256_bytes(files["forest"])
        assert entry["last_error"] == "global_model.pkl: file not found"
        attempts = entry["load_attempts"]

        loader.poll()
        assert status(loader)["load_attempts"] == attempts


def test_hardened_backup_to_primary(
    tmp_path: Path, sources: dict[str, Path], files: dict[str, bytes]
) -> None:
    publish_backup(tmp_path, sources)
    loader = make_loader(tmp_path)

    with started(loader):
        assert status(loader)["tier"] == "backup"
        loader.poll()
        assert status(loader)["load_attempts"] == 2

        publish(
            tmp_path,
            "global_model",
            sources["forest"],
            key=KEY,
            canary_inputs=canary_rows(),
        )
        loader.poll()
        entry = status(loader)

    assert entry["tier"] == "primary"
    assert entry["version"] == sha256_bytes(files["forest"])
    assert entry["last_error"] is None


def test_hardened_dummy_to_backup(
    tmp_path: Path, sources: dict[str, Path], files: dict[str, bytes]
) -> None:
    loader = make_loader(tmp_path)

    with started(loader):
        assert status(loader)["tier"] == "dummy"
        publish_backup(tmp_path, sources)
        loader.poll()
        entry = status(loader)

    assert entry["tier"] == "backup"
    assert entry["version"] == sha256_bytes(files["other_forest"])
    assert entry["last_error"] == "global_model.pkl: file not found"


def test_hardened_bad_backup_keeps_old_backup(
    tmp_path: Path, sources: dict[str, Path], files: dict[str, bytes]
) -> None:
    publish_backup(tmp_path, sources)
    loader = make_loader(tmp_path)

    with started(loader):
        (tmp_path / "global_model.pkl.backup").write_bytes(b"garbage")
        loader.poll()
        entry = status(loader)

    assert entry["tier"] == "last_known_good"
    assert entry["version"] == sha256_bytes(files["other_forest"])
    assert "global_model.pkl.backup: update in progress" in str(entry["last_error"])


def test_hardened_watcher_heals_by_itself(
    tmp_path: Path, sources: dict[str, Path], files: dict[str, bytes]
) -> None:
    loader = make_loader(tmp_path, poll_interval=0.05)

    with started(loader):
        assert status(loader)["tier"] == "dummy"
        publish(
            tmp_path,
            "global_model",
            sources["forest"],
            key=KEY,
            canary_inputs=canary_rows(),
        )
        wait_for(lambda: status(loader)["tier"] == "primary", timeout=15)
        entry = status(loader)

    assert entry["version"] == sha256_bytes(files["forest"])


# The naive loader.


def test_naive_serves_good_file(
    tmp_path: Path, sources: dict[str, Path], files: dict[str, bytes]
) -> None:
    publish_all(tmp_path, sources)
    loader = make_loader(tmp_path, "naive")

    with started(loader):
        entry = status(loader)

    assert loader.integrity == "none"
    assert entry["tier"] == "primary"
    assert entry["version"] == sha256_bytes(files["forest"])
    assert loader.slots["global_model"].served.model is not None


def test_naive_truncated_stores_none(tmp_path: Path, files: dict[str, bytes]) -> None:
    data = files["forest"][:1000]
    (tmp_path / "global_model.pkl").write_bytes(data)
    loader = make_loader(tmp_path, "naive")

    with started(loader):
        entry = status(loader)

    assert loader.slots["global_model"].served.model is None
    assert entry["tier"] == "primary"
    assert entry["version"] == sha256_bytes(data)
    assert str(entry["last_error"]).startswith("global_model.pkl: ")


def test_naive_missing_file(tmp_path: Path) -> None:
    loader = make_loader(tmp_path, "naive")

    with started(loader):
        entry = status(loader)

    assert entry["tier"] == "primary"
    assert entry["version"] is None
    assert str(entry["last_error"]).startswith("global_model.pkl: FileNotFoundError:")


# The basic loader.


def test_basic_serves_good_file(
    tmp_path: Path, sources: dict[str, Path], files: dict[str, bytes]
) -> None:
    publish_all(tmp_path, sources)
    loader = make_loader(tmp_path, "basic")

    with started(loader):
        entry = status(loader)

    assert entry["tier"] == "primary"
    assert entry["version"] == sha256_bytes(files["forest"])
    assert entry["last_error"] is None


def test_basic_truncated_falls_back(
    tmp_path: Path, sources: dict[str, Path], files: dict[str, bytes]
) -> None:
    publish_backup(tmp_path, sources)
    (tmp_path / "global_model.pkl").write_bytes(b"")
    loader = make_loader(tmp_path, "basic")

    with started(loader):
        entry = status(loader)

    assert entry["tier"] == "backup"
    assert entry["version"] == sha256_bytes(files["other_forest"])
    assert str(entry["last_error"]).startswith("global_model.pkl: EOFError")


def test_basic_nothing_serves_dummy(tmp_path: Path) -> None:
    loader = make_loader(tmp_path, "basic")

    with started(loader):
        entry = status(loader)

    assert entry["tier"] == "dummy"
    assert entry["version"] is None
    last_error = str(entry["last_error"])
    assert last_error.startswith("global_model.pkl: FileNotFoundError:")
    assert "; global_model.pkl.backup: FileNotFoundError:" in last_error


def test_basic_rejects_object_without_predict(
    tmp_path: Path, files: dict[str, bytes]
) -> None:
    (tmp_path / "global_model.pkl").write_bytes(files["dict"])
    loader = make_loader(tmp_path, "basic")

    with started(loader):
        entry = status(loader)

    assert entry["tier"] == "dummy"
    assert str(entry["last_error"]).startswith(
        "global_model.pkl: the file contains a dict, which has no predict method"
    )


def test_basic_blocks_on_fifo(tmp_path: Path, sources: dict[str, Path]) -> None:
    publish_backup(tmp_path, sources)
    fifo = tmp_path / "global_model.pkl"
    os.mkfifo(fifo)
    loader = make_loader(tmp_path, "basic")
    thread = threading.Thread(target=loader.start, daemon=True)

    thread.start()
    try:
        thread.join(1.0)
        blocked = thread.is_alive()
    finally:
        # Opening the write end and closing it gives the blocked reader EOF.
        os.close(os.open(fifo, os.O_WRONLY))
        thread.join(10)

    assert blocked
    assert not thread.is_alive()
    entry = status(loader)
    assert entry["tier"] == "backup"
    assert str(entry["last_error"]).startswith("global_model.pkl: EOFError")


def test_unknown_loader(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match="unknown loader 'fancy': choose one of naive, basic, hardened"
    ):
        make_loader(tmp_path, "fancy")
