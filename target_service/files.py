"""Reading model files without blocking, and noticing when they change."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from target_service.failures import (
    MISSING,
    NOT_REGULAR_FILE,
    UNREADABLE,
    LoadFailure,
)

# (st_ino, st_size, st_mtime_ns, st_ctime_ns) of a file, or None when it is
# missing. A rename over the file changes the inode and an in-place write
# changes the size or times, so either shows up as a new signature.
Signature = tuple[int, int, int, int] | None

_CHUNK_BYTES = 1 << 20


def stat_signature(path: Path) -> Signature:
    """Return the signature of ``path``, following symlinks; ``None`` when missing."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        # An unreadable directory entry still counts as present; loading it
        # then reports why it cannot be read.
        return (-1, -1, -1, -1)
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def read_regular_file(path: Path) -> bytes:
    """Read all of ``path`` into memory, rejecting anything that is not a regular file.

    The file is opened with ``O_NONBLOCK`` and checked with ``fstat`` on the open
    descriptor. A FIFO is therefore rejected instead of blocking the caller until
    a writer appears, and a file swapped between the check and the read cannot
    slip through. Raises :class:`LoadFailure`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as err:
        if os.path.islink(path):
            target = os.readlink(path)
            raise LoadFailure(MISSING, f"dangling symlink to {target}") from err
        raise LoadFailure(MISSING, "file not found") from err
    except PermissionError as err:
        raise LoadFailure(UNREADABLE, "permission denied") from err
    except OSError as err:
        raise LoadFailure(UNREADABLE, f"cannot open: {err.strerror}") from err

    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise LoadFailure(
                NOT_REGULAR_FILE, f"not a regular file but a {_file_kind(mode)}"
            )
        return _read_all(fd)
    finally:
        os.close(fd)


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, _CHUNK_BYTES)
        except OSError as err:
            raise LoadFailure(UNREADABLE, f"read failed: {err.strerror}") from err
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _file_kind(mode: int) -> str:
    kinds = {
        stat.S_ISDIR: "directory",
        stat.S_ISFIFO: "FIFO",
        stat.S_ISSOCK: "socket",
        stat.S_ISCHR: "character device",
        stat.S_ISBLK: "block device",
    }
    for test, kind in kinds.items():
        if test(mode):
            return kind
    return f"file of mode {oct(mode)}"
