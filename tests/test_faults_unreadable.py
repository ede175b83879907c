"""Model paths that exist but cannot be read as files."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from harness.errors import FaultError
from harness.faults import clear_path, make_unreadable
from harness.models import ModelSet

KINDS = ["directory", "dangling_symlink", "fifo", "no_permission"]


@pytest.fixture
def model_file(model_set: ModelSet, tmp_path: Path) -> Path:
    model_set.populate(tmp_path, key=None, backup=False)
    return tmp_path / "global_model.pkl"


def test_directory(model_file: Path) -> None:
    event = make_unreadable(model_file, "directory")

    assert model_file.is_dir()
    with pytest.raises(IsADirectoryError):
        model_file.read_bytes()
    assert event.params == {"kind": "directory"}
    assert event.note == "global_model.pkl replaced by an empty directory"


def test_dangling_symlink(model_file: Path) -> None:
    event = make_unreadable(model_file, "dangling_symlink")

    assert model_file.is_symlink()
    assert os.readlink(model_file) == "global_model.pkl.missing"
    with pytest.raises(FileNotFoundError):
        model_file.read_bytes()
    assert event.params["link_target"] == "global_model.pkl.missing"


def test_fifo_open_blocks(model_file: Path) -> None:
    make_unreadable(model_file, "fifo")
    opened = threading.Event()

    def read() -> None:
        with open(model_file, "rb") as handle:
            opened.set()
            handle.read()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    blocked = not opened.wait(0.3)
    # A writer that opens and closes the FIFO releases the blocked reader.
    os.close(os.open(model_file, os.O_WRONLY | os.O_NONBLOCK))
    reader.join(5.0)

    assert stat.S_ISFIFO(model_file.stat().st_mode)
    assert blocked
    assert not reader.is_alive()


def test_no_permission(model_file: Path) -> None:
    event = make_unreadable(model_file, "no_permission")

    assert stat.S_IMODE(model_file.stat().st_mode) == 0
    assert event.params["effective_for_harness_user"] is (os.geteuid() != 0)
    if os.geteuid() != 0:
        with pytest.raises(PermissionError):
            model_file.read_bytes()
    else:
        # Root ignores file modes.
        assert model_file.read_bytes()


@pytest.mark.parametrize("kind", KINDS)
def test_clear_path_lets_install_again(
    model_set: ModelSet, model_file: Path, kind: str
) -> None:
    make_unreadable(model_file, kind)

    clear_path(model_file)
    model_set.install(model_file.parent, "global_model", "v2", key=None)

    assert model_file.is_file()
    assert not model_file.is_symlink()


def test_unknown_kind(model_file: Path) -> None:
    with pytest.raises(FaultError) as raised:
        make_unreadable(model_file, "socket")

    assert str(raised.value) == (
        "unknown unreadable kind 'socket'; expected one of directory, "
        "dangling_symlink, fifo, no_permission"
    )
    assert model_file.is_file()


def test_missing_parent(tmp_path: Path) -> None:
    with pytest.raises(FaultError, match=r"cannot make .* a directory"):
        make_unreadable(tmp_path / "missing" / "global_model.pkl", "directory")
