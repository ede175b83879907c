"""The model files a run tests with, and the reference outputs that identify them.

A model set holds, for each served model name (``global_model``,
``champion_model``), several versions: ``v1`` (the primary at start),
``v2`` (published later), ``backup`` and, for the built-in models, files pickled
by an older scikit-learn (``sklearn-1.2.2``). Each version's predicted
probabilities on the model's canary inputs differ from the others', so the
predictions alone tell which file answered. The dummy model is known as
``dummy``.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np

import models
import models.train
from harness.errors import ModelSetError, UsageError
from target_service.manifest import (
    Canary,
    Manifest,
    library_versions,
    sha256_bytes,
    sign,
    write_bytes_atomic,
    write_manifest,
)

logger = logging.getLogger(__name__)

MODEL_NAMES = models.train.MODEL_NAMES
DUMMY_KEY = "dummy"
DUMMY_PROBABILITIES = (0.9, 0.1)
FIXTURES_DIR = Path(models.__file__).resolve().parent / "fixtures"

# Probabilities match a reference when no value differs by more than this. The
# versions of one built-in model differ by more than 1e-3 (models/train.py checks
# that). The same file on another machine or BLAS should differ by rounding
# only, far below 1e-6 (an estimate, not measured across machines).
MATCH_TOLERANCE = 1e-6

USER_CANARY_ROWS = 8
USER_CANARY_SEED = 20261204

# A cached folder of models that no run has used for this many days is removed,
# so that library upgrades and changed user models do not pile up copies.
CACHE_UNUSED_DAYS = 30


@dataclass(frozen=True)
class KnownModel:
    """One model file the harness can install, with its reference canary outputs.

    ``foreign`` is true when the file was pickled by another scikit-learn version
    than the one running the harness. The version and class fields are what the
    file's manifest records.
    """

    key: str
    model: str | None
    version: str
    path: Path | None
    sha256: str | None
    probabilities: list[list[float]]
    predictions: list[Any]
    sklearn_version: str | None
    foreign: bool
    numpy_version: str | None = None
    joblib_version: str | None = None
    python_version: str | None = None
    model_class: str | None = None
    size: int | None = None


@dataclass
class ModelSet:
    """The known versions of every served model, and their canary inputs."""

    names: tuple[str, ...]
    canary_inputs: dict[str, list[list[float]]]
    known: dict[str, KnownModel] = field(default_factory=dict)
    builtin: bool = True

    def get(self, model: str, version: str) -> KnownModel:
        """Return one known version; ``version="dummy"`` returns the dummy model.

        Raises :class:`ModelSetError` naming the known versions when it is unknown.
        """
        key = DUMMY_KEY if version == DUMMY_KEY else f"{model}@{version}"
        try:
            return self.known[key]
        except KeyError:
            available = ", ".join(sorted(self.known))
            raise ModelSetError(
                f"unknown model version {key!r}; this model set has: {available}"
            ) from None

    def has(self, model: str, version: str) -> bool:
        key = DUMMY_KEY if version == DUMMY_KEY else f"{model}@{version}"
        return key in self.known

    def identify(self, model: str, probabilities: Any) -> tuple[str, ...]:
        """Return the keys of the known models whose reference outputs match.

        ``probabilities`` is what a prediction on ``model``'s canary inputs
        returned. Several keys come back when files predict alike, as a copied
        backup or the same settings pickled by two versions do. The result is
        empty when the output matches no known model or is not a numeric matrix.
        """
        try:
            observed = np.asarray(probabilities, dtype=np.float64)
        except (TypeError, ValueError):
            return ()
        if observed.ndim != 2 or observed.size == 0:
            return ()

        matches = []
        for key, known in self.known.items():
            if key == DUMMY_KEY:
                if _is_dummy_output(observed):
                    matches.append(key)
                continue
            if known.model != model:
                continue
            reference = np.asarray(known.probabilities, dtype=np.float64)
            if reference.shape == observed.shape and np.allclose(
                observed, reference, rtol=0.0, atol=MATCH_TOLERANCE
            ):
                matches.append(key)
        return tuple(matches)

    def by_sha256(self, sha256: str) -> KnownModel | None:
        """Return the first known model whose file has this sha256, or ``None``."""
        for known in self.known.values():
            if known.sha256 == sha256:
                return known
        return None

    def install(
        self,
        model_dir: Path,
        model: str,
        version: str,
        *,
        key: bytes | None,
        as_backup: bool = False,
        manifest: bool = True,
    ) -> Path:
        """Copy a known version into ``model_dir`` as the primary or backup file.

        The file is written atomically, then its manifest (signed when ``key`` is
        given), which records the file's own library versions and its reference
        canary outputs. With ``manifest=False`` an existing manifest is left as
        it is, so it may no longer match the file. Returns the installed path.
        """
        known = self.get(model, version)
        if known.path is None or known.sha256 is None:
            raise ModelSetError(f"{known.key} has no file to install")
        dest = model_dir / (f"{model}.pkl.backup" if as_backup else f"{model}.pkl")

        try:
            data = known.path.read_bytes()
        except OSError as err:
            raise ModelSetError(
                f"cannot read {known.path} for {known.key}: {err}", path=known.path
            ) from err
        if sha256_bytes(data) != known.sha256:
            raise ModelSetError(
                f"{known.path} no longer has the sha256 recorded for {known.key}; "
                "delete the model cache so that the files are made again",
                path=known.path,
            )

        try:
            write_bytes_atomic(dest, data)
            if manifest:
                record = reference_manifest(
                    known,
                    self.canary_inputs[model],
                    sha256=known.sha256,
                    size=len(data),
                )
                write_manifest(dest, sign(record, key) if key is not None else record)
        except OSError as err:
            raise ModelSetError(f"cannot install {known.key} as {dest}: {err}") from err
        logger.info("installed %s as %s", known.key, dest)
        return dest

    def populate(
        self, model_dir: Path, *, key: bytes | None, backup: bool = True
    ) -> None:
        """Install ``v1`` of every model as primary and, with ``backup``, its backup."""
        for name in self.names:
            self.install(model_dir, name, "v1", key=key)
            if backup:
                self.install(model_dir, name, "backup", key=key, as_backup=True)


def reference_manifest(
    known: KnownModel, canary_inputs: list[list[float]], *, sha256: str, size: int
) -> Manifest:
    """Build an unsigned manifest with ``known``'s versions and canary outputs.

    ``sha256`` and ``size`` describe the file the manifest is written for, which
    is ``known``'s own file when installing and a damaged copy for a signed fault.
    """
    if known.model is None:
        raise ModelSetError(f"{known.key} is not a model file and has no manifest")
    running = library_versions()
    return Manifest(
        model=known.model,
        sha256=sha256,
        size=size,
        sklearn_version=known.sklearn_version or running["sklearn_version"],
        numpy_version=known.numpy_version or running["numpy_version"],
        joblib_version=known.joblib_version or running["joblib_version"],
        python_version=known.python_version or running["python_version"],
        model_class=known.model_class or "unknown",
        canary=Canary(
            inputs=canary_inputs,
            probabilities=known.probabilities,
            predictions=known.predictions,
        ),
    )


def _is_dummy_output(observed: np.ndarray) -> bool:
    if observed.shape[1] != len(DUMMY_PROBABILITIES):
        return False
    expected = np.broadcast_to(np.asarray(DUMMY_PROBABILITIES), observed.shape)
    return bool(np.allclose(observed, expected, rtol=0.0, atol=MATCH_TOLERANCE))


def dummy_model(rows: int) -> KnownModel:
    """Return the dummy model's entry for ``rows`` canary inputs."""
    return KnownModel(
        key=DUMMY_KEY,
        model=None,
        version=DUMMY_KEY,
        path=None,
        sha256=None,
        probabilities=[list(DUMMY_PROBABILITIES) for _ in range(rows)],
        predictions=[0] * rows,
        sklearn_version=None,
        foreign=False,
    )


