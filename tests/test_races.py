"""The race scenarios, repeated: every repeat must reproduce its race.

A repeat reproduces the race when the target attempted a load while the file
was half-written and the report shows the error it recorded for that attempt.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import latest_report, model_chaos

pytestmark = pytest.mark.xdist_group("races")

RACES = ("torn_write_reload", "restart_half_written")


def test_races_reproduce_every_repeat(tmp_path: Path) -> None:
    result = model_chaos(
        "run",
        "-k",
        " or ".join(RACES),
        "--repeat",
        "3",
        "--seed",
        "40",
        "--report-dir",
        str(tmp_path),
    )

    report = latest_report(tmp_path)
    by_scenario = report["summary"]["by_scenario"]
    assert result.returncode == 0, result.stdout[-3000:]
    for name in RACES:
        assert by_scenario[name]["passed"] == 3
        assert by_scenario[name]["reproduced"] == 3
        assert by_scenario[name]["failed_seeds"] == []
    seeds = sorted(entry["seed"] for entry in report["scenarios"])
    assert seeds == [40, 40, 41, 41, 42, 42]
    markdown = (tmp_path / "latest" / "report.md").read_text()
    assert "| torn_write_reload | 3/3 | 3/3 | - |" in markdown
