"""model-chaos clean: leftovers of runs whose harness process is gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from service_support import alive, wait_for

from harness.cleanup import clean, set_run, start_time, track
from harness.targets.process import living_group_members


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache / "model-chaos" / "live"


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def leftover(live: Path, name: str, **info: object) -> Path:
    live.mkdir(parents=True, exist_ok=True)
    entry = live / f"{name}.json"
    entry.write_text(json.dumps({"owner": dead_pid(), **info}))
    return entry


def test_removes_leftover_directory(own_cache: Path, tmp_path: Path) -> None:
    scratch = tmp_path / "model-chaos-left"
    (scratch / "models").mkdir(parents=True)
    entry = leftover(own_cache, "dir", kind="directory", path=str(scratch))

    done = clean()

    assert f"removed {scratch}" in done
    assert not scratch.exists()
    assert not entry.exists()


def test_kills_leftover_service(own_cache: Path) -> None:
    # The marker argument makes the command line look like the service's.
    service = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "target_service"],
        start_new_session=True,
    )
    try:
        leftover(own_cache, "proc", kind="process", pgid=service.pid)

        done = clean()
        service.wait(timeout=10)
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()

    assert f"killed service process group {service.pid}" in done
    assert living_group_members(service.pid) == []


def test_spares_a_later_process_with_the_same_pid(own_cache: Path) -> None:
    # The entry's service is gone and a new service got its pid: the start
    # time recorded in the entry is not the new process's.
    service = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "target_service"],
        start_new_session=True,
    )
    try:
        started = start_time(service.pid)
        assert started is not None
        leftover(
            own_cache, "proc", kind="process", pgid=service.pid, started=started - 1
        )

        done = clean()

        assert service.poll() is None
    finally:
        service.kill()
        service.wait()

    assert done == [f"service process group {service.pid} was already gone"]


def test_entries_record_the_start_time(own_cache: Path) -> None:
    entry = track("process", pgid=os.getpid())

    assert json.loads(entry.read_text())["started"] == start_time(os.getpid())


def test_spares_unrelated_process(own_cache: Path) -> None:
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"],
        start_new_session=True,
    )
    try:
        leftover(own_cache, "proc", kind="process", pgid=other.pid)

        done = clean()

        assert other.poll() is None
    finally:
        other.kill()
        other.wait()

    assert f"service process group {other.pid} was already gone" in done


def test_keeps_entries_of_live_runs(own_cache: Path, tmp_path: Path) -> None:
    scratch = tmp_path / "in-use"
    scratch.mkdir()
    entry = track("directory", path=str(scratch))

    clean()

    assert entry.exists()
    assert scratch.exists()
    assert json.loads(entry.read_text())["owner"] == os.getpid()


def test_run_id_selects_that_run(own_cache: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    other = tmp_path / "other"
    unknown = tmp_path / "unknown"
    for scratch in (mine, other, unknown):
        scratch.mkdir()
    leftover(own_cache, "a", kind="directory", path=str(mine), run_id="run-a")
    leftover(own_cache, "b", kind="directory", path=str(other), run_id="run-b")
    leftover(own_cache, "c", kind="directory", path=str(unknown))

    done = clean("run-a")

    assert f"removed {mine}" in done
    assert not mine.exists()
    assert other.exists()
    assert unknown.exists()


def test_entries_record_the_run(own_cache: Path, tmp_path: Path) -> None:
    set_run("run-7")
    try:
        entry = track("directory", path=str(tmp_path))
    finally:
        set_run(None)

    assert json.loads(entry.read_text())["run_id"] == "run-7"


def test_forked_child_dies_with_its_parent() -> None:
    # The parent prints its child's pid and sleeps. SIGKILL gives it no chance
    # to stop the child, so only the kernel can end the child.
    code = """
import os, time
from harness.cleanup import die_with_parent
parent = os.getpid()
pid = os.fork()
if pid == 0:
    die_with_parent(parent)
    time.sleep(600)
    os._exit(0)
print(pid, flush=True)
time.sleep(600)
"""
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    with parent.stdout:
        child = int(parent.stdout.readline())
    assert alive(child)

    parent.kill()
    parent.wait()

    wait_for(lambda: not alive(child), timeout=10)
