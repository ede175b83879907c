"""A model path that exists but cannot be read as a file.

The kinds are:

- ``directory``: the path is an empty directory;
- ``dangling_symlink``: a symbolic link to a name that does not exist;
- ``fifo``: a named pipe, whose open for reading blocks until a writer opens it;
- ``no_permission``: mode 000. Processes running as root, or with
  CAP_DAC_OVERRIDE, ignore file modes and still read the file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness.errors import FaultError
from harness.timeline import FaultEvent, now

KINDS = ("directory", "dangling_symlink", "fifo", "no_permission")

NOTES = {
    "directory": "replaced by an empty directory",
    "dangling_symlink": "replaced by a symbolic link to a missing file",
    "fifo": "replaced by a FIFO (an open for reading blocks)",
    "no_permission": "made unreadable with mode 000 (root still reads it)",
}


def make_unreadable(path: Path, kind: str) -> FaultEvent:
    """Make the model path unreadable in one of the ways in :data:`KINDS`."""
    if kind not in KINDS:
        raise FaultError(
            f"unknown unreadable kind {kind!r}; expected one of {', '.join(KINDS)}",
            path=path,
        )
    t_start = now()
    params: dict[str, object] = {"kind": kind}
    try:
        if kind == "no_permission":
            path.chmod(0)
            params["effective_for_harness_user"] = os.geteuid() != 0
        else:
            _remove(path)
            if kind == "directory":
                path.mkdir()
            elif kind == "dangling_symlink":
                # A relative target resolves the same on the host and in a container.
                missing = f"{path.name}.missing"
                path.symlink_to(missing)
                params["link_target"] = missing
            else:
                os.mkfifo(path)
    except OSError as err:
        raise FaultError(f"cannot make {path} a {kind}: {err}", path=path) from err

    return FaultEvent(
        kind="make_unreadable",
        t_start=t_start,
        t_end=now(),
        path=str(path),
        params=params,
        note=f"{path.name} {NOTES[kind]}",
    )


def clear_path(path: Path) -> None:
    """Remove what :func:`make_unreadable` left at ``path``, so a file fits again."""
    try:
        if path.is_symlink() or not path.is_dir():
            if path.exists() and not path.is_symlink():
                path.chmod(0o644)
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path)
    except OSError as err:
        raise FaultError(f"cannot clear {path}: {err}", path=path) from err


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
