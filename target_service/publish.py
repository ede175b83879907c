"""Publish a model file the way a careful training job does.

The model goes to a temporary file in the model directory, is fsynced and is
renamed over the old one. Its manifest (sha256, size, library versions, model
class, canary inputs and outputs, and an HMAC when a key is given) is written
the same way next, and then the directory is fsynced. A reader therefore sees
the old file or the new one, never a mix. Only between the two renames does
the manifest not match the file.

Run as ``python -m target_service.publish --model-dir DIR --name NAME --source FILE``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from target_service.config import backup_path, check_model_name, primary_path
from target_service.failures import describe_exception
from target_service.manifest import (
    Canary,
    Manifest,
    ManifestError,
    fsync_directory,
    library_versions,
    manifest_path,
    parse_manifest,
    read_key_file,
    sha256_bytes,
    sign,
    write_bytes_atomic,
    write_manifest,
)

logger = logging.getLogger(__name__)

CANARY_ROWS = 8


class PublishError(Exception):
    """A model could not be published; the message names the file and the reason."""


def publish(
    model_dir: Path,
    name: str,
    source: Path,
    *,
    key: bytes | None = None,
    canary_inputs: list[list[float]] | None = None,
    rotate_backup: bool = False,
    as_backup: bool = False,
) -> Manifest:
    """Write ``source`` as model ``name`` in ``model_dir`` with its manifest.

    With ``rotate_backup`` the current primary and its manifest are first copied
    to the backup names. With ``as_backup`` the model is written as the backup
    instead of the primary. Canary inputs default to
    :func:`make_canary_inputs`. Returns the manifest written. Raises
    :class:`PublishError`.
    """
    try:
        check_model_name(name)
    except ValueError as err:
        raise PublishError(str(err)) from err
    if rotate_backup and as_backup:
        raise PublishError(
            "rotate_backup and as_backup cannot be combined: a backup publish "
            "would overwrite the backup it just rotated"
        )

    data = _read_source(source)
    model = _load_source(data, source)
    inputs = canary_inputs if canary_inputs is not None else make_canary_inputs(model)
    manifest = build_manifest(name, data, model, inputs)
    if key is not None:
        manifest = sign(manifest, key)

    if rotate_backup:
        rotate_to_backup(model_dir, name)
    target = (backup_path if as_backup else primary_path)(model_dir, name)
    try:
        write_bytes_atomic(target, data)
        write_manifest(target, manifest)
        fsync_directory(model_dir)
    except OSError as err:
        raise PublishError(f"cannot write {target}: {describe_exception(err)}") from err
    logger.info(
        "published %s to %s (sha256 %s, %d bytes)",
        source,
        target,
        manifest.sha256,
        manifest.size,
    )
    return manifest


def build_manifest(
    name: str,
    data: bytes,
    model: object,
    canary_inputs: list[list[float]],
    *,
    versions: dict[str, str] | None = None,
) -> Manifest:
    """Describe the model file ``data``, recording ``model``'s canary outputs.

    ``model`` must be the object that ``data`` unpickles to. ``versions``
    replaces entries of :func:`~target_service.manifest.library_versions`, for
    example ``{"sklearn_version": "1.2.2"}`` for a model pickled elsewhere.
    Raises :class:`PublishError` when the canary inputs are not a non-empty
    table of numbers or the model cannot predict them.
    """
    recorded = library_versions()
    unknown = set(versions or {}) - set(recorded)
    if unknown:
        raise PublishError(
            f"unknown version keys {sorted(unknown)}: use {sorted(recorded)}"
        )
    recorded.update(versions or {})

    inputs = _canary_array(canary_inputs)
    try:
        probabilities = np.asarray(model.predict_proba(inputs), dtype=np.float64)  # type: ignore[attr-defined]
        predictions = model.predict(inputs).tolist()  # type: ignore[attr-defined]
    except Exception as err:
        raise PublishError(
            f"the model failed on its canary inputs: {describe_exception(err)}"
        ) from err

    model_type = type(model)
    return Manifest(
        model=name,
        sha256=sha256_bytes(data),
        size=len(data),
        sklearn_version=recorded["sklearn_version"],
        numpy_version=recorded["numpy_version"],
        joblib_version=recorded["joblib_version"],
        python_version=recorded["python_version"],
        model_class=f"{model_type.__module__}.{model_type.__qualname__}",
        canary=Canary(
            inputs=inputs.tolist(),
            probabilities=probabilities.tolist(),
            predictions=predictions,
        ),
    )


def make_canary_inputs(
    model: object, rows: int = CANARY_ROWS, seed: int = 0
) -> list[list[float]]:
    """Draw ``rows`` canary rows with the model's ``n_features_in_`` columns.

    Each column gets its own scale between 0.01 and 1000, so that rows reach
    past the thresholds of models trained on raw, unscaled features. Values are
    rounded to six significant digits to keep manifests readable. Raises
    :class:`PublishError` when the model does not say how many features it takes.
    """
    features = getattr(model, "n_features_in_", None)
    if not isinstance(features, int | np.integer) or features < 1:
        raise PublishError(
            f"cannot draw canary inputs: the {type(model).__name__} has no "
            "n_features_in_; pass canary inputs (--canary-inputs FILE.json)"
        )
    rng = np.random.default_rng(seed)
    scales = 10.0 ** rng.uniform(-2, 3, size=int(features))
    values = rng.standard_normal((rows, int(features))) * scales
    return [[float(f"{value:.6g}") for value in row] for row in values]


def rotate_to_backup(model_dir: Path, name: str) -> None:
    """Copy the primary file of ``name`` and its manifest to the backup names.

    Raises :class:`PublishError` when the primary's manifest is missing or does
    not match the file, because the backup would then never load. Does nothing
    but log when there is no primary yet.
    """
    primary = primary_path(model_dir, name)
    backup = backup_path(model_dir, name)
    try:
        data = primary.read_bytes()
    except FileNotFoundError:
        logger.warning("nothing to rotate: %s does not exist", primary)
        return
    except OSError as err:
        raise PublishError(f"cannot read {primary}: {describe_exception(err)}") from err

    mpath = manifest_path(primary)
    try:
        raw_manifest = mpath.read_bytes()
        manifest = parse_manifest(raw_manifest, mpath)
    except (OSError, ManifestError) as err:
        raise PublishError(
            f"cannot rotate {primary} to the backup: its manifest is unusable "
            f"({err}); publish the primary again or drop --rotate-backup"
        ) from err
    if manifest.sha256 != sha256_bytes(data):
        raise PublishError(
            f"cannot rotate {primary} to the backup: it does not match its manifest "
            "(an update may be in progress); try again once it is complete"
        )

    try:
        write_bytes_atomic(backup, data)
        write_bytes_atomic(manifest_path(backup), raw_manifest)
    except OSError as err:
        raise PublishError(f"cannot write {backup}: {describe_exception(err)}") from err
    logger.info("rotated %s to %s", primary, backup)


def _read_source(source: Path) -> bytes:
    try:
        return source.read_bytes()
    except OSError as err:
        raise PublishError(
            f"cannot read model file {source}: {describe_exception(err)}"
        ) from err


def _load_source(data: bytes, source: Path) -> Any:
    try:
        model = joblib.load(io.BytesIO(data))
    except Exception as err:
        raise PublishError(
            f"{source} is not a loadable joblib model file: {describe_exception(err)}"
        ) from err
    for method in ("predict", "predict_proba"):
        if not callable(getattr(model, method, None)):
            raise PublishError(
                f"{source} contains a {type(model).__name__}, which has no {method} "
                "method"
            )
    return model


def _canary_array(canary_inputs: list[list[float]]) -> np.ndarray:
    try:
        inputs = np.asarray(canary_inputs, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise PublishError(f"canary inputs are not a table of numbers: {err}") from err
    if inputs.ndim != 2 or inputs.shape[0] == 0 or inputs.shape[1] == 0:
        raise PublishError(
            f"canary inputs must be a non-empty list of rows, got shape {inputs.shape}"
        )
    if not np.isfinite(inputs).all():
        raise PublishError("canary inputs must be finite numbers")
    return inputs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m target_service.publish",
        description="Write a model file and its manifest atomically.",
    )
    parser.add_argument(
        "--model-dir", type=Path, required=True, help="directory the service reads"
    )
    parser.add_argument(
        "--name", required=True, help="model name, for example global_model"
    )
    parser.add_argument(
        "--source", type=Path, required=True, help="joblib model file to publish"
    )
    parser.add_argument(
        "--hmac-key-file", type=Path, help="file with the key that signs the manifest"
    )
    parser.add_argument(
        "--rotate-backup",
        action="store_true",
        help="copy the current primary and its manifest to the backup names first",
    )
    parser.add_argument(
        "--as-backup",
        action="store_true",
        help="write NAME.pkl.backup instead of NAME.pkl",
    )
    parser.add_argument(
        "--canary-inputs",
        type=Path,
        help="JSON file with a list of rows to record canary outputs on "
        f"(default {CANARY_ROWS} rows drawn with a fixed seed)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")

    if not args.model_dir.is_dir():
        parser.error(
            f"--model-dir {args.model_dir} is not a directory: create it first"
        )
    if not args.source.is_file():
        parser.error(
            f"--source {args.source} is not a file: pass the model file to publish"
        )
    try:
        check_model_name(args.name)
    except ValueError as err:
        parser.error(f"--name: {err}")
    if args.rotate_backup and args.as_backup:
        parser.error("--rotate-backup and --as-backup cannot be combined: pass one")
    key = None
    if args.hmac_key_file is not None:
        try:
            key = read_key_file(args.hmac_key_file)
        except (OSError, ValueError) as err:
            parser.error(
                f"--hmac-key-file {args.hmac_key_file} cannot be used ({err}): "
                "pass a readable file that holds the key"
            )
    canary_inputs = None
    if args.canary_inputs is not None:
        canary_inputs = _read_canary_file(parser, args.canary_inputs)

    try:
        manifest = publish(
            args.model_dir,
            args.name,
            args.source,
            key=key,
            canary_inputs=canary_inputs,
            rotate_backup=args.rotate_backup,
            as_backup=args.as_backup,
        )
    except PublishError as err:
        print(f"publish failed: {err}", file=sys.stderr)
        return 1
    target = backup_path if args.as_backup else primary_path
    print(f"{target(args.model_dir, args.name)} {manifest.sha256}")
    return 0


def _read_canary_file(parser: argparse.ArgumentParser, path: Path) -> list[list[float]]:
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        parser.error(f"--canary-inputs {path} cannot be read as JSON: {err}")
    if not (
        isinstance(rows, list)
        and rows
        and all(isinstance(row, list) and row for row in rows)
    ):
        parser.error(
            f"--canary-inputs {path} must hold a non-empty JSON list of rows, "
            "for example [[0.1, 2.5], [1.0, 0.0]]"
        )
    return rows


if __name__ == "__main__":
    sys.exit(main())