# The built-in models.


def builtin_model_set(cache_dir: Path) -> ModelSet:
    """Return the reference models, training them into ``cache_dir`` when missing.

    The files live in ``cache_dir/<key>``, where the key hashes the scikit-learn,
    numpy and joblib versions and the source of ``models/train.py``, so that a new
    library or recipe trains again. A lock file makes parallel workers (pytest-xdist)
    train once. Other keys' folders that no run used for ``CACHE_UNUSED_DAYS`` are
    removed. The old-version fixtures in ``models/fixtures`` are added as foreign
    versions.
    """
    directory = cache_dir / _cache_key()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with _locked(cache_dir / f"{directory.name}.lock"):
            if not _cache_valid(directory):
                _train_into(directory)
            _use_cache_entry(directory)
    except OSError as err:
        raise ModelSetError(
            f"cannot prepare the model cache {cache_dir}: {err}", path=cache_dir
        ) from err

    canary_inputs, known = _read_reference(directory)
    model_set = ModelSet(MODEL_NAMES, canary_inputs, known, builtin=True)
    for fixture_dir in sorted(FIXTURES_DIR.glob(f"*/{models.train.REFERENCE_FILE}")):
        _add_fixtures(model_set, fixture_dir.parent)
    model_set.known[DUMMY_KEY] = dummy_model(len(models.train.CANARY_ROWS))
    return model_set


