"""Where a sweep damages a model file: the layout it reads and the copies it draws."""

from __future__ import annotations

from pathlib import Path

import pytest
from sweep_support import node_arrays, small_forest, write_forest

from harness.sweep.damage import Damage, undamaged
from harness.sweep.layout import read_layout
from harness.sweep.plan import plan_kind


@pytest.fixture
def data(tmp_path: Path) -> bytes:
    return write_forest(tmp_path).read_bytes()


def test_layout_finds_node_arrays(data: bytes) -> None:
    forest = small_forest()

    payloads = node_arrays(data)

    assert len(payloads) == len(forest.estimators_)
    for payload, tree in zip(payloads, forest.estimators_, strict=True):
        nodes = tree.tree_.__getstate__()["nodes"]
        assert data[payload.start : payload.end] == nodes.tobytes()
        assert payload.elements == tree.tree_.node_count


def test_layout_walks_opcodes_between_arrays(data: bytes) -> None:
    layout = read_layout(data)
    spans = [(p.start, p.end) for p in layout.arrays]

    assert layout.opcodes[0].name == "PROTO"
    assert layout.opcodes[0].offset == 0
    assert layout.opcodes[-1].name == "STOP"
    assert layout.opcodes[-1].offset == len(data) - 1
    for opcode in layout.opcodes:
        assert not any(start <= opcode.offset < end for start, end in spans)


def test_layout_marks_lengths_and_memo(data: bytes) -> None:
    layout = read_layout(data)
    offsets = [op.offset for op in layout.opcodes]
    by_name = {op.name: op for op in layout.opcodes}

    unicode = by_name["SHORT_BINUNICODE"]
    length = data[unicode.field_offset]
    following = offsets[offsets.index(unicode.offset) + 1]
    assert unicode.role == "length"
    assert unicode.field_size == 1
    assert following == unicode.field_offset + 1 + length
    assert by_name["BINGET"].role == "memo"
    assert by_name["FRAME"].role == "length"
    assert by_name["FRAME"].field_size == 8


def test_layout_of_compressed_file(tmp_path: Path) -> None:
    data = write_forest(tmp_path, compress=3).read_bytes()

    layout = read_layout(data)

    assert layout.compressor == "zlib"
    assert layout.compressed_span == (2, len(data) - 4)
    assert layout.arrays == ()
    assert layout.opcodes == ()


def test_truncations_follow_stride(data: bytes) -> None:
    plan = plan_kind("truncate", data, read_layout(data), count=0, stride=1000, seed=1)

    sizes = [damage.size for damage in plan.damages]
    assert sizes == list(range(0, len(data), 1000))
    assert all(not damage.flips for damage in plan.damages)


def test_bit_flips_repeat_for_seed(data: bytes) -> None:
    layout = read_layout(data)

    first = plan_kind("bitflip", data, layout, count=50, stride=1, seed=7)
    again = plan_kind("bitflip", data, layout, count=50, stride=1, seed=7)
    other = plan_kind("bitflip", data, layout, count=50, stride=1, seed=8)

    assert [d.flips for d in first.damages] == [d.flips for d in again.damages]
    assert [d.flips for d in first.damages] != [d.flips for d in other.damages]
    assert len({d.flips for d in first.damages}) == 50
    assert all(len(d.flips) == 1 for d in first.damages)


def test_opcode_damage_hits_targets(data: bytes) -> None:
    layout = read_layout(data)
    fields = {op.offset: op for op in layout.opcodes}

    plan = plan_kind("opcode", data, layout, count=30, stride=1, seed=3)

    targets = [damage.params["target"] for damage in plan.damages]
    assert targets[:3] == ["opcode", "length", "memo"]
    for damage in plan.damages:
        opcode = fields[damage.params["opcode_offset"]]
        ((offset, _),) = damage.flips
        if damage.params["target"] == "opcode":
            assert offset == opcode.offset
        else:
            assert (
                opcode.field_offset <= offset < opcode.field_offset + opcode.field_size
            )


def test_array_zero_damage_zeroes_field(data: bytes) -> None:
    layout = read_layout(data)

    plan = plan_kind("array", data, layout, count=40, stride=1, seed=5)

    zeroed = [d for d in plan.damages if d.params["operation"] == "zero"]
    assert zeroed
    for damage in zeroed:
        start = damage.params["offset"]
        damaged = damage.apply(data)
        assert damaged[start : start + damage.params["length"]] == bytes(
            damage.params["length"]
        )
        assert damaged[:start] == data[:start]


def test_compressed_kind_skips_plain_file(data: bytes) -> None:
    plan = plan_kind("compressed", data, read_layout(data), count=5, stride=1, seed=1)

    assert plan.damages == ()
    assert plan.skipped is not None
    assert "not compressed" in plan.skipped


def test_aimed_kinds_skip_compressed_file(tmp_path: Path) -> None:
    data = write_forest(tmp_path, compress=3).read_bytes()
    layout = read_layout(data)

    for kind in ("opcode", "array"):
        plan = plan_kind(kind, data, layout, count=5, stride=1, seed=1)
        assert plan.damages == ()
        assert plan.skipped is not None
        assert "compressed (zlib)" in plan.skipped
    flips = plan_kind("compressed", data, layout, count=5, stride=1, seed=1)
    assert all(2 <= d.flips[0][0] < len(data) - 4 for d in flips.damages)


def test_damage_first_offset() -> None:
    assert Damage("bitflip", 0, ((40, 1), (12, 0))).first_offset == 12
    assert Damage("truncate", 0, size=7).first_offset == 7
    assert Damage("array", 0, ((40, 1),), size=30).first_offset == 30
    assert undamaged().first_offset > 2**62


def test_damage_apply_flips_and_cuts() -> None:
    damage = Damage("bitflip", 0, ((0, 0), (1, 7)), size=3)

    assert damage.apply(b"\x00\x00\xff\xff") == b"\x01\x80\xff"
