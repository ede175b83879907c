"""A file-like reader that forks one process per damaged copy as it reaches its damage.

The sweep unpickles the undamaged file once through this reader. When a read
is about to return bytes at or past a copy's first damaged offset, the reader
calls ``on_reach``, which forks. The child swaps in the damaged copy and goes
on unpickling from there; the parent goes on with the undamaged bytes. Up to
that offset both files hold the same bytes, so the child is in the state a
fresh load of the damaged copy would be in, and the prefix was parsed once for
every copy that shares it.

Pickle's unpickler, joblib's array reader and its compression check read a
file object with ``read``, ``readinto``, ``readline``, ``seek`` and ``tell``.
The reader offers nothing else, so that a new caller fails loudly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from harness.sweep.damage import Damage

# Called with a copy whose damage the next read reaches. Returns the damaged
# bytes in the forked child, and None in the parent.
OnReach = Callable[[Damage], bytes | None]


class ForkingReader:
    """Serves ``data`` and forks for each of ``damages`` when reads reach it."""

    def __init__(
        self, data: bytes, damages: Iterable[Damage], on_reach: OnReach
    ) -> None:
        self._data = data
        self._position = 0
        self._pending = deque(sorted(damages, key=lambda d: (d.first_offset, d.index)))
        self._on_reach = on_reach
        self.name = ""

    @property
    def pending(self) -> list[Damage]:
        """The copies whose damage no read has reached yet."""
        return list(self._pending)

    def read(self, size: int | None = -1) -> bytes:
        end = self._read_end(size)
        self._reach(end)
        # A fork may have swapped in a shorter copy.
        end = self._read_end(size)
        chunk = self._data[self._position : end]
        self._position = end
        return chunk

    def readinto(self, buffer: bytearray | memoryview) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def readline(self, size: int | None = -1) -> bytes:
        end = self._line_end(size)
        self._reach(end)
        end = self._line_end(size)
        line = self._data[self._position : end]
        self._position = end
        return line

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            self._position = offset
        elif whence == 1:
            self._position += offset
        elif whence == 2:
            self._position = len(self._data) + offset
        else:
            raise ValueError(f"invalid whence {whence}; expected 0, 1 or 2")
        self._position = max(0, self._position)
        return self._position

    def tell(self) -> int:
        return self._position

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _read_end(self, size: int | None) -> int:
        if size is None or size < 0:
            return len(self._data)
        return min(self._position + size, len(self._data))

    def _line_end(self, size: int | None) -> int:
        newline = self._data.find(b"\n", self._position)
        end = len(self._data) if newline < 0 else newline + 1
        if size is not None and size >= 0:
            end = min(end, self._position + size)
        return end

    def _reach(self, end: int) -> None:
        # Every copy damaged below ``end`` forks now, including one whose
        # offset a seek skipped: nothing from its damaged bytes was read yet.
        while self._pending and self._pending[0].first_offset < end:
            damage = self._pending.popleft()
            damaged = self._on_reach(damage)
            if damaged is not None:
                self._data = damaged
                self._pending.clear()
                return