def _use_cache_entry(entry: Path) -> None:
    """Mark the cache folder ``entry`` as used now; remove siblings unused for long.

    The folder's modification time records its last use. A sibling in use by a
    run elsewhere was marked when that run started, so only folders of library
    versions or models that no run has used for ``CACHE_UNUSED_DAYS`` go.
    """
    os.utime(entry)
    cutoff = time.time() - CACHE_UNUSED_DAYS * 24 * 3600
    for sibling in entry.parent.iterdir():
        # Hidden folders are trainings in progress, and files are lock files.
        if sibling == entry or sibling.name.startswith(".") or not sibling.is_dir():
            continue
        try:
            used = sibling.stat().st_mtime
        except FileNotFoundError:
            continue  # another run removed it first
        if used < cutoff:
            shutil.rmtree(sibling, ignore_errors=True)
            (entry.parent / f"{sibling.name}.lock").unlink(missing_ok=True)
            logger.info(
                "removed the model cache %s, unused for %d days",
                sibling,
                (time.time() - used) // (24 * 3600),
            )


def _cache_key() -> str:
    source = Path(models.train.__file__).read_bytes()
    digest = hashlib.sha256()
    for part in (models.train.sklearn_version(), np.__version__, joblib.__version__):
        digest.update(part.encode() + b"\0")
    digest.update(source)
    return digest.hexdigest()[:16]


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _cache_valid(directory: Path) -> bool:
    """Return whether a cached training run is complete and its files unchanged."""
    reference_path = directory / models.train.REFERENCE_FILE
    if not reference_path.is_file():
        return False
    try:
        reference = json.loads(reference_path.read_text(encoding="utf-8"))
        for entry in reference["models"].values():
            data = (directory / entry["file"]).read_bytes()
            if sha256_bytes(data) != entry["sha256"]:
                logger.warning("%s changed since training; training again", directory)
                return False
    except (OSError, ValueError, KeyError, TypeError) as err:
        logger.warning(
            "model cache %s is unusable (%s); training again", directory, err
        )
        return False
    return True


def _train_into(directory: Path) -> None:
    logger.info("training the reference models into %s", directory)
    scratch = directory.with_name(f".{directory.name}.training")
    shutil.rmtree(scratch, ignore_errors=True)
    models.train.train_models(scratch)
    shutil.rmtree(directory, ignore_errors=True)
    scratch.rename(directory)


def _read_reference(
    directory: Path,
) -> tuple[dict[str, list[list[float]]], dict[str, KnownModel]]:
    path = directory / models.train.REFERENCE_FILE
    try:
        reference = json.loads(path.read_text(encoding="utf-8"))
        canary_inputs = {
            name: [[float(x) for x in row] for row in rows]
            for name, rows in reference["canary_inputs"].items()
        }
        known = {
            key: _known_from_entry(key, entry, directory)
            for key, entry in reference["models"].items()
        }
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelSetError(
            f"cannot read model reference {path}: {err}", path=path
        ) from err
    return canary_inputs, known


