"""A live reference service to measure: hardened loader, HMAC key, built-in models."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from benchmarks.processes import tmpdir_env
from harness.models import ModelSet
from harness.targets.base import TargetConfig
from harness.targets.process import ProcessTarget

# Seconds the service may take to respond to /health after it starts. Start-up
# takes a few seconds on 2 cores, and more when other programs load the CPU.
STARTUP_TIMEOUT = 60.0


class LiveService:
    """``python -m target_service`` on loopback, in a scratch directory of its own.

    The service runs the hardened loader with an HMAC key file outside the model
    directory and serves ``v1`` of every built-in model, with its backup. Its
    ``TMPDIR`` is inside the scratch directory when the path is short enough
    (see :func:`~benchmarks.processes.tmpdir_env`), so that the fork server's
    files go with it even when the service has to be killed. :meth:`close`
    stops the service, kills what is left of its process group and removes the
    directory.
    """

    def __init__(self, model_set: ModelSet, scratch: Path) -> None:
        self.model_set = model_set
        self.work_dir = Path(tempfile.mkdtemp(prefix="service-", dir=scratch))
        self.model_dir = self.work_dir / "models"
        self.key_file = self.work_dir / "hmac.key"
        self.key = secrets.token_hex(32).encode()
        self.startup_seconds = 0.0

        self.model_dir.mkdir()
        (self.work_dir / "tmp").mkdir()
        self.key_file.write_bytes(self.key)
        model_set.populate(self.model_dir, key=self.key)
        config = TargetConfig(
            loader="hardened",
            model_dir=self.model_dir,
            log_dir=self.work_dir / "logs",
            hmac_key_file=self.key_file,
            model_names=model_set.names,
            startup_timeout=STARTUP_TIMEOUT,
            env=tmpdir_env(self.work_dir / "tmp"),
        )
        self.target = ProcessTarget(config)
        self.url = self.target.url
        self.session = requests.Session()
        # Requests go straight to loopback, whatever proxy the environment sets.
        self.session.trust_env = False

    def start(self) -> LiveService:
        started = time.perf_counter()
        self.target.start()
        self.startup_seconds = time.perf_counter() - started
        return self

    @property
    def pgid(self) -> int:
        """The service's process group, which its fork server and children share."""
        # ProcessTarget has no public pid; its process leads the group.
        pid = self.target._pid()
        if pid is None:
            raise RuntimeError("the service has not been started")
        return pid

    def health(self) -> dict[str, Any] | None:
        try:
            response = self.session.get(f"{self.url}/health", timeout=2.0)
            return dict(response.json())
        except (requests.RequestException, ValueError, TypeError):
            return None

    def wait_for_health(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float,
        interval: float = 0.01,
    ) -> dict[str, Any] | None:
        """Poll ``/health`` until ``predicate`` holds; return that body or ``None``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.health()
            if body is not None and predicate(body):
                return body
            time.sleep(interval)
        return None

    def served_version(self, model: str) -> str | None:
        """Return which known version (``v1``, ``v2``...) serves ``model`` now."""
        body = self.health()
        if body is None:
            return None
        sha256 = body["models"][model]["version"]
        known = self.model_set.by_sha256(sha256) if sha256 else None
        return known.version if known is not None else None

    def logs(self) -> str:
        return self.target.logs()

    def close(self) -> None:
        """Stop the service, kill what is left of its group, remove its files."""
        try:
            self.target.stop(timeout=10.0)
        finally:
            self.target.close()
            self.session.close()
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> LiveService:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def healthy_with(model: str, sha256: str) -> Callable[[dict[str, Any]], bool]:
    """Return a ``/health`` predicate: healthy, with ``model`` at ``sha256``."""

    def predicate(body: dict[str, Any]) -> bool:
        state = body.get("models", {}).get(model, {})
        return body.get("status") == "healthy" and state.get("version") == sha256

    return predicate


def other_version(version: str | None) -> str:
    """Return the version to publish next: ``v2`` after ``v1``, else ``v1``."""
    return "v2" if version == "v1" else "v1"
