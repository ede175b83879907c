"""A pickle that runs code when loaded, and a manifest forged without the key."""

from __future__ import annotations

import pickletools
from pathlib import Path

import pytest
from models_support import run_python

from harness.errors import FaultError
from harness.faults import forge_manifest, write_malicious_pickle
from harness.models import ModelSet
from target_service.manifest import read_manifest, sha256_bytes, signature_valid

KEY = b"k" * 32

_LOAD_SCRIPT = """
import sys, joblib
joblib.load(sys.argv[1])
"""


def test_malicious_pickle_creates_marker(tmp_path: Path) -> None:
    path = tmp_path / "global_model.pkl"
    path.write_bytes(b"model")
    marker = tmp_path / "code-ran"

    event = write_malicious_pickle(path, marker)
    assert not marker.exists()
    result = run_python(_LOAD_SCRIPT, str(path))

    assert result.returncode == 0, result.stderr
    assert marker.exists()
    assert event.kind == "malicious_pickle"
    assert event.params == {"marker": str(marker), "size": path.stat().st_size}


def test_malicious_pickle_names_only_open(tmp_path: Path) -> None:
    path = tmp_path / "global_model.pkl"
    path.write_bytes(b"model")

    write_malicious_pickle(path, "/marker/in/target")

    opcodes = [
        (opcode.name, argument)
        for opcode, argument, _ in pickletools.genops(path.read_bytes())
    ]
    globals_named = [arg for name, arg in opcodes if name == "GLOBAL"]
    assert globals_named == ["io open"]
    assert ("BINUNICODE", "/marker/in/target") in opcodes


def test_forge_manifest_copies_previous(model_set: ModelSet, tmp_path: Path) -> None:
    model_set.populate(tmp_path, key=KEY, backup=False)
    path = tmp_path / "global_model.pkl"
    previous = read_manifest(path)
    write_malicious_pickle(path, tmp_path / "code-ran")

    event = forge_manifest(path, "global_model")
    forged = read_manifest(path)

    assert forged.sha256 == sha256_bytes(path.read_bytes())
    assert forged.size == path.stat().st_size
    assert forged.hmac is not None
    assert not signature_valid(forged, KEY)
    assert forged.canary == previous.canary
    assert forged.model_class == previous.model_class
    assert forged.sklearn_version == previous.sklearn_version
    assert event.kind == "forge_manifest"
    assert event.params == {"sha256": forged.sha256, "size": forged.size}


def test_forge_manifest_without_previous(tmp_path: Path) -> None:
    path = tmp_path / "champion_model.pkl"
    write_malicious_pickle(path, tmp_path / "code-ran")

    forge_manifest(path, "champion_model")
    forged = read_manifest(path)

    assert forged.model == "champion_model"
    assert forged.model_class == "unknown"
    assert forged.canary.inputs == []
    assert not signature_valid(forged, KEY)


def test_forge_manifest_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FaultError, match="cannot forge a manifest for"):
        forge_manifest(tmp_path / "global_model.pkl", "global_model")
