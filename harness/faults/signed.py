"""A damaged file that arrives with a correct, signed manifest.

This is what a bit flip in memory or a serializer bug between predicting and
writing produces: the manifest's sha256 and size describe the damaged bytes
and its HMAC is valid, but its canary outputs come from the undamaged model.
Only a loader that validates the canary outputs catches it.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import FaultError
from harness.faults._io import read_file
from harness.models import KnownModel, reference_manifest
from harness.timeline import FaultEvent, now
from target_service.manifest import (
    ManifestError,
    read_manifest,
    sha256_bytes,
    sign,
    write_manifest,
)


def sign_damaged(
    path: Path,
    reference: KnownModel,
    *,
    key: bytes,
    canary_inputs: list[list[float]] | None = None,
) -> FaultEvent:
    """Write a signed manifest for the damaged file at ``path``.

    The manifest carries the file's own sha256 and size, and ``reference``'s
    library versions and canary outputs. ``canary_inputs`` defaults to the
    inputs of the manifest already next to ``path``.
    """
    t_start = now()
    data = read_file(path, "sign")
    inputs = canary_inputs if canary_inputs is not None else _current_inputs(path)
    if len(inputs) != len(reference.probabilities):
        raise FaultError(
            f"{len(inputs)} canary inputs for {path}, but {reference.key} has "
            f"reference outputs for {len(reference.probabilities)}",
            path=path,
        )

    sha256 = sha256_bytes(data)
    manifest = reference_manifest(reference, inputs, sha256=sha256, size=len(data))
    try:
        write_manifest(path, sign(manifest, key))
    except OSError as err:
        raise FaultError(
            f"cannot write the manifest of {path}: {err}", path=path
        ) from err

    return FaultEvent(
        kind="sign_damaged",
        t_start=t_start,
        t_end=now(),
        path=str(path),
        params={"sha256": sha256, "size": len(data), "reference": reference.key},
        note=f"{path.name} given a correctly signed manifest with the canary "
        f"outputs of the undamaged {reference.key}",
    )


def _current_inputs(path: Path) -> list[list[float]]:
    try:
        return read_manifest(path).canary.inputs
    except ManifestError as err:
        raise FaultError(
            f"no canary inputs for {path}: {err}; pass canary_inputs", path=path
        ) from err
