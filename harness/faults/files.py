"""Damage to a model file's bytes: truncation, bit flips, zeroes, other content.

Each injector changes the file at the given path in place (a reader never sees
the path disappear, except for :func:`delete`) and returns a
:class:`~harness.timeline.FaultEvent` that records what it changed, precisely
enough to repeat it.
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

from harness.errors import FaultError
from harness.faults._io import file_size, make_rng, read_file, write_in_place
from harness.timeline import FaultEvent, now
from target_service.manifest import manifest_path, sha256_bytes

# An offset inside the first bytes of a joblib pickle: the protocol and frame
# opcodes, then the module name of the model's class.
HEADER_OFFSET = 20

PAGE_SIZE = 4096

HTML_ERROR_PAGE = b"""<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""

CONTENT_KINDS = ("html", "lfs_pointer", "empty", "zeros")


def truncation_offsets(size: int) -> dict[str, int]:
    """Return the sizes the truncation scenarios cut a file of ``size`` bytes to.

    The keys are ``empty`` (0), ``header`` (inside the pickle header), ``middle``
    and ``last_byte`` (all but the last byte).
    """
    if size < 2:
        raise FaultError(f"a file of {size} bytes is too small to truncate")
    return {
        "empty": 0,
        "header": min(HEADER_OFFSET, size - 1),
        "middle": size // 2,
        "last_byte": size - 1,
    }


def sweep_offsets(size: int, *, stride: int = 1, count: int | None = None) -> range:
    """Return the offsets of a truncation sweep over a file of ``size`` bytes.

    Every ``stride``-th offset from 0 up to ``size - 1``; with ``count``, the
    stride is chosen so that at most ``count`` offsets spread over the file.
    """
    if size < 1:
        raise FaultError(f"cannot sweep a file of {size} bytes")
    if count is not None:
        if count < 1:
            raise FaultError(f"invalid offset count {count}; expected at least 1")
        stride = max(1, math.ceil(size / count))
    if stride < 1:
        raise FaultError(f"invalid stride {stride}; expected at least 1")
    return range(0, size, stride)


def truncate(path: Path, size: int) -> FaultEvent:
    """Cut the file to its first ``size`` bytes, as a copy that stopped early does."""
    t_start = now()
    original = file_size(path, "truncate")
    if not 0 <= size <= original:
        raise FaultError(
            f"cannot truncate {path} to {size} bytes: the file has {original}; "
            f"choose a size from 0 to {original}",
            path=path,
        )
    try:
        os.truncate(path, size)
    except OSError as err:
        raise FaultError(f"cannot truncate {path}: {err}", path=path) from err
    return FaultEvent(
        kind="truncate",
        t_start=t_start,
        t_end=now(),
        path=str(path),
        params={"size": size, "original_size": original},
        note=f"{path.name} cut from {original} to {size} bytes",
    )


def flip_bits(path: Path, count: int, rng: random.Random | int) -> FaultEvent:
    """Flip ``count`` distinct bits at positions drawn from ``rng``.

    ``rng`` is a generator or a seed; a seed is recorded in the event. Every
    flip is recorded as its byte offset and bit (0 is the least significant).
    """
    t_start = now()
    generator, seed = make_rng(rng)
    data = bytearray(read_file(path, "flip bits in"))
    if not 0 < count <= len(data) * 8:
        raise FaultError(
            f"cannot flip {count} bits in {path}, which has {len(data) * 8}; "
            "choose a count from 1 to that",
            path=path,
        )

    flips = []
    for position in sorted(generator.sample(range(len(data) * 8), count)):
        offset, bit = divmod(position, 8)
        data[offset] ^= 1 << bit
        flips.append({"offset": offset, "bit": bit})
    write_in_place(path, bytes(data), "flip bits in")

    return FaultEvent(
        kind="flip_bits",
        t_start=t_start,
        t_end=now(),
        path=str(path),
        params={"count": count, "seed": seed, "size": len(data), "flips": flips},
        note=f"{count} bits flipped in {path.name}",
    )


