"""The target interface: start, stop, kill, restart, pause and inspect a service."""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from harness.timeline import Timeline

logger = logging.getLogger(__name__)

LOADERS = ("naive", "basic", "hardened")


@dataclass
class TargetConfig:
    """How to run the reference service: loader, files and timing knobs.

    ``model_dir`` and ``hmac_key_file`` are host paths; a container target mounts
    them. ``poll_interval`` and ``validate_timeout`` are seconds and are passed to
    the service; ``startup_timeout`` bounds the wait for ``/health``, and
    ``None`` leaves it to the kind of target.
    """

    loader: str
    model_dir: Path
    log_dir: Path
    hmac_key_file: Path | None = None
    model_names: tuple[str, ...] = ("global_model", "champion_model")
    poll_interval: float = 0.2
    validate_timeout: float = 5.0
    startup_timeout: float | None = None
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    def service_args(self, model_dir: str, key_file: str | None) -> list[str]:
        """Return the service's arguments, with paths as the service reads them."""
        args = [
            "--model-dir",
            model_dir,
            "--loader",
            self.loader,
            "--models",
            ",".join(self.model_names),
            "--poll-interval",
            str(self.poll_interval),
            "--validate-timeout",
            str(self.validate_timeout),
        ]
        if key_file is not None:
            args += ["--hmac-key-file", key_file]
        return args + list(self.extra_args)


class Target(ABC):
    """A live reference service the harness can damage and observe.

    ``url`` stays the same across restarts so that the probe keeps working.
    Implementations record ``target_started``, ``target_ready``, ``target_exited``
    and ``target_not_ready`` events on the timeline when one is attached.
    """

    kind: str = "abstract"
    # Seconds to wait for /health when the config sets no start-up timeout.
    default_startup_timeout: float = 20.0

    def __init__(self, config: TargetConfig, timeline: Timeline | None = None) -> None:
        self.config = config
        self.timeline = timeline
        self.url = ""
        self._http = requests.Session()

    @property
    def startup_timeout(self) -> float:
        """Seconds the target has to respond on ``/health`` after a (re)start."""
        if self.config.startup_timeout is not None:
            return self.config.startup_timeout
        return self.default_startup_timeout

    @abstractmethod
    def start(self) -> None:
        """Start the service and return once ``/health`` responds.

        Raises :class:`~harness.errors.TargetNotReady` when it does not answer
        within ``startup_timeout`` seconds or exits first.
        """

    @abstractmethod
    def stop(self, timeout: float = 10.0) -> None:
        """Stop the service gracefully (SIGTERM, then SIGKILL after ``timeout``)."""

    @abstractmethod
    def kill(self) -> None:
        """Kill the service with SIGKILL and wait until it is gone."""

    @abstractmethod
    def pause(self) -> None:
        """Freeze every process of the service (SIGSTOP or ``docker pause``)."""

    @abstractmethod
    def unpause(self) -> None:
        """Resume a paused service."""

    @property
    @abstractmethod
    def exit_code(self) -> int | None:
        """Return the exit status of the last run, or ``None`` while it runs.

        A negative value is the signal that ended the process.
        """

    @property
    @abstractmethod
    def running(self) -> bool:
        """Return whether the service is running right now."""

    @property
    @abstractmethod
    def restart_count(self) -> int:
        """Return how often the service was restarted, by the harness or a policy."""

    @abstractmethod
    def logs(self) -> str:
        """Return everything the service wrote to stdout and stderr so far."""

    @abstractmethod
    def close(self) -> None:
        """Remove every process, container and file the target created; idempotent."""

    def restart(self) -> None:
        """Stop the service and start it again on the same URL."""
        self.stop()
        self.start()

    def path_in_target(self, host_path: Path) -> str:
        """Return the service's path for a host path inside the model directory."""
        return str(host_path)

    def health_responds(self) -> bool:
        """Return whether ``/health`` returns 200 within a second."""
        try:
            response = self._http.get(f"{self.url}/health", timeout=1.0)
        except requests.RequestException:
            return False
        return response.status_code == 200

    def health(self, timeout: float = 2.0) -> dict[str, Any] | None:
        """Return the parsed ``/health`` body, or ``None`` when it does not respond."""
        try:
            response = self._http.get(f"{self.url}/health", timeout=timeout)
            return dict(response.json())
        except (requests.RequestException, json.JSONDecodeError, TypeError):
            return None

    def _record(self, kind: str, **detail: Any) -> None:
        if self.timeline is not None:
            self.timeline.add_event(kind, target=self.kind, **detail)
        logger.info("target %s: %s %s", self.kind, kind, detail or "")

    def __enter__(self) -> Target:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
