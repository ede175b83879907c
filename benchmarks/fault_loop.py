"""A loop of faults on a live service's model files, run in a process of its own.

Each step damages the primary of one model, waits until the service has
attempted to load the damaged file, then publishes the other valid version with
the service's publisher and waits until ``/health`` reports it. The loop runs
in its own process so that its CPU work (hashing, unpickling in the publisher)
does not hold the GIL of the process that measures request latency.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import cycle
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import requests

from harness import faults
from harness.errors import HarnessError
from harness.faults.torn_write import TornWrite, load_attempts
from harness.models import KnownModel
from target_service.publish import PublishError, publish

logger = logging.getLogger(__name__)

HealthPredicate = Callable[[dict[str, Any]], bool]

# The steps, in order; each ends with a valid publish of the other version.
STEPS = ("torn_write", "flip_bits", "truncate", "signed_flip")

# Seconds a step waits for the service to attempt a load of the damaged file.
ATTEMPT_TIMEOUT = 2.0

# Seconds a step waits for /health to report the published version.
RELOAD_TIMEOUT = 15.0

# Seconds between two looks at /health while waiting.
HEALTH_POLL = 0.02

FLIPPED_BITS = 8


@dataclass(frozen=True)
class FaultLoopConfig:
    """Settings of the fault loop; every field pickles, for a spawned process."""

    url: str
    model_dir: Path
    key: bytes
    model: str
    versions: dict[str, KnownModel]
    canary_inputs: list[list[float]]
    seed: int
    record_path: Path


def run_fault_loop(config: FaultLoopConfig, stop: EventType) -> None:
    """Apply the steps in turn until ``stop`` is set.

    Every action is appended to ``config.record_path`` as a JSON line with
    ``kind``, ``t_start`` and ``t_end`` on the monotonic clock, which all
    processes of the machine share.
    """
    loop = _FaultLoop(config)
    loop.write("started", time.monotonic())
    try:
        for step in cycle(STEPS):
            if stop.is_set():
                break
            started = time.monotonic()
            try:
                loop.step(step)
            except (HarnessError, PublishError, OSError) as err:
                # One failed step should not end the load on the service; the
                # record shows it, and the next step starts from the disk state.
                logger.error("fault loop step %s failed: %s", step, err)
                loop.write("error", started, step=step, message=str(err))
    except KeyboardInterrupt:
        # Ctrl-C reaches this process too; the parent cleans up.
        pass
    finally:
        loop.close()


class _FaultLoop:
    def __init__(self, config: FaultLoopConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.path = config.model_dir / f"{config.model}.pkl"
        self.session = requests.Session()
        self.session.trust_env = False
        self.record = open(config.record_path, "a", encoding="utf-8")
        self.served = self._served_version() or "v1"

    def step(self, kind: str) -> None:
        # After a failed step the disk may hold either version. /health reports
        # the served one, unless it is a damaged file that passed validation.
        self.served = self._served_version() or self.served
        other = "v2" if self.served == "v1" else "v1"
        before = self._attempts()
        started = time.monotonic()
        if kind == "torn_write":
            self._torn_write(other, before)
        elif kind == "flip_bits":
            faults.flip_bits(self.path, FLIPPED_BITS, self.rng)
        elif kind == "truncate":
            size = self.path.stat().st_size
            faults.truncate(self.path, self.rng.randrange(max(size, 1)))
        else:
            # A damaged file with a signed manifest passes the hash check, so the
            # service validates it in a child process.
            faults.flip_bits(self.path, 1, self.rng)
            faults.sign_damaged(
                self.path,
                self.config.versions[self.served],
                key=self.config.key,
                canary_inputs=self.config.canary_inputs,
            )
        attempted = self._wait(
            lambda body: _attempts(body, self.config.model) > before, ATTEMPT_TIMEOUT
        )
        self.write(kind, started, attempted=attempted is not None)

        started = time.monotonic()
        known = self.config.versions[other]
        assert known.path is not None
        publish(
            self.config.model_dir,
            self.config.model,
            known.path,
            key=self.config.key,
            canary_inputs=self.config.canary_inputs,
        )
        published = time.monotonic()
        healthy = self._wait(self._serves(known), RELOAD_TIMEOUT)
        self.write(
            "publish",
            started,
            version=other,
            published_at=published,
            healthy=healthy is not None,
        )
        self.served = other

    def _torn_write(self, version: str, before: int) -> None:
        known = self.config.versions[version]
        assert known.path is not None
        data = known.path.read_bytes()
        write = TornWrite(self.path, data, split=len(data) // 2)
        write.begin()
        try:
            write.hold(lambda: self._attempts() > before, ATTEMPT_TIMEOUT, HEALTH_POLL)
        finally:
            write.finish()

    def _serves(self, known: KnownModel) -> HealthPredicate:
        def predicate(body: dict[str, Any]) -> bool:
            state = body.get("models", {}).get(self.config.model, {})
            return body.get("status") == "healthy" and state.get("version") == (
                known.sha256
            )

        return predicate

    def _health(self) -> dict[str, Any] | None:
        try:
            response = self.session.get(f"{self.config.url}/health", timeout=2.0)
            return dict(response.json())
        except (requests.RequestException, ValueError, TypeError):
            return None

    def _attempts(self) -> int:
        return _attempts(self._health(), self.config.model)

    def _wait(
        self, predicate: HealthPredicate, timeout: float
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self._health()
            if body is not None and predicate(body):
                return body
            time.sleep(HEALTH_POLL)
        return None

    def _served_version(self) -> str | None:
        body = self._health()
        if body is None:
            return None
        sha256 = body.get("models", {}).get(self.config.model, {}).get("version")
        for version, known in self.config.versions.items():
            if known.sha256 == sha256:
                return version
        return None

    def write(self, kind: str, started: float, **detail: Any) -> None:
        entry = {"kind": kind, "t_start": started, "t_end": time.monotonic(), **detail}
        self.record.write(json.dumps(entry) + "\n")
        self.record.flush()

    def close(self) -> None:
        self.record.close()
        self.session.close()


def _attempts(body: dict[str, Any] | None, model: str) -> int:
    return load_attempts(body, model) or 0


def read_record(path: Path) -> list[dict[str, Any]]:
    """Return the actions a fault loop recorded, oldest first."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    # A loop killed mid-write leaves a partial last line.
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries
