"""The reference service as a local process, started with the harness's interpreter."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Protocol

from harness.cleanup import track, untrack
from harness.errors import SetupError, TargetError, TargetNotReady
from harness.targets.base import Target, TargetConfig
from harness.targets.launcher import LauncherError, shared_launcher
from harness.timeline import Timeline

logger = logging.getLogger(__name__)

# Seconds between two looks at /health while waiting for the service to come up.
_READY_POLL = 0.05

# Set to 1 to start every service as a fresh interpreter, not a warm fork.
COLD_START_VARIABLE = "MODEL_CHAOS_COLD_START"

# Linux's sun_path has room for 108 bytes, the terminating NUL included.
_SOCKET_PATH_MAX = 107
_TEMP_PREFIX = "model-chaos-tmp-"
# Bytes that the service's TMPDIR and its fork server's socket add to the
# system's temporary directory: mkdtemp and mktemp names end in 8 random
# characters.
_SOCKET_PATH_ADDED = len(f"/{_TEMP_PREFIX}12345678/pymp-12345678/listener-12345678")


def check_temp_dir(loader: str) -> None:
    """Raise SetupError when a service's fork server socket would not fit in TMPDIR.

    The hardened service's fork server listens on a Unix socket in the service's
    TMPDIR, which this target creates in the system's temporary directory, and
    a long path there makes every start-up fail.
    """
    if loader != "hardened":
        return  # only the hardened loader starts a fork server
    parent = tempfile.gettempdir()
    limit = _SOCKET_PATH_MAX - _SOCKET_PATH_ADDED
    if len(os.fsencode(parent)) > limit:
        raise SetupError(
            f"TMPDIR {parent} is {len(os.fsencode(parent))} bytes long, too long "
            "for the Unix socket of the service's fork server below it; set TMPDIR "
            f"to a directory of at most {limit} bytes, such as /tmp"
        )


class ServiceProcess(Protocol):
    """The part of a service process the target uses: a Popen or a warm fork."""

    pid: int

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now.

    The port is released before the service binds it, so another program could
    take it in between; :meth:`ProcessTarget.start` then notices the service exit
    and reports it with the service's own log line.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ProcessTarget(Target):
    """Runs ``python -m target_service`` in its own process group.

    The process group lets the harness pause, resume and kill the service
    together with its validation processes, as ``docker pause`` would freeze
    a whole container.
    """

    kind = "process"

    def __init__(
        self,
        config: TargetConfig,
        timeline: Timeline | None = None,
        *,
        port: int | None = None,
    ) -> None:
        super().__init__(config, timeline)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: ServiceProcess | None = None
        self._log_path = config.log_dir / "target.log"
        self._log_handle: IO[bytes] | None = None
        self._starts = 0
        self._last_exit: int | None = None
        self._paused = False
        self._tracked: Path | None = None
        self._exit_recorded_for: int | None = None
        # The service's TMPDIR. Its fork server puts a socket directory there,
        # which only a graceful exit removes; close() removes it after a kill.
        self._temp_dir: Path | None = None
        self._temp_tracked: Path | None = None

    def command(self) -> list[str]:
        key = str(self.config.hmac_key_file) if self.config.hmac_key_file else None
        args = self.config.service_args(str(self.config.model_dir), key)
        return [sys.executable, "-m", "target_service", "--port", str(self.port), *args]

    def start(self) -> None:
        if self.running:
            raise TargetError(f"the service already runs as pid {self._pid()}")

        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        if self._log_handle is None:
            # One handle for every run of the service, closed in close().
            self._log_handle = open(self._log_path, "ab")
        if self._temp_dir is None:
            check_temp_dir(self.config.loader)
            self._temp_dir = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX))
            self._temp_tracked = track("directory", path=str(self._temp_dir))
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "TMPDIR": str(self._temp_dir),
            **self.config.env,
        }
        self._process = self._launch(env)
        self._starts += 1
        self._paused = False
        if self._tracked is not None:
            untrack(self._tracked)
        self._tracked = track("process", pgid=self._process.pid)
        self._record("target_started", pid=self._process.pid)
        self._wait_ready()

    def _launch(self, env: dict[str, str]) -> ServiceProcess:
        if self.warm:
            try:
                return shared_launcher().spawn(self.command()[3:], env, self._log_path)
            except LauncherError as err:
                logger.warning("starting a fresh interpreter instead: %s", err)
        return subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    @property
    def warm(self) -> bool:
        """Whether the service starts as a fork of the launcher's warm interpreter.

        Variables in ``config.env`` could change how the service's imports
        behave, which a fork of an interpreter that has imported them cannot
        honour, so such a service starts as a fresh interpreter, as every
        service does when ``MODEL_CHAOS_COLD_START=1`` is set.
        """
        return not self.config.env and os.environ.get(COLD_START_VARIABLE) != "1"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            code = self._poll()
            if code is not None:
                self._record("target_not_ready", exit_code=code)
                raise TargetNotReady(
                    f"the service exited with status {code} before it answered "
                    f"/health; its log ends with:\n{self._log_tail()}",
                    target=self.kind,
                )
            if self.health_responds():
                self._record("target_ready", pid=self._pid())
                return
            time.sleep(_READY_POLL)

        self._record("target_not_ready", timeout=self.startup_timeout)
        raise TargetNotReady(
            f"the service did not answer {self.url}/health within "
            f"{self.startup_timeout:.0f} s; its log ends with:\n"
            f"{self._log_tail()}",
            target=self.kind,
        )

    def stop(self, timeout: float = 10.0) -> None:
        if self._process is None or self._poll() is not None:
            return
        self._signal_group(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
        self._signal_group(signal.SIGTERM)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("service pid %s ignored SIGTERM; killing it", self._pid())
            self._signal_group(signal.SIGKILL)
            self._process.wait()
        self._reap_group()
        self._record("target_stopped", exit_code=self._poll())

    def kill(self) -> None:
        if self._process is None or self._poll() is not None:
            return
        self._signal_group(signal.SIGKILL)
        self._process.wait()
        self._record("target_killed", exit_code=self._poll())

    def pause(self) -> None:
        self._signal_group(signal.SIGSTOP)
        self._paused = True
        self._record("target_paused")

    def unpause(self) -> None:
        self._signal_group(signal.SIGCONT)
        self._paused = False
        self._record("target_unpaused")

    @property
    def exit_code(self) -> int | None:
        return self._poll()

    @property
    def running(self) -> bool:
        return self._process is not None and self._poll() is None

    @property
    def restart_count(self) -> int:
        return max(self._starts - 1, 0)

    def logs(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        if self._process is not None and self._poll() is None:
            self._signal_group(signal.SIGKILL)
            self._process.wait()
        self._reap_group()
        if self._tracked is not None:
            untrack(self._tracked)
            self._tracked = None
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None
        if self._temp_tracked is not None:
            untrack(self._temp_tracked)
            self._temp_tracked = None
        self._http.close()

    def _poll(self) -> int | None:
        if self._process is None:
            return self._last_exit
        code = self._process.poll()
        if code is not None and self._exit_recorded_for != self._process.pid:
            # Each process's exit is recorded once, even when two runs end alike.
            self._exit_recorded_for = self._process.pid
            self._last_exit = code
            self._record("target_exited", exit_code=code)
        return code

    def _pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _signal_group(self, sig: signal.Signals) -> None:
        pid = self._pid()
        if pid is None:
            return
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass

    def _reap_group(self, timeout: float = 5.0) -> None:
        # Validation processes forked by the service share its process group;
        # they must not outlive it, whatever state it died in.
        pgid = self._pid()
        if pgid is None:
            return
        deadline = time.monotonic() + timeout
        while living_group_members(pgid):
            self._signal_group(signal.SIGKILL)
            if time.monotonic() > deadline:
                logger.error("process group %s survived SIGKILL", pgid)
                return
            time.sleep(0.01)

    def _log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])


def living_group_members(pgid: int) -> list[int]:
    """Return the pids of process group ``pgid`` that are not zombies.

    A killed process whose parent died first waits as a zombie until init reaps
    it, and some init programs never do; a zombie has no memory, files or
    ports, so it does not count as left running.
    """
    members = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            members.append(int(stat_file.parent.name))
    return members
