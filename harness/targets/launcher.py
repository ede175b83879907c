"""Start the reference service as a fork of a warm interpreter.

A fresh ``python -m target_service`` spends about a second importing
scikit-learn, FastAPI and uvicorn before it serves, and a suite starts dozens
of services. The launcher is one interpreter per harness process that has
imported them already. Each service is a fork of it that runs
``target_service`` as ``__main__`` with its own arguments, environment, working
directory, log file and session. The service under test is therefore the same
code in a process of its own, and only its imports are skipped.

The harness talks to the launcher over its stdin and stdout, one JSON object
per line. The launcher is the parent of every service it forks, so it reaps
them and reports their exit status. When its stdin closes, because the harness
exited in whatever way, it kills the services it started and exits.

Run as ``python -m harness.targets.launcher target_service``; the module name
on the command line also lets ``model-chaos clean`` recognise the launcher and
its services as the harness's own.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import logging
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from harness.cleanup import die_with_parent, track, untrack
from harness.errors import TargetError

logger = logging.getLogger(__name__)

SERVICE_MODULE = "target_service"

# Modules the service imports before /health responds. A module missing here
# is imported by the service itself, so the list only decides how much start-up
# time the fork saves.
PRELOAD_MODULES = (
    "target_service.__main__",
    "target_service.forking",
    "target_service.app",
    "target_service.validation",
    "uvicorn",
    "uvicorn.config",
    "uvicorn.server",
    "uvicorn.lifespan.on",
    "uvicorn.loops.auto",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.websockets.auto",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "sklearn.tree",
)

# Seconds between two polls of a service's exit status.
_WAIT_POLL = 0.01

# From <linux/prctl.h>.
_PR_SET_NAME = 15


class LauncherError(TargetError):
    """The launcher failed to start or stopped responding."""


@dataclass
class LaunchedService:
    """A service forked by the launcher, with the ``poll`` and ``wait`` of ``Popen``."""

    pid: int
    launcher: Launcher
    launcher_pid: int
    returncode: int | None = field(default=None, init=False)

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.launcher.exit_status(self.pid, self.launcher_pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"service pid {self.pid}", timeout or 0)
            time.sleep(_WAIT_POLL)
        return code


class Launcher:
    """The harness's end of one launcher process.

    ``module`` is what each fork runs as ``__main__``: the reference service,
    unless a test needs a simpler program.
    """

    def __init__(self, module: str = SERVICE_MODULE) -> None:
        self.module = module
        self._process: subprocess.Popen[str] | None = None
        self._tracked: Path | None = None
        # The process that started the launcher. A fork of it, such as a sweep
        # case, shares the pipes and must neither use nor stop the launcher.
        self._owner = os.getpid()
        # Threads may share the launcher, and a reply must reach the thread
        # that sent its request.
        self._lock = threading.Lock()

    def spawn(
        self,
        args: list[str],
        env: dict[str, str],
        log_path: Path,
        cwd: Path | None = None,
    ) -> LaunchedService:
        """Fork a service that runs ``python -m MODULE ARGS``, logging to ``log_path``.

        The service gets ``env`` as its whole environment and runs in ``cwd``,
        by default this process's working directory, as a subprocess would.
        """
        directory = str(cwd or Path.cwd())
        reply = self._request(
            op="spawn", args=args, env=env, log=str(log_path), cwd=directory
        )
        return LaunchedService(int(reply["pid"]), self, int(reply["launcher"]))

    def exit_status(self, pid: int, launcher_pid: int) -> int | None:
        """Return the exit status of service ``pid``, or None while it runs.

        A service dies with SIGKILL when the launcher that forked it dies, and
        only that launcher could report its status.
        """
        if self._process is None or self._process.pid != launcher_pid:
            return -signal.SIGKILL
        try:
            code = self._request(op="poll", pid=pid)["code"]
        except LauncherError as err:
            logger.warning("service pid %d died with its launcher: %s", pid, err)
            return -signal.SIGKILL
        return None if code is None else int(code)

    def close(self) -> None:
        """Stop the launcher; it kills any service it started that still runs."""
        with self._lock:
            process, self._process = self._process, None
            if process is None or os.getpid() != self._owner:
                return
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                logger.error("the launcher did not exit; killing it")
                process.kill()
                process.wait()
            except KeyboardInterrupt:
                # A second Ctrl-C: its services die with it.
                process.kill()
                process.wait()
                raise
            finally:
                if process.stdout is not None:
                    process.stdout.close()
                if self._tracked is not None:
                    untrack(self._tracked)
                    self._tracked = None

    def _request(self, **request: Any) -> dict[str, Any]:
        with self._lock:
            process = self._running()
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
                line = process.stdout.readline()
            except OSError as err:
                self._forget()
                raise LauncherError(f"the launcher stopped responding: {err}") from err
            except BaseException:
                # An interrupt between a request and its reply would leave the
                # reply to be read as the next request's, so the launcher goes.
                self._forget()
                raise
            if not line:
                # The next request starts a new launcher.
                self._forget()
                raise LauncherError(
                    f"the launcher exited with status {process.returncode}; its "
                    "errors are above in stderr"
                )
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise LauncherError(
                f"the launcher could not {request['op']}: {reply['error']}"
            )
        return reply

    def _forget(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:
                        pass  # a pipe with unsent data to a dead process
            # It has stopped responding: make sure it is gone, and reap it.
            process.kill()
            process.wait()
        if self._tracked is not None:
            untrack(self._tracked)
            self._tracked = None

    def _running(self) -> subprocess.Popen[str]:
        if os.getpid() != self._owner:
            raise LauncherError(
                f"the launcher of process {self._owner} cannot serve its fork "
                f"{os.getpid()}; create a Launcher in the fork"
            )
        if self._process is None:
            self._process = _start_launcher(self.module)
            self._tracked = track("process", pgid=self._process.pid)
        return self._process


def _start_launcher(module: str) -> subprocess.Popen[str]:
    # Its own session keeps a Ctrl-C in the terminal away from it, because the
    # harness stops the services first and then closes the launcher. Its forks
    # keep its standard streams, which are unbuffered as a fresh service's are,
    # so that a killed service loses no output.
    process = subprocess.Popen(
        [sys.executable, "-m", __name__, module],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    assert process.stdout is not None
    greeting = process.stdout.readline()
    if not greeting:
        code = process.wait()
        raise LauncherError(
            f"the launcher exited with status {code} before it was ready; its "
            "errors are above in stderr"
        )
    logger.debug("launcher pid %d ready: %s", process.pid, greeting.strip())
    return process


_shared: Launcher | None = None


def shared_launcher() -> Launcher:
    """Return this process's launcher, started on first use and stopped at exit."""
    global _shared
    if _shared is None:
        _shared = Launcher()
        atexit.register(close_shared_launcher)
    return _shared


