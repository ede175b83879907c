"""Damaged copies of a small forest, each in a forked process, through each loader.

The copies are aimed so that each verdict is certain:

- a root whose children point far out of the node array dies with SIGSEGV;
- a root that is its own child loops forever;
- changed class labels give wrong predictions;
- a renamed fitted attribute makes predict raise;
- a changed impurity has no effect;
- truncations fail to load.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from sweep_support import canary_inputs, node_damage, write_forest

from harness.sweep import timeouts
from harness.sweep.damage import Damage, flips_between
from harness.sweep.engine import CaseRunner
from harness.sweep.layout import read_layout
from harness.sweep.loaders import BasicCase, CaseLoader, HardenedCase, NaiveCase
from harness.sweep.reference import Reference, load_reference

# CPU seconds a phase may use; the small forest needs a few milliseconds.
LIMITS = timeouts.fixed(0.5, ("validate", "load", "predict"))
WORKERS = 2


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    path = write_forest(tmp_path_factory.mktemp("forest"))
    return load_reference(path, canary_inputs())


def case_loader(name: str, reference: Reference, work_dir: Path) -> CaseLoader:
    canary = reference.manifest.canary
    if name == "hardened":
        return HardenedCase(canary, manifest=reference.manifest, work_dir=work_dir)
    return {"naive": NaiveCase, "basic": BasicCase}[name](canary)


def aimed_copies(data: bytes) -> dict[str, Damage]:
    """Return one copy per expected verdict of the basic loader."""
    layout = read_layout(data)
    classes = layout.arrays[0]
    assert (classes.dtype, classes.shape) == ("<i8", (2,))
    renamed = data.index(b"estimators_", classes.end)
    return {
        "crash": node_damage(
            data, 0, {(0, "left_child"): 10**9, (0, "right_child"): 10**9}
        ),
        "hang": node_damage(data, 1, {(0, "left_child"): 0, (0, "right_child"): 0}),
        "silent_corruption": Damage(
            "array",
            2,
            flips_between(
                data[classes.start + 8 : classes.end],
                struct.pack("<q", 3),
                classes.start + 8,
            ),
        ),
        "predict_error": Damage("opcode", 3, ((renamed, 0),)),
        "identical": node_damage(data, 4, {(0, "impurity"): 0.125}),
    }


def verdicts(runs: list) -> list[str]:
    return [run.outcome.verdict for run in runs]


def test_basic_verdict_per_copy(reference: Reference, tmp_path: Path) -> None:
    copies = aimed_copies(reference.data)
    runner = CaseRunner(
        reference.data, case_loader("basic", reference, tmp_path), workers=WORKERS
    )

    runs = runner.run(list(copies.values()), LIMITS)

    assert verdicts(runs) == list(copies)
    crash, hang, _, error, _ = (run.outcome for run in runs)
    assert crash.signal == "SIGSEGV"
    assert hang.error == "phase predict did not end within 0.5 s of CPU time"
    assert error.error is not None
    assert error.error.startswith("AttributeError")


def test_hardened_rejects_aimed_copies(reference: Reference, tmp_path: Path) -> None:
    copies = aimed_copies(reference.data)
    runner = CaseRunner(
        reference.data, case_loader("hardened", reference, tmp_path), workers=WORKERS
    )

    runs = runner.run(list(copies.values()), LIMITS)

    assert verdicts(runs) == ["rejected"] * 4 + ["identical"]
    reasons = [(run.outcome.error or "").split(":", 1)[0] for run in runs[:4]]
    assert reasons == [
        "validation_crashed",
        "validation_timeout",
        "canary_mismatch",
        "predict_error",
    ]
    assert list(tmp_path.iterdir()) == []


def test_truncations_rejected_by_basic(reference: Reference, tmp_path: Path) -> None:
    data = reference.data
    cuts = [
        Damage("truncate", i, size=size)
        for i, size in enumerate(range(0, len(data), 997))
    ]
    runner = CaseRunner(
        data, case_loader("basic", reference, tmp_path), workers=WORKERS
    )

    runs = runner.run(cuts, LIMITS)

    assert set(verdicts(runs)) == {"rejected"}
    assert all(run.outcome.error for run in runs)


def test_split_between_drivers_keeps_order(
    reference: Reference, tmp_path: Path
) -> None:
    # Enough copies for the runner to split them between driver processes,
    # with the aimed copies among the truncations.
    data = reference.data
    aimed = list(aimed_copies(data).values())
    cuts = [
        Damage("truncate", 10 + i, size=size)
        for i, size in enumerate(range(0, len(data), len(data) // 80))
    ]
    damages = cuts[:30] + aimed + cuts[30:]
    loader = case_loader("basic", reference, tmp_path)

    split = CaseRunner(data, loader, workers=WORKERS).run(damages, LIMITS)
    alone = CaseRunner(data, loader, workers=1).run(damages, LIMITS)

    assert len(damages) >= 64
    assert [run.damage for run in split] == damages
    assert verdicts(split) == verdicts(alone)
    assert verdicts(split)[30:35] == list(aimed_copies(data))


def test_naive_serves_nothing_after_failed_load(
    reference: Reference, tmp_path: Path
) -> None:
    cut = Damage("truncate", 0, size=len(reference.data) // 2)
    runner = CaseRunner(
        reference.data, case_loader("naive", reference, tmp_path), workers=WORKERS
    )

    (run,) = runner.run([cut], LIMITS)

    assert run.outcome.verdict == "predict_error"
    assert run.outcome.error is not None
    assert "the naive loader serves no model" in run.outcome.error


def test_forked_copies_match_fresh_loads(reference: Reference, tmp_path: Path) -> None:
    data = reference.data
    layout = read_layout(data)
    copies = [
        Damage("truncate", i, size=size)
        for i, size in enumerate(range(5, len(data), 2011))
    ]
    copies += [
        Damage("opcode", 100 + i, ((op.offset, 3),))
        for i, op in enumerate(layout.opcodes[::150])
    ]
    runner = CaseRunner(
        data, case_loader("basic", reference, tmp_path), workers=WORKERS
    )

    forked = runner.run(copies, LIMITS)
    fresh = runner.run_from_start(copies, LIMITS)

    assert [run.outcome for run in forked] == [run.outcome for run in fresh]
    assert [run.damage for run in forked] == copies


def test_undamaged_copy_is_identical(reference: Reference, tmp_path: Path) -> None:
    for name in ("naive", "basic", "hardened"):
        loader = case_loader(name, reference, tmp_path)
        runner = CaseRunner(reference.data, loader, workers=1)

        (run,) = runner.run_from_start([Damage("undamaged", 0)], LIMITS)

        assert run.outcome.verdict == "identical", (name, run.outcome)
        assert set(run.phases) == set(loader.phases)
