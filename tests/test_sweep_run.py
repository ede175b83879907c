"""Whole sweeps: sweep.json, saved copies, regressions, shrinking, built-in model."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from sweep_support import canary_inputs, node_damage, write_forest

from harness.errors import UsageError
from harness.models import ModelSet
from harness.sweep import KINDS, SweepResult, run_sweep, timeouts
from harness.sweep.artifacts import load_schema
from harness.sweep.engine import CaseRunner
from harness.sweep.loaders import BasicCase
from harness.sweep.reference import load_reference
from harness.sweep.result import CaseResult
from harness.sweep.shrink import shrink_case

SEED = 3
FLIPS = 40


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_forest(tmp_path_factory.mktemp("forest"))


def sweep(forest: Path, out_dir: Path, loader: str, **options: object) -> SweepResult:
    settings: dict[str, object] = {
        "loader": loader,
        "flips": FLIPS,
        "stride": forest.stat().st_size // 60,
        "seed": SEED,
        "out_dir": out_dir,
        "canary_inputs": canary_inputs(),
    }
    settings.update(options)
    return run_sweep(forest, **settings)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def basic(forest: Path, tmp_path_factory: pytest.TempPathFactory) -> SweepResult:
    return sweep(forest, tmp_path_factory.mktemp("basic"), "basic", max_regressions=3)


def test_hardened_rejects_every_dangerous_copy(forest: Path, tmp_path: Path) -> None:
    result = sweep(forest, tmp_path, "hardened")

    counts = result.verdict_counts()
    assert result.dangerous == []
    assert counts["rejected"] > 0
    assert counts["identical"] > 0
    assert result.saved_files == []
    assert result.regressions == []


def test_basic_finds_dangerous_copies(basic: SweepResult) -> None:
    counts = basic.verdict_counts()

    assert counts["crash"] + counts["hang"] + counts["silent_corruption"] > 0
    assert (
        basic.summaries["truncate"].verdicts["rejected"]
        == basic.summaries["truncate"].cases
    )


def test_sweep_json_contents(basic: SweepResult, forest: Path) -> None:
    document = json.loads(basic.path.read_text())

    jsonschema.validate(document, load_schema())
    assert document["model"]["file"] == str(forest)
    assert document["model"]["sha256"] == basic.model_sha256
    assert document["loader"] == "basic"
    assert document["seed"] == SEED
    assert document["kinds"] == list(KINDS)
    assert document["timeouts"]["source"] == "measured"
    assert set(document["timeouts"]["cpu_seconds"]) == {"load", "predict"}
    assert document["canary"] == {"source": "argument", "rows": 8}
    assert set(document["versions"]) >= {"sklearn_version", "numpy_version"}
    assert document["by_kind"]["compressed"]["skipped"].startswith(
        "the file is not compressed"
    )
    cases = sum(kind["cases"] for kind in document["by_kind"].values())
    assert document["totals"]["cases"] == cases
    assert document["totals"]["dangerous"] == len(document["dangerous"])
    assert document["totals"]["cases_per_second"] > 0


def test_dangerous_copies_saved_with_sidecar(basic: SweepResult) -> None:
    saved = [case for case in basic.dangerous if case.saved_file is not None]

    assert saved
    for case in saved:
        assert case.saved_file is not None
        assert case.verdict in ("crash", "hang", "silent_corruption")
        assert case.damage.kind in case.saved_file.name
        assert case.saved_file.read_bytes() == case.damage.apply(
            basic.model_file.read_bytes()
        )
        sidecar = json.loads(case.saved_file.with_suffix(".json").read_text())
        assert sidecar["seed"] == SEED
        assert sidecar["verdict"] == case.verdict
        assert sidecar["flips"] == [list(flip) for flip in case.damage.flips]


def test_regression_module_collects(basic: SweepResult, tmp_path: Path) -> None:
    assert basic.regressions
    regression = basic.regressions[0]
    source = regression.path.read_text()

    tree = ast.parse(source)
    summary = (ast.get_docstring(tree) or "").splitlines()[0]
    collected = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            str(regression.path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )

    assert summary.startswith("Flipping 1 bit of the model ")
    assert f"FLIPS = [{regression.flips[0]}]" in source
    assert basic.model_sha256 in source
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert f"{regression.path.name}::{regression.path.stem}" in collected.stdout


def test_shrinks_multi_flip_crash(forest: Path, tmp_path: Path) -> None:
    reference = load_reference(forest, canary_inputs())
    data = reference.data
    damage = node_damage(data, 0, {(0, "left_child"): 10**9, (0, "right_child"): 10**9})
    runner = CaseRunner(data, BasicCase(reference.manifest.canary), workers=2)
    limits = timeouts.fixed(2.0, BasicCase.phases)
    (run,) = runner.run([damage], limits)
    case = CaseResult(damage, run.outcome, run.duration)

    flips = shrink_case(runner, limits, case)
    (again,) = runner.run([damage.with_flips(flips)], limits)

    # One flip of a high bit is enough on an idle machine. An out-of-range read
    # does not crash every time, so a busy run may keep a second flip.
    assert run.outcome.signal == "SIGSEGV"
    assert len(damage.flips) > 10
    assert 1 <= len(flips) <= 2
    assert set(flips) <= set(damage.flips)
    assert again.outcome == run.outcome


def test_compressed_file_sweep(tmp_path: Path) -> None:
    path = write_forest(tmp_path / "model", compress=3)

    result = run_sweep(
        path,
        loader="basic",
        kinds=("compressed", "array"),
        flips=20,
        seed=SEED,
        out_dir=tmp_path / "out",
        canary_inputs=canary_inputs(),
    )

    assert result.compressor == "zlib"
    assert result.summaries["compressed"].cases == 20
    assert result.summaries["compressed"].verdicts["rejected"] == 20
    assert result.summaries["array"].skipped is not None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"loader": "bogus"}, "unknown loader 'bogus'"),
        ({"kinds": ("truncate", "bitflips")}, "unknown damage kind 'bitflips'"),
        ({"flips": -1}, "--flips -1: pass 0 or more"),
        ({"stride": 0}, "--stride 0: pass 1 or more"),
        ({"timeout": 0.0}, "--timeout 0.0: pass a number of seconds above 0"),
    ],
)
def test_invalid_arguments(
    forest: Path, tmp_path: Path, options: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        sweep(forest, tmp_path, **{"loader": "basic", **options})  # type: ignore[arg-type]


def test_builtin_model_sweep(model_set: ModelSet, tmp_path: Path) -> None:
    known = model_set.get("global_model", "v1")
    assert known.path is not None
    results = {}
    for loader in ("basic", "hardened"):
        results[loader] = run_sweep(
            known.path,
            loader=loader,
            kinds=("array",),
            flips=24,
            seed=SEED,
            out_dir=tmp_path / loader,
            max_regressions=0,
        )

    basic_counts = results["basic"].verdict_counts()
    assert results["basic"].canary_source == "reference.json"
    assert (
        basic_counts["crash"] + basic_counts["hang"] + basic_counts["silent_corruption"]
        > 0
    )
    assert results["hardened"].dangerous == []