def zero_page(path: Path, offset: int, page: int = PAGE_SIZE) -> FaultEvent:
    """Overwrite ``page`` bytes from ``offset`` with zeroes, as a lost disk page does.

    A page that runs past the end of the file is cut at the end; the size stays.
    """
    t_start = now()
    data = bytearray(read_file(path, "zero a page of"))
    if not 0 <= offset < len(data) or page < 1:
        raise FaultError(
            f"cannot zero {page} bytes at offset {offset} of {path}, which has "
            f"{len(data)} bytes; choose an offset below that and a positive page",
            path=path,
        )
    end = min(offset + page, len(data))
    data[offset:end] = bytes(end - offset)
    write_in_place(path, bytes(data), "zero a page of")

    return FaultEvent(
        kind="zero_page",
        t_start=t_start,
        t_end=now(),
        path=str(path),
        params={"offset": offset, "page": page, "zeroed": end - offset},
        note=f"bytes {offset} to {end - 1} of {path.name} set to zero",
    )


def garbage(path: Path, rng: random.Random | int) -> FaultEvent:
    """Replace the whole file with random bytes of the same size."""
    t_start = now()
    generator, seed = make_rng(rng)
    size = len(read_file(path, "fill with garbage"))
    data = generator.randbytes(size)
    write_in_place(path, data, "fill with garbage")
    return FaultEvent(
        kind="garbage",
        t_start=t_start,
        t_end=now(),
        path=str(path),
        params={"size": size, "seed": seed, "sha256": sha256_bytes(data)},
        note=f"{path.name} replaced by {size} random bytes",
    )


def replace_content(path: Path, kind: str) -> FaultEvent:
    """Replace the file with content of another type.

    ``kind`` is ``html`` (the 502 error page a proxy returns to a download),
    ``lfs_pointer`` (the Git LFS pointer text a checkout without LFS leaves),
    ``empty`` or ``zeros`` (zero bytes of the same size).
    """
    t_start = now()
    original = read_file(path, "replace the content of")
    if kind == "html":
        data = HTML_ERROR_PAGE
    elif kind == "lfs_pointer":
        data = lfs_pointer(original)
    elif kind == "empty":
        data = b""
    elif kind == "zeros":
        data = bytes(len(original))
    else:
        raise FaultError(
            f"unknown content kind {kind!r}; "
            f"expected one of {', '.join(CONTENT_KINDS)}",
            path=path,
        )
    write_in_place(path, data, "replace the content of")

    return FaultEvent(
        kind="replace_content",
        t_start=t_start,
        t_end=now(),
        path=str(path),
        params={"content": kind, "size": len(data), "original_size": len(original)},
        note=f"{path.name} replaced by {_CONTENT_NOTES[kind]} of {len(data)} bytes",
    )


_CONTENT_NOTES = {
    "html": "an HTML 502 error page",
    "lfs_pointer": "a Git LFS pointer",
    "empty": "an empty file",
    "zeros": "zeroes",
}


def lfs_pointer(data: bytes) -> bytes:
    """Return the Git LFS pointer text that stands for ``data`` in a repository."""
    return (
        "version https://git-lfs.github.com/spec/v1\n"
        f"oid sha256:{sha256_bytes(data)}\n"
        f"size {len(data)}\n"
    ).encode()


def delete(path: Path, *, manifest: bool = False) -> FaultEvent:
    """Remove the file and, with ``manifest``, its manifest too."""
    t_start = now()
    removed = [path]
    if manifest and manifest_path(path).exists():
        removed.append(manifest_path(path))
    for victim in removed:
        try:
            victim.unlink()
        except OSError as err:
            raise FaultError(f"cannot delete {victim}: {err}", path=victim) from err

    names = " and ".join(victim.name for victim in removed)
    return FaultEvent(
        kind="delete",
        t_start=t_start,
        t_end=now(),
        path=str(path),
        params={"manifest": manifest},
        note=f"{names} deleted",
    )
