"""Running ``model-chaos`` as a user would: a separate process, real exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# A whole-suite run takes minutes; this bounds a hung run, not a slow one.
RUN_TIMEOUT = 900


def model_chaos(
    *args: str, env: dict[str, str] | None = None, timeout: float = RUN_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def latest_report(report_dir: Path) -> dict[str, Any]:
    return dict(json.loads((report_dir / "latest" / "report.json").read_text()))


def failed_checks(report: dict[str, Any]) -> dict[str, set[str]]:
    """Return the failed checks of each scenario entry, by entry name."""
    failed: dict[str, set[str]] = {}
    for entry in report["scenarios"]:
        names = {check["name"] for check in entry["checks"] if not check["passed"]}
        if names:
            failed[entry["name"]] = names
    return failed
