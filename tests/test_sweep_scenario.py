"""The damage_sweep scenario through ``model-chaos run``, with two loaders."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import failed_checks, latest_report, model_chaos

SEED = "20261204"


@pytest.mark.parametrize(("loader", "code"), [("hardened", 0), ("basic", 1)])
def test_damage_sweep_scenario(loader: str, code: int, tmp_path: Path) -> None:
    result = model_chaos(
        "run",
        "-k",
        "damage_sweep",
        "--loader",
        loader,
        "--seed",
        SEED,
        "--report-dir",
        str(tmp_path),
    )

    report = latest_report(tmp_path)
    (entry,) = report["scenarios"]
    (check,) = entry["checks"]
    sweeps = list(
        (tmp_path / "latest" / "files").glob("damage_sweep-r0/sweep/sweep.json")
    )
    assert result.returncode == code, result.stdout + result.stderr
    assert check["name"] == "dangerous_files_rejected"
    assert len(sweeps) == 1
    if loader == "hardened":
        assert failed_checks(report) == {}
        assert check["detail"].startswith("The hardened loader rejected or served")
    else:
        assert failed_checks(report) == {"damage_sweep": {"dangerous_files_rejected"}}
        assert "were dangerous with the basic loader" in check["detail"]
        assert entry["saved_files"] == check["evidence"]["saved_files"]
