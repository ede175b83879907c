"""Running ``model-chaos`` as a user would: a separate process, real exit status."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Callable
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


def run_once(
    tmp_path_factory: Any, name: str, run: Callable[[Path], tuple[int, dict[str, Any]]]
) -> tuple[int, dict[str, Any]]:
    """Run a whole suite once per test session, whichever xdist worker asks first.

    Module-scoped fixtures run once per worker, and the scheduler may hand tests
    of one module to both workers; the others wait on a lock and read the result.
    """
    base = Path(tmp_path_factory.getbasetemp())
    # xdist workers share the parent of their own base directories.
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    result_file = root / f"{name}.json"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if result_file.exists():
            code, report = json.loads(result_file.read_text())
            return int(code), dict(report)
        report_dir = root / f"{name}-reports"
        report_dir.mkdir(exist_ok=True)
        code, report = run(report_dir)
        result_file.write_text(json.dumps([code, report]))
        return code, report
