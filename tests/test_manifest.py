"""Manifests: JSON round trip, HMAC signing, parsing errors and atomic writes."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from target_service.manifest import (
    Canary,
    Manifest,
    ManifestError,
    manifest_path,
    parse_manifest,
    read_key_file,
    read_manifest,
    sign,
    signature_valid,
    write_bytes_atomic,
    write_manifest,
)

KEY = b"k" * 32


def make_manifest(**overrides: object) -> Manifest:
    manifest = Manifest(
        model="global_model",
        sha256="ab" * 32,
        size=1234,
        sklearn_version="1.9.1",
        numpy_version="2.4.6",
        joblib_version="1.6.0",
        python_version="3.11.7",
        model_class="sklearn.ensemble._forest.RandomForestClassifier",
        canary=Canary(
            inputs=[[0.5, 1.5]], probabilities=[[0.25, 0.75]], predictions=[1]
        ),
    )
    return replace(manifest, **overrides)  # type: ignore[arg-type]


def write_json(tmp_path: Path, data: object) -> Path:
    model = tmp_path / "global_model.pkl"
    manifest_path(model).write_text(json.dumps(data))
    return model


def test_manifest_path_appends_suffix() -> None:
    path = manifest_path(Path("/models/global_model.pkl.backup"))

    assert path == Path("/models/global_model.pkl.backup.manifest.json")


def test_write_read_round_trip(tmp_path: Path) -> None:
    model = tmp_path / "global_model.pkl"
    manifest = sign(make_manifest(), KEY)

    write_manifest(model, manifest)

    assert read_manifest(model) == manifest


def test_signature_valid_with_same_key() -> None:
    signed = sign(make_manifest(), KEY)

    assert signed.hmac is not None
    assert signature_valid(signed, KEY)


def test_signature_invalid_with_other_key() -> None:
    signed = sign(make_manifest(), KEY)

    assert not signature_valid(signed, b"another key")


def test_signature_invalid_after_change() -> None:
    signed = sign(make_manifest(), KEY)
    forged = replace(signed, sha256="cd" * 32)

    assert not signature_valid(forged, KEY)


def test_signature_invalid_when_unsigned() -> None:
    assert not signature_valid(make_manifest(), KEY)


def test_signature_survives_round_trip(tmp_path: Path) -> None:
    model = tmp_path / "global_model.pkl"
    write_manifest(model, sign(make_manifest(), KEY))

    assert signature_valid(read_manifest(model), KEY)


def test_read_missing_manifest(tmp_path: Path) -> None:
    model = tmp_path / "global_model.pkl"

    with pytest.raises(
        ManifestError, match=r"global_model\.pkl\.manifest\.json is missing"
    ):
        read_manifest(model)


def test_read_invalid_json(tmp_path: Path) -> None:
    model = tmp_path / "global_model.pkl"
    manifest_path(model).write_text("{not json")

    with pytest.raises(ManifestError, match="is not valid JSON"):
        read_manifest(model)


def test_read_json_array(tmp_path: Path) -> None:
    model = write_json(tmp_path, [1, 2])

    with pytest.raises(ManifestError, match="is not a JSON object"):
        read_manifest(model)


def test_read_missing_field(tmp_path: Path) -> None:
    data = make_manifest().to_json()
    del data["sha256"]
    model = write_json(tmp_path, data)

    with pytest.raises(ManifestError, match="malformed manifest"):
        read_manifest(model)


def test_read_unknown_field(tmp_path: Path) -> None:
    data = make_manifest().to_json()
    data["extra"] = 1
    model = write_json(tmp_path, data)

    with pytest.raises(ManifestError, match="malformed manifest"):
        read_manifest(model)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("size", "1234", "size '1234' is not a byte count"),
        ("size", -1, "size -1 is not a byte count"),
        ("size", True, "size True is not a byte count"),
        ("sha256", "xyz", "sha256 'xyz' is not 64 hex digits"),
        ("model", 7, "model must be a string"),
        ("hmac", 5, "hmac must be a string or null"),
        ("format", 2, "unsupported manifest format 2, this version reads format 1"),
    ],
)
def test_read_wrong_field_type(
    tmp_path: Path, field: str, value: object, message: str
) -> None:
    data = make_manifest().to_json()
    data[field] = value
    model = write_json(tmp_path, data)

    with pytest.raises(ManifestError) as raised:
        read_manifest(model)

    assert message in str(raised.value)


def test_read_canary_not_lists(tmp_path: Path) -> None:
    data = make_manifest().to_json()
    data["canary"]["inputs"] = "rows"
    model = write_json(tmp_path, data)

    with pytest.raises(ManifestError, match="canary fields must be lists"):
        read_manifest(model)


def test_parse_names_source_in_error() -> None:
    with pytest.raises(ManifestError, match=r"manifest /x/m\.json is not valid JSON"):
        parse_manifest(b"\xff", Path("/x/m.json"))


def test_write_bytes_atomic_replaces_inode(tmp_path: Path) -> None:
    path = tmp_path / "global_model.pkl"
    path.write_bytes(b"old")
    old_inode = path.stat().st_ino

    write_bytes_atomic(path, b"new")

    assert path.read_bytes() == b"new"
    assert path.stat().st_ino != old_inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["global_model.pkl"]


def test_write_bytes_atomic_failure_keeps_old(tmp_path: Path) -> None:
    path = tmp_path / "global_model.pkl"
    path.write_bytes(b"old")

    with pytest.raises(TypeError):
        write_bytes_atomic(path, "not bytes")  # type: ignore[arg-type]

    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["global_model.pkl"]


def test_write_bytes_atomic_keeps_umask_mode(tmp_path: Path) -> None:
    path = tmp_path / "global_model.pkl"
    umask = os.umask(0o022)
    try:
        write_bytes_atomic(path, b"data")
    finally:
        os.umask(umask)

    assert path.stat().st_mode & 0o777 == 0o644


def test_read_key_file_strips_newline(tmp_path: Path) -> None:
    key_file = tmp_path / "hmac.key"
    key_file.write_bytes(b"secret-key\n")

    assert read_key_file(key_file) == b"secret-key"


def test_read_key_file_keeps_other_whitespace(tmp_path: Path) -> None:
    key_file = tmp_path / "hmac.key"
    key_file.write_bytes(b" \tkey with spaces\t \n")

    assert read_key_file(key_file) == b" \tkey with spaces\t "


def test_read_key_file_empty(tmp_path: Path) -> None:
    key_file = tmp_path / "hmac.key"
    key_file.write_bytes(b"\n")

    with pytest.raises(ValueError, match=r"HMAC key file .*hmac\.key is empty"):
        read_key_file(key_file)