def _known_from_entry(key: str, entry: dict[str, Any], directory: Path) -> KnownModel:
    return KnownModel(
        key=key,
        model=entry["model"],
        version=entry["version"],
        path=directory / entry["file"],
        sha256=entry["sha256"],
        probabilities=entry["probabilities"],
        predictions=entry["predictions"],
        sklearn_version=entry["sklearn_version"],
        foreign=entry["sklearn_version"] != models.train.sklearn_version(),
        numpy_version=entry["numpy_version"],
        joblib_version=entry["joblib_version"],
        python_version=entry["python_version"],
        model_class=entry["model_class"],
        size=entry["size"],
    )


def _add_fixtures(model_set: ModelSet, fixture_dir: Path) -> None:
    canary_inputs, known = _read_reference(fixture_dir)
    for key, known_model in known.items():
        name = known_model.model
        if name is None or name not in model_set.names:
            continue
        # The fixture's canary outputs are valid only for the same inputs.
        if canary_inputs.get(name) != model_set.canary_inputs[name]:
            raise ModelSetError(
                f"{fixture_dir} was made with other canary inputs than models/train.py "
                "now uses; remake the fixtures with `tox -e old-fixtures`",
                path=fixture_dir,
            )
        model_set.known[key] = known_model


# Models the user brings.


def user_model_set(directory: Path, cache_dir: Path) -> ModelSet:
    """Return a model set made from the model files in the user's directory.

    ``v1`` is the user's file and ``backup`` the user's ``<name>.pkl.backup`` when
    present, else a copy of ``v1``. ``v2`` is ``v1`` loaded and dumped again with
    another pickle protocol: another sha256, the same predictions. Copies go to
    ``cache_dir``, so that faults never touch the user's files. Canary inputs are
    drawn with a fixed seed from the model's ``n_features_in_``.
    """
    if not directory.is_dir():
        raise UsageError(
            f"model directory {directory} does not exist or is not a directory; "
            "pass a directory with global_model.pkl, champion_model.pkl or both"
        )
    found = [name for name in MODEL_NAMES if (directory / f"{name}.pkl").is_file()]
    if not found:
        raise UsageError(
            f"model directory {directory} contains neither global_model.pkl nor "
            "champion_model.pkl; put one or both there (optionally with "
            "<name>.pkl.backup) or leave out --models to use the built-in models"
        )

    model_set = ModelSet(tuple(found), {}, {}, builtin=False)
    for name in found:
        _add_user_model(model_set, directory, cache_dir, name)
    model_set.known[DUMMY_KEY] = dummy_model(USER_CANARY_ROWS)
    return model_set


def _add_user_model(
    model_set: ModelSet, directory: Path, cache_dir: Path, name: str
) -> None:
    source = directory / f"{name}.pkl"
    data = _read_user_file(source)
    model, pickled_by = _load_user_model(source, data)
    inputs = _draw_canary_inputs(source, model)
    model_set.canary_inputs[name] = inputs

    out = cache_dir / "user" / f"{name}-{sha256_bytes(data)[:16]}"
    out.mkdir(parents=True, exist_ok=True)
    _use_cache_entry(out)
    v1 = _store(out / f"{name}.v1.pkl", data)
    model_set.known[f"{name}@v1"] = _user_known(
        name, "v1", v1, model, inputs, pickled_by
    )

    # v2 is the same object pickled again, so its predictions equal v1's: only
    # the sha256 in /health can tell v1, v2 and a copied backup apart. Pickling
    # gives other bytes in each process, so the first copy stays, and parallel
    # workers agree on its sha256.
    v2 = out / f"{name}.v2.pkl"
    with _locked(out.parent / f"{out.name}.lock"):
        if not v2.is_file():
            write_bytes_atomic(v2, _dump_with_other_protocol(model, data))
    model_set.known[f"{name}@v2"] = _user_known(
        name, "v2", v2, model, inputs, models.train.sklearn_version()
    )

    backup_source = directory / f"{name}.pkl.backup"
    if backup_source.is_file():
        backup_data = _read_user_file(backup_source)
        backup_model, backup_by = _load_user_model(backup_source, backup_data)
        if backup_model.n_features_in_ != model.n_features_in_:
            raise UsageError(
                f"{backup_source} expects {backup_model.n_features_in_} features but "
                f"{source} expects {model.n_features_in_}; a backup must take the "
                "same inputs as its primary"
            )
    else:
        backup_data, backup_model, backup_by = data, model, pickled_by
    backup = _store(out / f"{name}.backup.pkl", backup_data)
    model_set.known[f"{name}@backup"] = _user_known(
        name, "backup", backup, backup_model, inputs, backup_by
    )


