"""The reference service in a Docker container on this machine.

The model directory is bind-mounted read-write at ``/models``, so faults that the
harness injects on the host reach the service at once. The HMAC key file is
mounted read-only. Port 8080 is published on 127.0.0.1 only, on a host port
picked once, so ``url`` stays valid across restarts.

The container runs as a non-root user, so file modes apply to the service as
they would in production, and permission faults work:

- when the harness runs as a non-root user, the container runs with the
  harness's uid and gid, so it reads every file the harness writes;
- when the harness runs as root, the container keeps the image's user (uid
  10001). The model directory is then made world-readable and traversable,
  the model files must be world-readable (the default with umask 022), and
  the key is copied to a private file owned by uid 10001.
"""

from __future__ import annotations

import logging
import math
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import requests
from docker.errors import APIError, DockerException, NotFound
from docker.models.containers import Container

from harness.cleanup import track, untrack
from harness.docker.base_image import DEFAULT_BASE_IMAGE
from harness.docker.cleanup import OWNER_LABEL, RUN_LABEL, clean
from harness.docker.engine import connect
from harness.docker.images import build_target_image
from harness.docker.wheels import Pins
from harness.errors import TargetError, TargetNotReady
from harness.targets.base import Target, TargetConfig
from harness.targets.process import free_port
from harness.timeline import Timeline

__all__ = ["DockerTarget", "check_engine", "clean"]

logger = logging.getLogger(__name__)

CONTAINER_PORT = 8080
CONTAINER_MODEL_DIR = "/models"
CONTAINER_KEY_FILE = "/run/model-chaos/hmac.key"
# The user the image's Dockerfile creates and runs the service as.
IMAGE_UID = 10001
# Seconds between two state checks while waiting for the service.
_READY_POLL = 0.1
# Seconds to wait for a killed container to be reported as exited.
_EXIT_WAIT = 30


def check_engine() -> None:
    """Raise :class:`~harness.errors.DockerUnavailable` unless a local engine runs."""
    connect(timeout=10).close()


