"""Model manifests: the sha256, size, library versions and canary outputs of a file.

A manifest sits next to the file it describes (``<file>.manifest.json``). With a key
it carries an HMAC-SHA256 over its canonical JSON form, so a file and manifest
written by someone without the key can be told apart from published ones.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import platform
import re
import threading
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
MANIFEST_SUFFIX = ".manifest.json"


class ManifestError(Exception):
    """A manifest is missing, unreadable, malformed or does not match its file."""


@dataclass(frozen=True)
class Canary:
    """Inputs a model is checked on, with the outputs it gave when it was published."""

    inputs: list[list[float]]
    probabilities: list[list[float]]
    predictions: list[Any]


@dataclass(frozen=True)
class Manifest:
    """What the publisher recorded about one model file."""

    model: str
    sha256: str
    size: int
    sklearn_version: str
    numpy_version: str
    joblib_version: str
    python_version: str
    model_class: str
    canary: Canary
    created_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds")
    )
    format: int = FORMAT_VERSION
    hmac: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        try:
            canary = Canary(**data["canary"])
            fields = {k: v for k, v in data.items() if k != "canary"}
            manifest = cls(canary=canary, **fields)
        except (KeyError, TypeError) as err:
            raise ManifestError(f"malformed manifest: {err}") from err
        _check_field_types(manifest)
        return manifest


def _check_field_types(manifest: Manifest) -> None:
    # JSON from disk can hold any type, and a size given as a string would
    # otherwise look like a file that does not match its manifest.
    text_fields = ("model", "sha256", "sklearn_version", "model_class", "created_at")
    for name in text_fields:
        if not isinstance(getattr(manifest, name), str):
            raise ManifestError(f"malformed manifest: {name} must be a string")
    if not re.fullmatch(r"[0-9a-f]{64}", manifest.sha256):
        raise ManifestError(
            f"malformed manifest: sha256 {manifest.sha256!r} is not 64 hex digits"
        )
    if type(manifest.size) is not int or manifest.size < 0:
        raise ManifestError(
            f"malformed manifest: size {manifest.size!r} is not a byte count"
        )
    if manifest.format != FORMAT_VERSION:
        raise ManifestError(
            f"unsupported manifest format {manifest.format!r}, "
            f"this version reads format {FORMAT_VERSION}"
        )
    if manifest.hmac is not None and not isinstance(manifest.hmac, str):
        raise ManifestError("malformed manifest: hmac must be a string or null")
    canary = manifest.canary
    if not all(
        isinstance(part, list)
        for part in (canary.inputs, canary.probabilities, canary.predictions)
    ):
        raise ManifestError("malformed manifest: canary fields must be lists")


def manifest_path(model_path: Path) -> Path:
    """Return the manifest path of a model file (``x.pkl.manifest.json``)."""
    return model_path.with_name(model_path.name + MANIFEST_SUFFIX)


def sha256_bytes(data: bytes) -> str:
    """Return the sha256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def library_versions() -> dict[str, str]:
    """Return the versions recorded in a manifest, read from the running interpreter."""
    import joblib
    import numpy
    import sklearn

    return {
        "sklearn_version": sklearn.__version__,
        "numpy_version": numpy.__version__,
        "joblib_version": joblib.__version__,
        "python_version": platform.python_version(),
    }


def _signed_payload(manifest: Manifest) -> bytes:
    data = manifest.to_json()
    data.pop("hmac", None)
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def sign(manifest: Manifest, key: bytes) -> Manifest:
    """Return a copy of ``manifest`` carrying an HMAC-SHA256 made with ``key``."""
    digest = hmac.new(key, _signed_payload(manifest), hashlib.sha256).hexdigest()
    return replace(manifest, hmac=digest)


def signature_valid(manifest: Manifest, key: bytes) -> bool:
    """Return whether ``manifest`` carries a valid HMAC made with ``key``."""
    if manifest.hmac is None:
        return False
    expected = hmac.new(key, _signed_payload(manifest), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, manifest.hmac)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file only.

    The bytes go to a temporary file in the same directory, are fsynced, and the
    file is renamed over ``path``. Then the directory is fsynced so the rename
    survives a power loss.
    """
    # A name unique to this process and thread, so that two writers never share
    # a temporary file. open() rather than mkstemp keeps the umask's mode, so a
    # service running as another user can still read the published file.
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(path: Path, manifest: Manifest) -> None:
    """Write ``manifest`` next to the model file at ``path``, atomically."""
    text = json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n"
    write_bytes_atomic(manifest_path(path), text.encode())


def read_manifest(path: Path) -> Manifest:
    """Read the manifest of the model file at ``path``.

    Raises :class:`ManifestError` when it is missing or malformed.
    """
    mpath = manifest_path(path)
    try:
        raw = mpath.read_bytes()
    except FileNotFoundError as err:
        raise ManifestError(f"manifest {mpath} is missing") from err
    except OSError as err:
        raise ManifestError(f"manifest {mpath} is unreadable: {err}") from err
    return parse_manifest(raw, mpath)


def parse_manifest(raw: bytes, source: Path) -> Manifest:
    """Parse the bytes of a manifest file; ``source`` names it in errors.

    Raises :class:`ManifestError` when the bytes are not a valid manifest.
    """
    try:
        data = json.loads(raw)
    except ValueError as err:
        raise ManifestError(f"manifest {source} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise ManifestError(f"manifest {source} is not a JSON object")
    return Manifest.from_json(data)


def read_key_file(path: Path) -> bytes:
    """Read an HMAC key from ``path``, without the line ending that ends most files.

    Only a trailing CR or LF is removed: any other byte belongs to the key, so a
    key made of random bytes survives as long as it does not end in one of
    those. Write keys as text (for example hex) to be safe. Raises
    :class:`OSError` when the file cannot be read and :class:`ValueError` when
    it contains no key.
    """
    key = path.read_bytes().rstrip(b"\r\n")
    if not key:
        raise ValueError(f"HMAC key file {path} is empty")
    return key