def _read_user_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read model file {path}: {err}") from err


def _load_user_model(path: Path, data: bytes) -> tuple[Any, str]:
    """Load a user's model; return it and the scikit-learn version that pickled it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = joblib.load(io.BytesIO(data))
        except Exception as err:
            raise UsageError(
                f"cannot load model file {path} with scikit-learn "
                f"{models.train.sklearn_version()}: {type(err).__name__}: {err}"
            ) from err

    pickled_by = models.train.sklearn_version()
    for warning in caught:
        original = getattr(warning.message, "original_sklearn_version", None)
        if original is not None:
            pickled_by = str(original)
        else:
            logger.warning("loading %s: %s", path, warning.message)
    if pickled_by != models.train.sklearn_version():
        logger.warning(
            "%s was pickled by scikit-learn %s, not the running %s; a loader that "
            "checks versions rejects it",
            path,
            pickled_by,
            models.train.sklearn_version(),
        )

    missing = [
        attribute
        for attribute in ("predict", "predict_proba", "n_features_in_")
        if not hasattr(model, attribute)
    ]
    if missing:
        raise UsageError(
            f"model file {path} contains a {type(model).__name__} without "
            f"{', '.join(missing)}; the harness needs a fitted classifier"
        )
    return model, pickled_by


def _draw_canary_inputs(path: Path, model: Any) -> list[list[float]]:
    try:
        features = int(model.n_features_in_)
    except (TypeError, ValueError) as err:
        raise UsageError(
            f"model file {path} has an invalid n_features_in_: {err}"
        ) from err
    rng = np.random.default_rng(USER_CANARY_SEED)
    rows = rng.standard_normal((USER_CANARY_ROWS, features))
    return [[float(x) for x in row] for row in rows]


def _dump_with_other_protocol(model: Any, original: bytes) -> bytes:
    for protocol in (4, 3, 2):
        buffer = io.BytesIO()
        joblib.dump(model, buffer, protocol=protocol)
        if sha256_bytes(buffer.getvalue()) != sha256_bytes(original):
            return buffer.getvalue()
    raise ModelSetError("pickling the model again gave the same bytes every time")


def _store(path: Path, data: bytes) -> Path:
    if not path.is_file() or path.read_bytes() != data:
        write_bytes_atomic(path, data)
    return path


def _user_known(
    name: str,
    version: str,
    path: Path,
    model: Any,
    inputs: list[list[float]],
    pickled_by: str,
) -> KnownModel:
    outputs = _canary_outputs(path, model, inputs)
    data = path.read_bytes()
    running = library_versions()
    return KnownModel(
        key=f"{name}@{version}",
        model=name,
        version=version,
        path=path,
        sha256=sha256_bytes(data),
        probabilities=outputs["probabilities"],
        predictions=outputs["predictions"],
        sklearn_version=pickled_by,
        foreign=pickled_by != models.train.sklearn_version(),
        # NOTE: a user's file does not record which numpy and joblib wrote it, so
        # the manifest gets the versions running here.
        numpy_version=running["numpy_version"],
        joblib_version=running["joblib_version"],
        python_version=running["python_version"],
        model_class=models.train.model_class(model),
        size=len(data),
    )


def _canary_outputs(
    path: Path, model: Any, inputs: list[list[float]]
) -> dict[str, Any]:
    try:
        return models.train.canary_outputs(model, inputs)
    except Exception as err:
        raise UsageError(
            f"model file {path} failed to predict on {len(inputs)} random canary "
            f"rows: {type(err).__name__}: {err}"
        ) from err