def close_shared_launcher() -> None:
    """Stop this process's launcher, if it started one, and its services."""
    if _shared is None:
        return
    try:
        _shared.close()
    except KeyboardInterrupt:
        logger.warning("interrupted while the launcher stopped; it was killed")


# The launcher process itself.


def serve(module: str) -> int:
    """Serve the harness's requests until stdin closes; return the exit status."""
    _preload()
    replies = sys.stdout
    _reply(replies, {"ready": True, "pid": os.getpid()})
    services: dict[int, int | None] = {}
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = _handle(request, services, module)
        except Exception as err:  # the harness raises it as a LauncherError
            reply = {"error": f"{type(err).__name__}: {err}"}
        _reply(replies, reply)
    _kill_all(services)
    return 0


def _preload() -> None:
    # Set before NumPy is imported, as the service does, so that the service's
    # own setdefault finds them set.
    from target_service.__main__ import limit_native_threads

    limit_native_threads()
    for name in PRELOAD_MODULES:
        try:
            __import__(name)
        except ImportError:
            pass  # the service imports what it needs, or reports it


def _reply(stream: IO[str], reply: dict[str, Any]) -> None:
    stream.write(json.dumps(reply) + "\n")
    stream.flush()


def _handle(
    request: dict[str, Any], services: dict[int, int | None], module: str
) -> dict[str, Any]:
    if request["op"] == "spawn":
        pid = _fork_service(request, module)
        services[pid] = None
        return {"pid": pid, "launcher": os.getpid()}
    if request["op"] == "poll":
        pid = int(request["pid"])
        if services.get(pid) is None:
            services[pid] = _exit_status(pid)
        return {"code": services[pid]}
    raise ValueError(f"unknown op {request['op']!r}")


def _exit_status(pid: int) -> int | None:
    done, status = os.waitpid(pid, os.WNOHANG)
    return os.waitstatus_to_exitcode(status) if done else None


def _fork_service(request: dict[str, Any], module: str) -> int:
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    launcher = os.getpid()
    pid = os.fork()
    if pid == 0:
        _run_service(request, module, log, launcher)
    os.close(log)
    return pid


def _run_service(request: dict[str, Any], module: str, log: int, launcher: int) -> None:
    """Become the service in this forked child, and never return."""
    code = 1
    try:
        os.setsid()
        die_with_parent(launcher)
        _name_process(module)
        # The launcher's pipes to the harness sit on 0 and 1; replacing them
        # leaves the child holding no end of them.
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(devnull)
        os.close(log)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # read TMPDIR again
        sys.argv = [module, *request["args"]]
        # The preload imported the module's __main__ under its own name, and
        # runpy warns about running a module that is already imported.
        sys.modules.pop(f"{module}.__main__", None)
        code = _run_module(module)
    except BaseException:
        traceback.print_exc()
    finally:
        _finish(code)


def _name_process(module: str) -> None:
    # The command line stays the launcher's, so the name that ps -o comm, top
    # and pgrep show is what tells a service from the launcher.
    name = ctypes.create_string_buffer(module.encode()[:15])
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NAME, name, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_NAME) failed: {os.strerror(errno)}")


def _run_module(module: str) -> int:
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    return 0


def _finish(code: int) -> None:
    # What an interpreter does at exit, minus waiting for threads: the service
    # has already joined those it could.
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def _kill_all(services: dict[int, int | None]) -> None:
    for pid, code in services.items():
        if code is not None:
            continue
        # A fork that has not called setsid yet has no group of its own.
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1] if len(sys.argv) > 1 else SERVICE_MODULE))
