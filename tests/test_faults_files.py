"""Byte-level damage to real model files, and what a joblib load then does."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from models_support import copy_model, run_python

from harness.errors import FaultError
from harness.faults import (
    delete,
    flip_bits,
    garbage,
    replace_content,
    sweep_offsets,
    truncate,
    truncation_offsets,
    zero_page,
)
from harness.faults.files import HTML_ERROR_PAGE
from harness.models import ModelSet
from target_service.manifest import manifest_path, sha256_bytes

# Loads each file named on the command line and prints the exception type, or
# "loaded". It runs in a child process because a damaged pickle may crash it.
_LOAD_SCRIPT = """
import sys, joblib
for path in sys.argv[1:]:
    try:
        joblib.load(path)
        print("loaded", flush=True)
    except Exception as err:
        print(type(err).__name__, flush=True)
"""


@pytest.fixture
def model_file(model_set: ModelSet, tmp_path: Path) -> Path:
    return copy_model(model_set, "global_model", "v1", tmp_path)


def test_truncate_cuts_file(model_file: Path) -> None:
    original = model_file.read_bytes()

    event = truncate(model_file, 1000)

    assert model_file.read_bytes() == original[:1000]
    assert event.kind == "truncate"
    assert event.params == {"size": 1000, "original_size": len(original)}
    assert event.note == f"global_model.pkl cut from {len(original)} to 1000 bytes"
    assert event.t_start <= event.t_end


def test_truncate_keeps_inode(model_file: Path) -> None:
    inode = model_file.stat().st_ino

    truncate(model_file, 0)

    assert model_file.stat().st_ino == inode
    assert model_file.stat().st_size == 0


def test_truncate_larger_than_file(model_file: Path) -> None:
    size = model_file.stat().st_size

    with pytest.raises(FaultError) as raised:
        truncate(model_file, size + 1)

    assert str(raised.value) == (
        f"cannot truncate {model_file} to {size + 1} bytes: the file has {size}; "
        f"choose a size from 0 to {size}"
    )


def test_truncate_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FaultError, match=r"cannot truncate .*global_model.pkl"):
        truncate(tmp_path / "global_model.pkl", 0)


def test_truncated_files_fail_to_load(model_file: Path, tmp_path: Path) -> None:
    data = model_file.read_bytes()
    paths = []
    for where, size in truncation_offsets(len(data)).items():
        path = tmp_path / f"{where}.pkl"
        path.write_bytes(data)
        truncate(path, size)
        paths.append(str(path))

    result = run_python(_LOAD_SCRIPT, *paths)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "EOFError",
        "UnpicklingError",
        "ValueError",
        "EOFError",
    ]


def test_truncation_offsets() -> None:
    assert truncation_offsets(1_000_000) == {
        "empty": 0,
        "header": 20,
        "middle": 500_000,
        "last_byte": 999_999,
    }
    assert truncation_offsets(10)["header"] == 9


def test_truncation_offsets_tiny_file() -> None:
    with pytest.raises(FaultError, match="a file of 1 bytes is too small"):
        truncation_offsets(1)


def test_sweep_offsets_stride() -> None:
    assert list(sweep_offsets(10, stride=3)) == [0, 3, 6, 9]
    assert list(sweep_offsets(4)) == [0, 1, 2, 3]


def test_sweep_offsets_count() -> None:
    offsets = sweep_offsets(1_126_601, count=400)

    assert len(offsets) <= 400
    assert len(offsets) >= 399
    assert offsets[0] == 0
    assert offsets[-1] < 1_126_601


@pytest.mark.parametrize(
    ("size", "stride", "count", "message"),
    [
        (0, 1, None, "cannot sweep a file of 0 bytes"),
        (10, 0, None, "invalid stride 0; expected at least 1"),
        (10, 1, 0, "invalid offset count 0; expected at least 1"),
    ],
)
def test_sweep_offsets_invalid(
    size: int, stride: int, count: int | None, message: str
) -> None:
    with pytest.raises(FaultError, match=message):
        sweep_offsets(size, stride=stride, count=count)


def test_flip_bits_records_each_flip(model_file: Path) -> None:
    original = model_file.read_bytes()

    event = flip_bits(model_file, 8, random.Random(7))

    damaged = model_file.read_bytes()
    changed = [
        {"offset": offset, "bit": (a ^ b).bit_length() - 1}
        for offset, (a, b) in enumerate(zip(original, damaged, strict=True))
        if a != b
    ]
    assert len(damaged) == len(original)
    assert event.params["flips"] == changed
    assert event.params["count"] == 8
    assert event.params["seed"] is None
    assert event.note == "8 bits flipped in global_model.pkl"


def test_flip_bits_seed_repeats(model_set: ModelSet, tmp_path: Path) -> None:
    first = copy_model(model_set, "global_model", "v1", tmp_path / "a")
    second = copy_model(model_set, "global_model", "v1", tmp_path / "b")

    event = flip_bits(first, 5, 1234)
    flip_bits(second, 5, 1234)

    assert event.params["seed"] == 1234
    assert first.read_bytes() == second.read_bytes()


def test_flip_bits_invalid_count(tmp_path: Path) -> None:
    path = tmp_path / "small.pkl"
    path.write_bytes(b"ab")

    with pytest.raises(FaultError, match=r"cannot flip 17 bits in .*, which has 16"):
        flip_bits(path, 17, 0)


def test_zero_page(model_file: Path) -> None:
    original = model_file.read_bytes()

    event = zero_page(model_file, 8192)

    damaged = model_file.read_bytes()
    assert damaged[8192 : 8192 + 4096] == bytes(4096)
    assert damaged[:8192] == original[:8192]
    assert damaged[8192 + 4096 :] == original[8192 + 4096 :]
    assert event.params == {"offset": 8192, "page": 4096, "zeroed": 4096}


def test_zero_page_clipped_at_end(tmp_path: Path) -> None:
    path = tmp_path / "small.pkl"
    path.write_bytes(b"x" * 100)

    event = zero_page(path, 90)

    assert path.read_bytes() == b"x" * 90 + bytes(10)
    assert event.params["zeroed"] == 10
    assert event.note == "bytes 90 to 99 of small.pkl set to zero"


def test_zero_page_offset_past_end(tmp_path: Path) -> None:
    path = tmp_path / "small.pkl"
    path.write_bytes(b"x" * 100)

    with pytest.raises(FaultError, match="cannot zero 4096 bytes at offset 100"):
        zero_page(path, 100)


def test_garbage_same_size(model_file: Path) -> None:
    original = model_file.read_bytes()

    event = garbage(model_file, 99)

    damaged = model_file.read_bytes()
    assert len(damaged) == len(original)
    assert damaged != original
    assert damaged == random.Random(99).randbytes(len(original))
    assert event.params == {
        "size": len(original),
        "seed": 99,
        "sha256": sha256_bytes(damaged),
    }


def test_replace_content_html(model_file: Path) -> None:
    event = replace_content(model_file, "html")

    assert model_file.read_bytes() == HTML_ERROR_PAGE
    assert b"502 Bad Gateway" in HTML_ERROR_PAGE
    assert event.params["content"] == "html"
    assert event.note == (
        f"global_model.pkl replaced by an HTML 502 error page of "
        f"{len(HTML_ERROR_PAGE)} bytes"
    )


def test_replace_content_lfs_pointer(model_file: Path) -> None:
    original = model_file.read_bytes()

    replace_content(model_file, "lfs_pointer")

    assert model_file.read_text().splitlines() == [
        "version https://git-lfs.github.com/spec/v1",
        f"oid sha256:{sha256_bytes(original)}",
        f"size {len(original)}",
    ]


def test_replace_content_empty_and_zeros(model_set: ModelSet, tmp_path: Path) -> None:
    empty = copy_model(model_set, "global_model", "v1", tmp_path / "a")
    zeros = copy_model(model_set, "global_model", "v1", tmp_path / "b")
    size = zeros.stat().st_size

    replace_content(empty, "empty")
    replace_content(zeros, "zeros")

    assert empty.read_bytes() == b""
    assert zeros.read_bytes() == bytes(size)


def test_replaced_content_load_errors(model_set: ModelSet, tmp_path: Path) -> None:
    paths = []
    for kind in ("lfs_pointer", "zeros", "empty", "html"):
        path = copy_model(model_set, "global_model", "v1", tmp_path / kind)
        replace_content(path, kind)
        paths.append(str(path))

    result = run_python(_LOAD_SCRIPT, *paths)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["KeyError", "KeyError", "EOFError", "KeyError"]


def test_replace_content_unknown_kind(model_file: Path) -> None:
    with pytest.raises(FaultError) as raised:
        replace_content(model_file, "pdf")

    assert str(raised.value) == (
        "unknown content kind 'pdf'; expected one of html, lfs_pointer, empty, zeros"
    )


def test_delete_file_only(model_set: ModelSet, tmp_path: Path) -> None:
    model_set.populate(tmp_path, key=None, backup=False)
    path = tmp_path / "global_model.pkl"

    event = delete(path)

    assert not path.exists()
    assert manifest_path(path).exists()
    assert event.note == "global_model.pkl deleted"


def test_delete_with_manifest(model_set: ModelSet, tmp_path: Path) -> None:
    model_set.populate(tmp_path, key=None, backup=False)
    path = tmp_path / "global_model.pkl"

    event = delete(path, manifest=True)

    assert not path.exists()
    assert not manifest_path(path).exists()
    assert event.note == ("global_model.pkl and global_model.pkl.manifest.json deleted")


def test_delete_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FaultError, match=r"cannot delete .*global_model.pkl"):
        delete(tmp_path / "global_model.pkl")
