"""benchmarks/run.py end to end: a quick run writes every section and cleans up.

The run is started once for the module, as a user starts it, and the tests
read what it left: the page, the processes still running, the scratch files.
No figure is checked, because they depend on the machine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.run import cache_dir

ROOT = Path(__file__).resolve().parent.parent

# Seconds a quick run may take. It takes 1 to 2 min on 2 cores; this bounds a
# hung run, not a slow one.
RUN_TIMEOUT = 900

# Seconds to wait for killed processes to disappear from /proc.
EXIT_GRACE = 10.0

SECTIONS = (
    "## Machine",
    "## Versions",
    "## Command",
    "## Figures",
    "## 1. Default suite wall time",
    "## 2. Probe sample rate",
    "## 3. Predict latency without and during faults",
    "## 4. Publish to healthy",
    "## 5. Service memory",
    "## 6. Damage sweep throughput",
)

# Set in the environment of the run, so that every process it started, and
# every process those started, can be found by it afterwards.
MARKER_VARIABLE = "MODEL_CHAOS_BENCHMARK_RUN"

pytestmark = pytest.mark.xdist_group("benchmarks")


@dataclass(frozen=True)
class QuickRun:
    """A finished ``benchmarks/run.py --quick`` and where it wrote."""

    result: subprocess.CompletedProcess[str]
    output: Path
    tmp_dir: Path
    marker: str
    pid: int

    @property
    def page(self) -> str:
        return self.output.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuickRun]:
    output = tmp_path_factory.mktemp("benchmarks") / "b.md"
    # A short TMPDIR: the services' fork servers put a socket in it, and
    # pytest's own temporary paths can be too long for one.
    tmp_dir = Path(tempfile.mkdtemp(prefix="mcb-test-"))
    try:
        yield _run_quick(output, tmp_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _run_quick(output: Path, tmp_dir: Path) -> QuickRun:
    marker = secrets.token_hex(8)
    env = {**os.environ, "TMPDIR": str(tmp_dir), MARKER_VARIABLE: marker}

    process = subprocess.Popen(
        [
            sys.executable,
            "benchmarks/run.py",
            "--quick",
            "--output",
            str(output),
        ],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    result = subprocess.CompletedProcess(
        process.args, process.returncode, stdout, stderr
    )
    return QuickRun(result, output, tmp_dir, marker, process.pid)


def marked_processes(marker: str) -> list[str]:
    """Return the command lines of live processes whose environment has ``marker``."""
    found = []
    needle = f"{MARKER_VARIABLE}={marker}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry}: {command}")
    return found


def test_quick_run_exits_0(quick_run: QuickRun) -> None:
    assert quick_run.result.returncode == 0, quick_run.result.stderr[-3000:]


def test_page_has_every_section(quick_run: QuickRun) -> None:
    page = quick_run.page

    for heading in SECTIONS:
        assert f"\n{heading}\n" in page, f"{heading!r} missing"


def test_every_section_ran(quick_run: QuickRun) -> None:
    not_run = [line for line in quick_run.page.splitlines() if "Not run:" in line]

    assert not_run == []


def test_page_shows_command_line(quick_run: QuickRun) -> None:
    # The page shows the interpreter relative to the directory the run started
    # in when it lies below it, as a virtual environment in the repository does.
    python = Path(sys.executable)
    shown = python.relative_to(ROOT) if python.is_relative_to(ROOT) else python
    command = f"{shown} benchmarks/run.py --quick --output {quick_run.output}"

    assert f"```\n{command}\n```" in quick_run.page


def test_page_says_quick_run(quick_run: QuickRun) -> None:
    page = quick_run.page

    assert "This was a quick run (`--quick`)" in page
    assert "`-k baseline` only" in page


def test_page_names_machine_and_versions(quick_run: QuickRun) -> None:
    page = quick_run.page

    for name in ("CPU", "Memory", "Python", "scikit-learn", "numpy", "joblib"):
        assert f"| {name} |" in page, f"{name} missing"
    assert "| model-chaos |" in page


def test_no_process_left_running(quick_run: QuickRun) -> None:
    deadline = time.monotonic() + EXIT_GRACE
    left = marked_processes(quick_run.marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = marked_processes(quick_run.marker)

    assert left == []


def test_no_temporary_files_left(quick_run: QuickRun) -> None:
    assert sorted(p.name for p in quick_run.tmp_dir.iterdir()) == []


def test_no_cleanup_records_left(quick_run: QuickRun) -> None:
    live = cache_dir() / "live"
    owners = []
    for entry in sorted(live.glob("*.json")) if live.is_dir() else []:
        try:
            owners.append(json.loads(entry.read_text()).get("owner"))
        except (OSError, ValueError):
            # Other test processes add and remove their records meanwhile.
            continue

    assert quick_run.pid not in owners
