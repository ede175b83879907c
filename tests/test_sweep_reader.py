"""The forking reader, with the fork replaced by a callback that records each reach."""

from __future__ import annotations

import io
from pathlib import Path

import joblib
import numpy as np
from sweep_support import canary_inputs, small_forest, write_forest

from harness.sweep.damage import Damage
from harness.sweep.reader import ForkingReader

DATA = bytes(range(100))


def recording(reached: list[Damage], child: Damage | None = None):
    """Return an on_reach that records every copy and acts as the child of one."""

    def on_reach(damage: Damage) -> bytes | None:
        reached.append(damage)
        if damage is child:
            return damage.apply(DATA)
        return None

    return on_reach


def test_reach_before_crossing_read() -> None:
    reached: list[Damage] = []
    early = Damage("bitflip", 0, ((10, 0),))
    late = Damage("bitflip", 1, ((60, 0),))
    reader = ForkingReader(DATA, [late, early], recording(reached))

    assert reader.read(10) == DATA[:10]
    assert reached == []
    assert reader.read(5) == DATA[10:15]
    assert reached == [early]
    assert reader.read() == DATA[15:]
    assert reached == [early, late]
    assert reader.pending == []


def test_child_reads_damaged_copy() -> None:
    reached: list[Damage] = []
    flip = Damage("bitflip", 0, ((12, 7),))
    other = Damage("bitflip", 1, ((50, 0),))
    reader = ForkingReader(DATA, [flip, other], recording(reached, child=flip))

    reader.read(10)
    chunk = reader.read(10)

    assert chunk == flip.apply(DATA)[10:20]
    assert reached == [flip]
    assert reader.pending == []
    assert reader.read() == DATA[20:]


def test_child_of_truncation_sees_short_file() -> None:
    reached: list[Damage] = []
    cut = Damage("truncate", 0, size=25)
    reader = ForkingReader(DATA, [cut], recording(reached, child=cut))

    assert reader.read(20) == DATA[:20]
    assert reader.read(20) == DATA[20:25]
    assert reader.read(20) == b""


def test_readline_and_readinto() -> None:
    data = b"first\nsecond\n"
    reader = ForkingReader(data, [], lambda damage: None)
    buffer = bytearray(3)

    assert reader.readline() == b"first\n"
    assert reader.readinto(buffer) == 3
    assert bytes(buffer) == b"sec"
    assert reader.readline() == b"ond\n"
    assert reader.readline() == b""


def test_seek_back_keeps_pending() -> None:
    reached: list[Damage] = []
    flip = Damage("bitflip", 0, ((30, 0),))
    reader = ForkingReader(DATA, [flip], recording(reached))

    reader.read(8)
    reader.seek(0)

    assert reader.tell() == 0
    assert reader.pending == [flip]
    assert reader.read(8) == DATA[:8]
    assert reached == []


def test_joblib_loads_through_reader(tmp_path: Path) -> None:
    data = write_forest(tmp_path).read_bytes()
    inputs = np.asarray(canary_inputs())

    model = joblib.load(ForkingReader(data, [], lambda damage: None))

    expected = small_forest().predict_proba(inputs)
    assert np.array_equal(model.predict_proba(inputs), expected)
    assert np.array_equal(joblib.load(io.BytesIO(data)).predict_proba(inputs), expected)