class DockerTarget(Target):
    """Runs the service image in a container labelled ``model-chaos.run=<run_id>``.

    ``image`` defaults to the image built from this checkout for ``pins`` (the
    harness's own library versions by default). ``restart_policy`` is the
    engine's, for example ``{"Name": "on-failure", "MaximumRetryCount": 5}``.

    :attr:`exit_code` is the container's exit status as the engine reports it.
    A service killed by a signal shows as 128 plus the signal number (137 for
    SIGKILL, 143 for SIGTERM), not as a negative number, because the engine
    reports a signal death and ``exit(137)`` alike.

    :meth:`kill` is ``docker kill``, which the engine counts as a requested
    stop, so a restart policy does not restart the container after it.
    """

    kind = "docker"
    # A container's first start after its image was built reads every library
    # from a cold overlay file system; under load that took over 20 s.
    default_startup_timeout = 60.0

    def __init__(
        self,
        config: TargetConfig,
        timeline: Timeline | None = None,
        *,
        run_id: str,
        image: str | None = None,
        restart_policy: dict[str, Any] | None = None,
        pins: Pins | None = None,
        base_image: str = DEFAULT_BASE_IMAGE,
        client: docker.DockerClient | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(config, timeline)
        self.run_id = run_id
        self.image = image
        self.restart_policy = restart_policy
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.container_name = f"model-chaos-{_name_part(run_id)}-{secrets.token_hex(4)}"

        self._pins = pins
        self._base_image = base_image
        self._own_client = client is None
        self._client = client or connect()
        self._container: Container | None = None
        self._key_dir: Path | None = None
        self._key_tracked: Path | None = None
        self._harness_restarts = 0
        # The engine's RestartCount counts the restart policy's restarts but
        # starts again at 0 on every start or restart the harness requests,
        # so the policy's restarts are summed here as they are seen.
        self._policy_restarts = 0
        self._engine_restart_count = 0
        self._last_state: dict[str, Any] = {}
        self._reported_exit: str | None = None
        self._saved_logs = ""
        self._closed = False

    @property
    def container_id(self) -> str | None:
        return self._container.id if self._container is not None else None

    def start(self) -> None:
        if self._closed:
            raise TargetError(
                f"container {self.container_name} was closed; create a new target",
                target=self.kind,
            )
        if self._container is None:
            self._container = self._create()
            with self._engine_errors("start"):
                self._container.start()
        else:
            # Looking at the state also counts the policy's restarts before
            # the start resets the engine's count.
            if self.running:
                raise TargetError(
                    f"container {self.container_name} already runs", target=self.kind
                )
            with self._engine_errors("start"):
                self._container.start()
            self._harness_restarts += 1

        self._record("target_started", container=self.container_name, port=self.port)
        self._wait_ready()

    def _create(self) -> Container:
        image = self.image or build_target_image(
            self._client, self._pins, self._base_image
        )
        self.image = image
        model_dir, key = self._checked_paths()
        volumes = {str(model_dir): {"bind": CONTAINER_MODEL_DIR, "mode": "rw"}}
        key_file = None
        if key is not None:
            volumes[str(self._key_source(key))] = {
                "bind": CONTAINER_KEY_FILE,
                "mode": "ro",
            }
            key_file = CONTAINER_KEY_FILE
        if os.geteuid() == 0:
            _share_with_image_user(model_dir)

        with self._engine_errors("create"):
            return self._client.containers.create(
                image,
                command=self.config.service_args(CONTAINER_MODEL_DIR, key_file),
                name=self.container_name,
                labels={
                    RUN_LABEL: self.run_id,
                    "model-chaos.target": self.kind,
                    OWNER_LABEL: str(os.getpid()),
                },
                ports={f"{CONTAINER_PORT}/tcp": ("127.0.0.1", self.port)},
                volumes=volumes,
                environment=dict(self.config.env),
                restart_policy=self.restart_policy,
                # An init process reaps the validation processes the service
                # forks, which PID 1 would otherwise have to do.
                init=True,
                user=_container_user(),
                detach=True,
            )

    def _checked_paths(self) -> tuple[Path, Path | None]:
        # The engine would create a missing bind-mount source as an empty
        # directory owned by root, so a typo would pass silently.
        model_dir = self.config.model_dir.resolve()
        if not model_dir.is_dir():
            raise TargetError(
                f"model directory {model_dir} does not exist; create it and put "
                "the model files in it before starting the target",
                target=self.kind,
            )
        key = self.config.hmac_key_file
        if key is not None and not key.is_file():
            raise TargetError(
                f"HMAC key file {key} does not exist or is not a file; pass the "
                "file that signed the manifests",
                target=self.kind,
            )
        return model_dir, key.resolve() if key is not None else None

    def _key_source(self, key: Path) -> Path:
        if os.geteuid() != 0:
            return key

        # Root: a private copy owned by the image's user, instead of making the
        # harness's key readable by every user of this machine.
        self._key_dir = Path(tempfile.mkdtemp(prefix="model-chaos-key-"))
        # A killed run cannot remove this copy of the key; `clean` will.
        self._key_tracked = track("directory", path=str(self._key_dir))
        copy = self._key_dir / "hmac.key"
        shutil.copyfile(key, copy)
        os.chown(copy, IMAGE_UID, IMAGE_UID)
        copy.chmod(0o400)
        return copy

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            state = self._state()
            if not state.get("Running"):
                code = state.get("ExitCode")
                self._record("target_not_ready", exit_code=code)
                raise TargetNotReady(
                    f"container {self.container_name} exited with status {code} "
                    f"before it responded to /health; its log ends with:\n"
                    f"{self._log_tail()}",
                    target=self.kind,
                )
            if not state.get("Restarting") and (
                self.health_responds() or _health_status(state) == "healthy"
            ):
                self._record("target_ready", container=self.container_name)
                return
            time.sleep(_READY_POLL)

        self._record("target_not_ready", timeout=self.startup_timeout)
        raise TargetNotReady(
            f"container {self.container_name} did not respond to {self.url}/health "
            f"within {self.startup_timeout:g} s (health: "
            f"{self.container_health}); its log ends with:\n{self._log_tail()}",
            target=self.kind,
        )

    def stop(self, timeout: float = 10.0) -> None:
        if self._container is None or not self.running:
            return
        self._thaw()
        with self._engine_errors("stop"):
            self._container.stop(timeout=math.ceil(timeout))
        self._record("target_stopped", exit_code=self.exit_code)

    def kill(self) -> None:
        if self._container is None or not self.running:
            return
        with self._engine_errors("kill"):
            self._container.kill(signal="SIGKILL")
            self._container.wait(timeout=_EXIT_WAIT)
        self._record("target_killed", exit_code=self.exit_code)

    def restart(self) -> None:
        """Restart the container (``docker restart``) and wait for ``/health``."""
        if self._container is None:
            self.start()
            return
        self._thaw()  # also counts the policy's restarts before the reset
        with self._engine_errors("restart"):
            self._container.restart(timeout=10)
        self._harness_restarts += 1
        self._record("target_restarted", container=self.container_name, by="harness")
        self._wait_ready()

    def pause(self) -> None:
        container = self._require_container("pause")
        with self._engine_errors("pause"):
            container.pause()
        self._record("target_paused")

    def unpause(self) -> None:
        container = self._require_container("unpause")
        with self._engine_errors("unpause"):
            container.unpause()
        self._record("target_unpaused")

    def path_in_target(self, host_path: Path) -> str:
        """Return the container's path for a host path inside the model directory."""
        relative = (
            Path(host_path).resolve().relative_to(Path(self.config.model_dir).resolve())
        )
        return str(Path(CONTAINER_MODEL_DIR) / relative)

    @property
    def exit_code(self) -> int | None:
        """Return the engine's exit status of the last run, or ``None`` while it runs.

        A service killed by a signal shows as 128 plus the signal number (137
        for SIGKILL), not as a negative number.
        """
        state = self._state()
        if not state or not _has_run(state):
            return None
        if state.get("Running") and not state.get("Restarting"):
            return None
        return int(state["ExitCode"])

    @property
    def running(self) -> bool:
        """Return whether the service runs now; a paused container counts as running."""
        state = self._state()
        return bool(state.get("Running")) and not state.get("Restarting")

    @property
    def paused(self) -> bool:
        return bool(self._state().get("Paused"))

    @property
    def restart_count(self) -> int:
        """Return the restarts by the harness plus those by the restart policy."""
        self._state()
        return self._harness_restarts + self._policy_restarts

    @property
    def container_health(self) -> str | None:
        """Return the engine's health status: ``starting``, ``healthy``, ``unhealthy``.

        ``None`` when there is no container or the image has no health check.
        """
        return _health_status(self._state())

    def logs(self) -> str:
        if self._container is None:
            return self._saved_logs
        with self._engine_errors("read the logs of"):
            output = self._container.logs(stdout=True, stderr=True)
        return bytes(output).decode(errors="replace")

    def close(self) -> None:
        """Kill the service, save its logs to ``log_dir/target.log``, remove it."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._container is not None:
                self._kill_for_close()
                self._save_logs()
                self._remove_container()
        finally:
            if self._key_dir is not None:
                shutil.rmtree(self._key_dir, ignore_errors=True)
                self._key_dir = None
            if self._key_tracked is not None:
                untrack(self._key_tracked)
                self._key_tracked = None
            self._http.close()
            if self._own_client:
                self._client.close()

    def _kill_for_close(self) -> None:
        # Killing before the removal keeps the final state (exit status 137)
        # and a target_exited event, which a forced removal would not leave.
        try:
            self.kill()
        except TargetError as err:
            logger.warning("%s", err)

    def _save_logs(self) -> None:
        try:
            self._saved_logs = self.logs()
        except TargetError as err:
            logger.error("logs of container %s are lost: %s", self.container_name, err)
            return
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        (self.config.log_dir / "target.log").write_text(self._saved_logs)

    def _remove_container(self) -> None:
        assert self._container is not None
        try:
            # v=True removes an anonymous volume, should /models lack its mount.
            self._container.remove(force=True, v=True)
        except NotFound:
            pass
        except (DockerException, requests.RequestException) as err:
            raise TargetError(
                f"cannot remove container {self.container_name}: {err}; remove it "
                f"with `model-chaos clean --run-id {self.run_id}`",
                target=self.kind,
            ) from err
        self._container = None
        self._record("target_removed", container=self.container_name)

    def _state(self) -> dict[str, Any]:
        """Return the container's ``State``; after removal, the last one seen."""
        if self._container is None:
            return self._last_state
        with self._engine_errors("inspect"):
            self._container.reload()
        self._last_state = dict(self._container.attrs.get("State") or {})
        self._report_exit(self._last_state)
        self._report_policy_restarts(int(self._container.attrs.get("RestartCount", 0)))
        return self._last_state

    def _report_exit(self, state: dict[str, Any]) -> None:
        finished = str(state.get("FinishedAt", ""))
        running = state.get("Running") and not state.get("Restarting")
        if running or not _has_run(state) or finished == self._reported_exit:
            return
        self._reported_exit = finished
        self._record("target_exited", exit_code=state.get("ExitCode"))

    def _report_policy_restarts(self, count: int) -> None:
        # A restart by the policy shows only as a higher RestartCount, because
        # the engine resets the exit status once the container runs again. A
        # lower count means the harness started the container since the last check.
        if count > self._engine_restart_count:
            self._policy_restarts += count - self._engine_restart_count
            self._record(
                "target_restarted", container=self.container_name, by="restart policy"
            )
        self._engine_restart_count = count

    def _thaw(self) -> None:
        # A frozen container handles no signal, so SIGTERM would always run
        # into the stop timeout.
        if self.paused:
            self.unpause()

    def _require_container(self, action: str) -> Container:
        if self._container is None:
            raise TargetError(
                f"cannot {action} container {self.container_name}: it was not "
                "started yet or was closed",
                target=self.kind,
            )
        return self._container

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.logs()
        except TargetError as err:
            return f"(logs unavailable: {err})"
        return "\n".join(text.splitlines()[-lines:])

    @contextmanager
    def _engine_errors(self, action: str) -> Iterator[None]:
        """Turn docker SDK errors into :class:`TargetError` naming the container."""
        name = self.container_name
        try:
            yield
        except NotFound as err:
            raise TargetError(
                f"cannot {action} container {name}: it no longer exists, so "
                "something outside the harness removed it; start a new target",
                target=self.kind,
            ) from err
        except APIError as err:
            raise TargetError(
                f"cannot {action} container {name}: the engine returned "
                f"{err.status_code} {err.explanation}",
                target=self.kind,
            ) from err
        except (DockerException, requests.RequestException) as err:
            raise TargetError(
                f"cannot {action} container {name}: the Docker engine did not "
                f"answer ({err}); check that the daemon still runs",
                target=self.kind,
            ) from err


def _container_user() -> str | None:
    """Return the host's uid:gid for a non-root harness, else the image's user."""
    # NOTE: only the root case has run against a real engine; the non-root
    # case relies on the engine accepting a uid that has no passwd entry.
    if os.geteuid() == 0:
        return None
    return f"{os.getuid()}:{os.getgid()}"


def _share_with_image_user(model_dir: Path) -> None:
    """Let the image's user list the model directory; warn of files it cannot read.

    File modes are left as they are, because a fault may have set them on purpose.
    """
    mode = model_dir.stat().st_mode
    model_dir.chmod(stat.S_IMODE(mode) | 0o755)
    for path in sorted(model_dir.iterdir()):
        if path.is_file() and not path.stat().st_mode & stat.S_IROTH:
            logger.warning(
                "%s is not readable by the container's user (uid %d); make it "
                "world-readable unless a fault made it unreadable on purpose",
                path,
                IMAGE_UID,
            )


def _health_status(state: dict[str, Any]) -> str | None:
    status = (state.get("Health") or {}).get("Status")
    return str(status) if status else None


def _has_run(state: dict[str, Any]) -> bool:
    # The engine reports the zero time for a container that never started.
    return not str(state.get("StartedAt", "")).startswith("0001-")


def _name_part(run_id: str) -> str:
    """Return ``run_id`` with the characters container names reject replaced."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id).strip("_.-") or "run"
