"""The launcher that forks services from a warm interpreter, with real processes.

The forks run the standard library's ``http.server`` instead of the reference
service: a real HTTP server whose arguments, working directory and log show
what the launcher gave it. The reference service under the launcher is tested
through the process target.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from service_support import alive, free_port, wait_for

from harness.targets.launcher import LaunchedService, Launcher, LauncherError

TIMEOUT = 30.0


@pytest.fixture
def launcher() -> Iterator[Launcher]:
    launcher = Launcher(module="http.server")
    try:
        yield launcher
    finally:
        launcher.close()


def start_server(launcher: Launcher, tmp_path: Path) -> tuple[LaunchedService, str]:
    """Fork an HTTP server that serves ``tmp_path``; return it and its URL."""
    port = free_port()
    args = [str(port), "--bind", "127.0.0.1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    service = launcher.spawn(args, env, tmp_path / "server.log", cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: answers(url), timeout=TIMEOUT)
    return service, url


def answers(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except requests.ConnectionError:
        return False
    return True


def test_fork_runs_the_module_in_its_own_session(
    launcher: Launcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The launcher starts on the first request, without the variable.
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    (tmp_path / "page.txt").write_text("served from the working directory")

    service, url = start_server(launcher, tmp_path)

    assert requests.get(f"{url}/page.txt", timeout=5).text == (
        "served from the working directory"
    )
    assert os.getsid(service.pid) == service.pid
    assert Path(f"/proc/{service.pid}/comm").read_text() == "http.server\n"
    assert service.poll() is None
    # http.server prints its address to stdout and logs each request to
    # stderr, and both go to the log file at once.
    log = tmp_path / "server.log"
    wait_for(lambda: "GET /page.txt" in log.read_text(), 5)
    assert "Serving HTTP on 127.0.0.1 port" in log.read_text()


def test_exit_status_of_a_signal(launcher: Launcher, tmp_path: Path) -> None:
    service, _ = start_server(launcher, tmp_path)

    os.killpg(service.pid, signal.SIGKILL)

    assert service.wait(timeout=TIMEOUT) == -signal.SIGKILL
    assert not alive(service.pid)


def test_wait_times_out_like_popen(launcher: Launcher, tmp_path: Path) -> None:
    service, _ = start_server(launcher, tmp_path)

    with pytest.raises(subprocess.TimeoutExpired):
        service.wait(timeout=0.1)


def test_close_kills_the_services_still_running(
    launcher: Launcher, tmp_path: Path
) -> None:
    first, _ = start_server(launcher, tmp_path)
    second, _ = start_server(launcher, tmp_path)

    launcher.close()

    assert not alive(first.pid)
    assert not alive(second.pid)


def test_services_die_with_a_killed_harness(tmp_path: Path) -> None:
    # A harness killed with SIGKILL cannot clean up, so the launcher reads the
    # end of its stdin and kills what it started.
    harness = textwrap.dedent(
        f"""
        import os, sys, time
        from harness.targets.launcher import Launcher
        service = Launcher(module="http.server").spawn(
            ["0", "--bind", "127.0.0.1"], dict(os.environ), {str(tmp_path)!r} + "/log"
        )
        print(service.pid, flush=True)
        time.sleep(600)
        """
    )
    # Its tracking entry stays behind, in a cache of its own.
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    process = subprocess.Popen(
        [sys.executable, "-c", harness], stdout=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout is not None
    with process.stdout:
        pid = int(process.stdout.readline())
    assert alive(pid)

    process.kill()
    process.wait()

    wait_for(lambda: not alive(pid), timeout=TIMEOUT)


def test_services_die_with_a_killed_launcher(
    launcher: Launcher, tmp_path: Path
) -> None:
    service, _ = start_server(launcher, tmp_path)
    assert launcher._process is not None
    old_launcher = launcher._process.pid

    os.kill(old_launcher, signal.SIGKILL)

    wait_for(lambda: not alive(service.pid), timeout=TIMEOUT)
    assert service.poll() == -signal.SIGKILL
    restarted, _ = start_server(launcher, tmp_path)
    assert launcher._process.pid != old_launcher
    assert restarted.poll() is None


def test_missing_module_exits_with_status_1(tmp_path: Path) -> None:
    launcher = Launcher(module="no_such_module_anywhere")
    try:
        service = launcher.spawn([], dict(os.environ), tmp_path / "log")
        # The launcher starts without it, and the fork fails to import it.
        assert service.wait(timeout=TIMEOUT) == 1
        assert (
            "No module named no_such_module_anywhere" in (tmp_path / "log").read_text()
        )
    finally:
        launcher.close()


def test_unknown_request_is_an_error(launcher: Launcher) -> None:
    with pytest.raises(LauncherError, match="unknown op 'restart'"):
        launcher._request(op="restart")


def test_fork_of_the_harness_leaves_the_launcher_alone(
    launcher: Launcher, tmp_path: Path
) -> None:
    service, url = start_server(launcher, tmp_path)

    pid = os.fork()
    if pid == 0:
        # A sweep case is such a fork: it must not stop the parent's services.
        code = 0
        try:
            launcher.close()
            launcher.spawn([], dict(os.environ), tmp_path / "log")
            code = 1
        except LauncherError:
            pass
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert service.poll() is None
    assert answers(url)


def test_interrupted_close_kills_the_launcher(
    launcher: Launcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, _ = start_server(launcher, tmp_path)
    process = launcher._process
    assert process is not None
    wait = process.wait
    interrupts = [KeyboardInterrupt()]

    def second_ctrl_c(timeout: float | None = None) -> int:
        if interrupts:
            raise interrupts.pop()
        return wait(timeout)

    monkeypatch.setattr(process, "wait", second_ctrl_c)

    with pytest.raises(KeyboardInterrupt):
        launcher.close()

    assert process.returncode == -signal.SIGKILL
    wait_for(lambda: not alive(service.pid), timeout=TIMEOUT)
    assert launcher._tracked is None
