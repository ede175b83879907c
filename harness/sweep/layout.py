"""Where the parts of a joblib model file lie: compressed stream, opcodes, arrays.

``joblib.dump`` without compression writes a pickle in which every NumPy array
is replaced by a ``NumpyArrayWrapper``. Right after the wrapper's BUILD opcode,
which also ends the current pickle frame, it writes one byte with the padding
length, that many 0xff bytes, and the array's raw bytes. The pickle stream then
continues. A tree's node records and leaf values are such arrays. This module
finds those payloads by loading the undamaged file once with an unpickler that
notes where each array was read, and walks the pickle opcodes between them with
:func:`pickletools.genops`.

A compressed file (``compress=`` of ``joblib.dump``) is one compressed stream,
so only the position of that stream is recorded for it.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import warnings
from dataclasses import dataclass
from typing import Any

from joblib.numpy_pickle import NumpyUnpickler

# Magic bytes of the compressed formats joblib writes (joblib 1.6,
# joblib/compressor.py), and the bytes of header and trailer around their
# compressed data. zlib has a 2-byte header and an Adler-32 trailer. gzip, as
# zlib writes it, has a 10-byte header and a trailer with CRC-32 and size. For
# the others only the magic bytes are skipped.
COMPRESSED_FORMATS: tuple[tuple[str, bytes, int, int], ...] = (
    ("zlib", b"\x78", 2, 4),
    ("gzip", b"\x1f\x8b", 10, 8),
    ("bz2", b"BZ", 2, 0),
    ("xz", b"\xfd\x37\x7a\x58\x5a", 5, 0),
    ("lzma", b"\x5d\x00", 2, 0),
    ("lz4", b"\x04\x22\x4d\x18", 4, 0),
)

# Bytes of the length that prefixes an opcode's argument, by the argument's
# ``n`` in pickletools.
_LENGTH_FIELD_BYTES = {
    pickletools.TAKEN_FROM_ARGUMENT1: 1,
    pickletools.TAKEN_FROM_ARGUMENT4: 4,
    pickletools.TAKEN_FROM_ARGUMENT4U: 4,
    pickletools.TAKEN_FROM_ARGUMENT8U: 8,
}
_BINARY_MEMO_OPCODES = frozenset({"BINGET", "LONG_BINGET", "BINPUT", "LONG_BINPUT"})
_TEXT_MEMO_OPCODES = frozenset({"GET", "PUT"})


@dataclass(frozen=True)
class Field:
    """One field of an array element: a name (empty for plain arrays) and its bytes."""

    name: str
    offset: int
    size: int


@dataclass(frozen=True)
class ArrayPayload:
    """The raw bytes of one array in the file, from ``start`` up to ``end``.

    ``fields`` describe one element: the fields of a structured dtype such as a
    tree's node records, or one field covering the whole item of a plain dtype.
    """

    index: int
    start: int
    end: int
    dtype: str
    shape: tuple[int, ...]
    itemsize: int
    fields: tuple[Field, ...]

    @property
    def elements(self) -> int:
        return (self.end - self.start) // self.itemsize


@dataclass(frozen=True)
class Opcode:
    """One pickle opcode at byte ``offset``, and the field an aimed damage can hit.

    ``role`` is ``length`` when the argument starts with a length (strings,
    bytes, frames), ``memo`` when it is a memo index, and ``None`` otherwise.
    ``field_offset`` and ``field_size`` locate that length or index.
    """

    name: str
    offset: int
    role: str | None
    field_offset: int
    field_size: int


@dataclass(frozen=True)
class FileLayout:
    """The structure of one model file, as far as a sweep aims damage at it."""

    size: int
    compressor: str | None
    compressed_span: tuple[int, int] | None
    arrays: tuple[ArrayPayload, ...]
    opcodes: tuple[Opcode, ...]


def read_layout(data: bytes) -> FileLayout:
    """Return the layout of the joblib file ``data``, which must load.

    Raises whatever loading the file raises; the caller has loaded it before.
    """
    compressed = _compressed_format(data)
    if compressed is not None:
        name, header, trailer = compressed
        span = (header, max(header, len(data) - trailer))
        return FileLayout(len(data), name, span, (), ())

    arrays = _array_payloads(data)
    opcodes = _opcodes(data, arrays)
    return FileLayout(len(data), None, None, arrays, opcodes)


def _compressed_format(data: bytes) -> tuple[str, int, int] | None:
    for name, magic, header, trailer in COMPRESSED_FORMATS:
        if data.startswith(magic):
            return name, header, trailer
    return None


class _PayloadRecorder(NumpyUnpickler):
    """joblib's unpickler, noting the file span of every array it reads."""

    dispatch = NumpyUnpickler.dispatch.copy()

    def __init__(self, stream: io.BytesIO) -> None:
        super().__init__("", stream, ensure_native_byte_order=True)
        self.spans: list[tuple[int, int, Any]] = []

    def _load_build(self) -> None:
        # Inside a BUILD the pickle frame is used up, so the file position is
        # where joblib's array bytes start, and after it where they end.
        start = self.file_handle.tell()
        NumpyUnpickler.load_build(self)
        end = self.file_handle.tell()
        if end > start:
            self.spans.append((start, end, self.stack[-1]))

    dispatch[pickle.BUILD[0]] = _load_build


