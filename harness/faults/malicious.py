"""A malicious pickle, and the manifest a forger without the key would write.

Unpickling runs code that the file names. The payload here only creates a
marker file, so that a check can prove whether any process unpickled it.
"""

from __future__ import annotations

import pickle
import secrets
from pathlib import Path
from typing import Any

from harness.errors import FaultError
from harness.faults._io import read_file
from harness.timeline import FaultEvent, now
from target_service.manifest import (
    Canary,
    Manifest,
    ManifestError,
    library_versions,
    read_manifest,
    sha256_bytes,
    sign,
    write_bytes_atomic,
    write_manifest,
)


class _CreateMarker:
    """Pickles as a call to ``open(marker, "w")``, which creates the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def malicious_pickle(marker: Path | str) -> bytes:
    """Return a pickle that creates the file ``marker`` when it is unpickled.

    ``marker`` must be a valid path for the process that unpickles the file,
    which for a container target is a path inside the container. Unpickling
    returns an open file object, which has no ``predict`` method.
    """
    return pickle.dumps(_CreateMarker(str(marker)), protocol=2)


def write_malicious_pickle(path: Path, marker: Path | str) -> FaultEvent:
    """Replace the model file at ``path`` with a pickle that creates ``marker``."""
    t_start = now()
    data = malicious_pickle(marker)
    try:
        write_bytes_atomic(path, data)
    except OSError as err:
        raise FaultError(f"cannot write {path}: {err}", path=path) from err
    return FaultEvent(
        kind="malicious_pickle",
        t_start=t_start,
        t_end=now(),
        path=str(path),
        params={"marker": str(marker), "size": len(data)},
        note=f"{path.name} replaced by a pickle that creates {marker} when loaded",
    )


def forge_manifest(path: Path, name: str) -> FaultEvent:
    """Write a manifest with the file's right sha256 and size but an invalid HMAC.

    The forger has no key, so the HMAC is made with a random one. Everything
    else is copied from the current manifest when there is one, as a forger who
    can read the model directory would do.
    """
    t_start = now()
    data = read_file(path, "forge a manifest for")
    try:
        previous: Manifest | None = read_manifest(path)
    except ManifestError:
        previous = None

    copied: dict[str, Any] = {**library_versions(), "model_class": "unknown"}
    canary = Canary(inputs=[], probabilities=[], predictions=[])
    if previous is not None:
        copied = {field: getattr(previous, field) for field in copied}
        canary = previous.canary
    manifest = Manifest(
        model=name, sha256=sha256_bytes(data), size=len(data), canary=canary, **copied
    )
    try:
        write_manifest(path, sign(manifest, secrets.token_bytes(32)))
    except OSError as err:
        raise FaultError(
            f"cannot write the manifest of {path}: {err}", path=path
        ) from err

    return FaultEvent(
        kind="forge_manifest",
        t_start=t_start,
        t_end=now(),
        path=str(path),
        params={"sha256": manifest.sha256, "size": manifest.size},
        note=f"manifest of {path.name} forged: right sha256 and size, HMAC made "
        "with a key the target does not have",
    )
