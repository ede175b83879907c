"""The files a sweep leaves: sweep.json and the damaged copies worth keeping.

``sweep.json`` is validated against ``harness/report/sweep.schema.json``
(JSON Schema draft 2020-12) before it is written. Each copy that crashed, hung
or was served with wrong predictions is saved under ``damaged/`` with a JSON
sidecar that records the seed, the damage and the verdict.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from harness.errors import HarnessError
from harness.sweep.result import CaseResult, SweepResult
from target_service.manifest import sha256_bytes

SAVED_VERDICTS = frozenset({"crash", "hang", "silent_corruption"})
DAMAGED_DIR = "damaged"

_MAX_SCHEMA_ERRORS = 5


def save_copy(
    out_dir: Path, case: CaseResult, data: bytes, *, seed: int, loader: str
) -> Path:
    """Write the damaged copy of ``data`` for ``case`` and its sidecar; return the copy.

    The names carry the kind, the index and the verdict
    (``damaged/array-00017-crash.pkl`` and ``.json``).
    """
    directory = out_dir / DAMAGED_DIR
    directory.mkdir(parents=True, exist_ok=True)
    damage = case.damage
    path = directory / f"{damage.kind}-{damage.index:05d}-{case.verdict}.pkl"
    damaged = damage.apply(data)
    path.write_bytes(damaged)
    sidecar = {
        **case.to_json(),
        "saved_file": str(path),
        "seed": seed,
        "loader": loader,
        "original_sha256": sha256_bytes(data),
        "sha256": sha256_bytes(damaged),
    }
    path.with_suffix(".json").write_text(
        json.dumps(sidecar, indent=2) + "\n", encoding="utf-8"
    )
    return path


def load_schema() -> dict[str, Any]:
    """Return the JSON Schema of sweep.json, as shipped in harness/report."""
    text = (
        resources.files("harness.report")
        .joinpath("sweep.schema.json")
        .read_text("utf-8")
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_sweep(document: dict[str, Any]) -> None:
    """Raise HarnessError listing the first schema errors of a sweep.json document."""
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(document), key=lambda e: e.json_path)
    if not errors:
        return
    listed = "; ".join(
        f"{e.json_path}: {e.message}" for e in errors[:_MAX_SCHEMA_ERRORS]
    )
    if len(errors) > _MAX_SCHEMA_ERRORS:
        listed += f"; and {len(errors) - _MAX_SCHEMA_ERRORS} more"
    raise HarnessError(f"sweep.json does not match its schema: {listed}")


def write_sweep_json(result: SweepResult) -> Path:
    """Validate and write ``result`` to ``<out_dir>/sweep.json``; return the path."""
    document = result.to_json()
    try:
        text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise HarnessError(f"the sweep result is not valid JSON: {err}") from err
    validate_sweep(json.loads(text))

    path = result.path
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as err:
        raise HarnessError(
            f"cannot write {path}: {err.strerror or err}; choose a writable "
            "--report-dir"
        ) from err
    return path