def _array_payloads(data: bytes) -> tuple[ArrayPayload, ...]:
    recorder = _PayloadRecorder(io.BytesIO(data))
    with warnings.catch_warnings():
        # The file is known to load; its warnings are the loader's business.
        warnings.simplefilter("ignore")
        recorder.load()

    payloads: list[ArrayPayload] = []
    for _start, end, array in recorder.spans:
        dtype = getattr(array, "dtype", None)
        nbytes = getattr(array, "nbytes", 0)
        # Arrays of Python objects are written as a nested pickle, not raw bytes.
        if dtype is None or dtype.hasobject or nbytes == 0 or dtype.itemsize == 0:
            continue
        payloads.append(
            ArrayPayload(
                index=len(payloads),
                start=end - nbytes,
                end=end,
                dtype=_dtype_text(dtype),
                shape=tuple(int(n) for n in array.shape),
                itemsize=int(dtype.itemsize),
                fields=_fields(dtype),
            )
        )
    return tuple(payloads)


def _dtype_text(dtype: Any) -> str:
    if dtype.names:
        return "{" + ", ".join(dtype.names) + "}"
    return str(dtype.str)


def _fields(dtype: Any) -> tuple[Field, ...]:
    if not dtype.names:
        return (Field("", 0, int(dtype.itemsize)),)
    fields = []
    for name in dtype.names:
        field_dtype, offset = dtype.fields[name][:2]
        fields.append(Field(name, int(offset), int(field_dtype.itemsize)))
    return tuple(fields)


def _opcodes(data: bytes, arrays: tuple[ArrayPayload, ...]) -> tuple[Opcode, ...]:
    """Walk the pickle opcodes in the stretches between the array payloads.

    A stretch ends with joblib's padding byte and padding before the next
    array's bytes, so its walk stops at the first byte that is not an opcode.
    """
    stretches = []
    position = 0
    for payload in arrays:
        stretches.append((position, payload.start))
        position = payload.end
    stretches.append((position, len(data)))

    opcodes: list[Opcode] = []
    stream = io.BytesIO(data)
    for start, end in stretches:
        stream.seek(start)
        opcodes.extend(_walk(stream, end))
    return tuple(opcodes)


def _walk(stream: io.BytesIO, end: int) -> list[Opcode]:
    found: list[Opcode] = []
    try:
        for opcode, _arg, offset in pickletools.genops(stream):
            if offset is None or offset >= end:
                break
            arg_end = stream.tell()
            found.append(_describe(opcode, offset, arg_end))
    except Exception:
        # The bytes after the last opcode of a stretch are array padding or
        # array data, which genops cannot parse.
        pass
    return found


def _describe(opcode: pickletools.OpcodeInfo, offset: int, arg_end: int) -> Opcode:
    argument = opcode.arg
    if opcode.name in _BINARY_MEMO_OPCODES and argument is not None:
        return Opcode(opcode.name, offset, "memo", offset + 1, argument.n)
    if opcode.name in _TEXT_MEMO_OPCODES:
        # The index is written in decimal and ends with a newline.
        return Opcode(opcode.name, offset, "memo", offset + 1, arg_end - offset - 2)
    if opcode.name == "FRAME":
        return Opcode(opcode.name, offset, "length", offset + 1, 8)
    if argument is not None and argument.n in _LENGTH_FIELD_BYTES:
        size = _LENGTH_FIELD_BYTES[argument.n]
        return Opcode(opcode.name, offset, "length", offset + 1, size)
    return Opcode(opcode.name, offset, None, offset + 1, 0)
