"""The context one scenario runs in: scratch files, the target, the probe, faults.

A scenario module receives a :class:`Scenario` from the ``chaos`` fixture. It
prepares the scratch model directory, starts the target, injects faults while
the probe records the timeline, and ends with :meth:`Scenario.verify`, which
runs the named checks and fails the test when one of them does not hold.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import pytest

from harness.checks import Bounds, CheckContext, CheckResult, Recovery, run_checks
from harness.cleanup import track, untrack
from harness.errors import HarnessError, TargetNotReady
from harness.faults.torn_write import TornWrite, load_attempts
from harness.models import ModelSet
from harness.probe import Probe
from harness.targets.base import Target, TargetConfig
from harness.timeline import FaultEvent, Timeline, now
from target_service.manifest import sha256_bytes, sign

if TYPE_CHECKING:
    from harness.sweep import SweepResult

logger = logging.getLogger(__name__)

TargetFactory = Callable[..., Target]

# Seconds a torn write waits for a load attempt before it gives up; a loader
# that polls at all looks within a few of its poll intervals.
HOLD_TIMEOUT = 5.0

# Seconds to wait for the error of an attempt the target has counted.
ERROR_WAIT = 1.0

# Poll intervals a torn write is held for when the target exposes no load
# counter to wait on.
NO_COUNTER_POLLS = 5


class ChecksFailed(AssertionError):
    """One or more checks of a scenario did not hold."""

    def __init__(self, failed: list[CheckResult]) -> None:
        lines = [f"{result.name}: {result.detail}" for result in failed]
        super().__init__("checks failed:\n  " + "\n  ".join(lines))
        self.failed = failed


@dataclass
class ScenarioSettings:
    """Knobs of a run that every scenario shares; times are seconds."""

    loader: str = "hardened"
    bounds: Bounds = field(default_factory=Bounds)
    probe_interval: float = 0.05
    poll_interval: float = 0.2
    validate_timeout: float = 3.0
    # None leaves the start-up timeout to the kind of target.
    startup_timeout: float | None = None


class Scenario:
    """Scratch files, target, probe and verdicts of one scenario run."""

    def __init__(
        self,
        name: str,
        *,
        model_set: ModelSet,
        settings: ScenarioSettings,
        target_factory: TargetFactory,
        seed: int,
        artifacts_dir: Path | None,
        repeat: int = 0,
    ) -> None:
        self.name = name
        self.repeat = repeat
        self.model_set = model_set
        self.settings = settings
        self.seed = seed
        self.rng = random.Random(f"{seed}/{name}")
        # Where damaged files are saved as evidence; None saves none, for the
        # many short runs of shrinking a fault sequence.
        self.artifacts_dir = artifacts_dir
        self.timeline = Timeline()
        self.results: list[CheckResult] = []
        self.recoveries: list[Recovery] = []
        self.foreign_sha256: set[str] = set()
        self.marker: Path | None = None
        self.startup_error: str | None = None
        self.metrics: dict[str, Any] = {}
        self.saved_files: list[str] = []
        # The model-chaos options that select this run's target, loader, model
        # files and bounds, for commands that replay it; set by the plugin.
        self.selection: dict[str, str] = {}
        # A scenario that runs a damage sweep stores its result here for the
        # dangerous_files_rejected check.
        self.sweep_result: SweepResult | None = None

        self.work_dir = Path(tempfile.mkdtemp(prefix="model-chaos-"))
        self._tracked = track("directory", path=str(self.work_dir))
        self.model_dir = self.work_dir / "models"
        self.model_dir.mkdir()
        # A text key, so that no byte of it looks like the line ending the
        # service strips from key files.
        self.key = secrets.token_hex(32).encode()
        self.key_file = self.work_dir / "hmac.key"
        self.key_file.write_bytes(self.key)
        # A container's non-root user must be able to read what the host writes,
        # and to create the marker file of a malicious pickle: a marker that
        # could not be written would hide code that did run.
        self.work_dir.chmod(0o755)
        self.model_dir.chmod(0o777)
        self.key_file.chmod(0o644)

        config = TargetConfig(
            loader=settings.loader,
            model_dir=self.model_dir,
            log_dir=self.work_dir / "logs",
            hmac_key_file=self.key_file,
            model_names=model_set.names,
            poll_interval=settings.poll_interval,
            validate_timeout=settings.validate_timeout,
            startup_timeout=settings.startup_timeout,
        )
        self._config = config
        self._target_factory = target_factory
        self.target = target_factory(config, self.timeline)
        self.probe: Probe | None = None

    # Files.

    def file(self, model: str = "global_model", *, backup: bool = False) -> Path:
        """Return the path of a model's primary (or backup) file in the scratch dir."""
        suffix = ".pkl.backup" if backup else ".pkl"
        return self.model_dir / f"{model}{suffix}"

    def populate(self, *, backup: bool = True) -> None:
        """Install version ``v1`` of every model as primary and ``backup`` as backup."""
        self.model_set.populate(self.model_dir, key=self.key, backup=backup)
        self.timeline.add_event("populated", backup=backup)

    def install(self, model: str, version: str, *, backup: bool = False) -> Path:
        """Install one known version of a model, with its signed manifest."""
        path = self.model_set.install(
            self.model_dir, model, version, key=self.key, as_backup=backup
        )
        known = self.model_set.get(model, version)
        if known.foreign and known.sha256:
            self.foreign_sha256.add(known.sha256)
        return path

    def install_foreign(self, model: str, version: str) -> FaultEvent:
        """Install a version pickled by another scikit-learn as the primary."""
        t_start = now()
        path = self.install(model, version)
        known = self.model_set.get(model, version)
        return FaultEvent(
            kind="version_mismatch",
            t_start=t_start,
            t_end=now(),
            path=str(path),
            params={"version": version, "sklearn_version": known.sklearn_version},
            note=f"{model} replaced by a file pickled by scikit-learn "
            f"{known.sklearn_version}, with a signed manifest recording it",
        )

    def treat_installed_as_foreign(self) -> None:
        """Count every installed file as pickled by another scikit-learn.

        For a target that runs other library versions than the harness, the
        model set's own files are the foreign ones.
        """
        for path in self.model_dir.glob("*.pkl*"):
            if path.is_file() and not path.name.endswith(".json"):
                self.foreign_sha256.add(sha256_bytes(path.read_bytes()))

    def marker_path(self) -> Marker:
        """Return where a malicious pickle would leave its marker file."""
        host = self.model_dir / ".code-ran"
        self.marker = host
        return Marker(host=host, in_target=self.target.path_in_target(host))

    # The target.

    def require_target(self, kind: str, reason: str) -> None:
        """Skip this scenario unless the run's target is of ``kind``."""
        if self.target.kind != kind:
            pytest.skip(f"needs --target {kind}: {reason}")

    def use_target_options(self, **options: Any) -> None:
        """Create the target again, before it starts, with target-specific options.

        The Docker target takes, for example, ``restart_policy`` and ``pins``
        (the library versions of the image it runs).
        """
        if self.target.running:
            raise HarnessError("target options must be set before the target starts")
        self.target.close()
        self.target = self._target_factory(self._config, self.timeline, **options)

    def start(self) -> bool:
        """Start the target and the probe; return whether the target became ready.

        A target that never becomes ready is a finding about the target, not an
        error of the scenario: it is recorded and the ``stayed_up`` check fails.
        """
        try:
            self.target.start()
        except TargetNotReady as err:
            self.startup_error = str(err)
            logger.warning("%s: the target did not become ready: %s", self.name, err)
            return False

        self._record_target_versions()
        self.probe = Probe(
            self.target.url,
            self.timeline,
            self.model_set,
            interval=self.settings.probe_interval,
            timeout=self.settings.bounds.request_latency * 2.5,
        )
        self.probe.start()
        return True

    def health(self) -> dict[str, Any] | None:
        return self.target.health()

    def _record_target_versions(self) -> None:
        body = self.target.health() or {}
        versions = {"target": self.target.kind, "loader": str(body.get("loader"))}
        if "sklearn_version" in body:
            versions["scikit-learn"] = str(body["sklearn_version"])
        self.metrics["target_versions"] = versions

    def wait_for_health(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any] | None:
        """Poll ``/health`` until ``predicate`` holds; return the body, or ``None``."""
        deadline = now() + timeout
        while now() < deadline:
            body = self.target.health()
            if body is not None and predicate(body):
                return body
            time.sleep(0.02)
        return None

    def observe(self, seconds: float) -> None:
        """Let the probe record the target for ``seconds`` without touching it."""
        time.sleep(seconds)

    # Faults.

    def inject(self, event: FaultEvent) -> FaultEvent:
        """Record a fault that was just applied, and save the file it left behind."""
        self.timeline.add_fault(event)
        path = event.path
        keep = self.artifacts_dir is not None and not event.downtime
        if keep and path and os.path.isfile(path):
            event.saved_files.append(self._save(Path(path), event.kind))
        logger.info("%s: fault %s: %s", self.name, event.kind, event.note)
        return event

    def publish(self, model: str, version: str, *, promise: bool = True) -> Recovery:
        """Publish a valid known version with the service's own publisher.

        Every published file is a promise the target must keep: the ``recovered``
        check then expects it to report ``healthy`` with that version in time.
        With ``promise=False`` the file is only written, for a publish that
        later faults may undo before the target had to serve it.
        """
        from target_service.publish import publish

        known = self.model_set.get(model, version)
        assert known.path is not None and known.sha256 is not None
        t = now()
        publish(
            self.model_dir,
            model,
            known.path,
            key=self.key,
            canary_inputs=self.model_set.canary_inputs[model],
        )
        recovery = Recovery(model=model, sha256=known.sha256, published_at=t)
        if promise:
            self.recoveries.append(recovery)
        self.timeline.add_event("published", model=model, version=version)
        return recovery

    def publish_manifest(self, model: str, version: str) -> Recovery:
        """Write the signed manifest of a known version whose file is already there.

        This is the last step of a training job that wrote the model file
        itself; from here on the target must serve that version.
        """
        from target_service.manifest import write_manifest
        from target_service.publish import build_manifest

        known = self.model_set.get(model, version)
        assert known.path is not None and known.sha256 is not None
        path = self.file(model)
        manifest = build_manifest(
            model,
            path.read_bytes(),
            joblib.load(known.path),
            self.model_set.canary_inputs[model],
        )
        t = now()
        write_manifest(path, sign(manifest, self.key))
        recovery = Recovery(model=model, sha256=known.sha256, published_at=t)
        self.recoveries.append(recovery)
        self.timeline.add_event("published", model=model, version=version)
        return recovery

    def wait_recovered(self) -> bool:
        """Wait until the target serves every published version, or the bound passes.

        The ``recovered`` check judges the outcome; this only avoids waiting
        longer than needed.
        """

        def served(body: dict[str, Any]) -> bool:
            if body.get("status") != "healthy":
                return False
            models = body.get("models", {})
            return all(
                models.get(r.model, {}).get("version") == r.sha256
                for r in self.recoveries
            )

        healed = self.wait_for_health(served, self.settings.bounds.recover_within)
        self.observe(0.3)
        return healed is not None

    @contextmanager
    def torn_write(self, model: str, version: str) -> Iterator[TornWriteControl]:
        """Rewrite a model's primary in place with a known version, half at a time.

        The first half is written on entry; the rest on exit, whatever happened
        in between, and the fault is then recorded with what the target did
        while the file was half-written.
        """
        known = self.model_set.get(model, version)
        assert known.path is not None
        data = known.path.read_bytes()
        path = self.file(model)
        control = TornWriteControl(self, model, before=_attempts(self.health(), model))
        write = TornWrite(path, data, split=len(data) // 2)
        write.begin()
        try:
            yield control
        finally:
            event = write.finish()
            event.params.update(control.evidence)
            self.inject(event)

    def _save(self, path: Path, kind: str) -> str:
        assert self.artifacts_dir is not None
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        dest = self.artifacts_dir / f"{len(self.saved_files):02d}-{kind}-{path.name}"
        shutil.copyfile(path, dest)
        self.saved_files.append(str(dest))
        return str(dest)

    # Verdicts.

    def verify(self, *checks: str) -> list[CheckResult]:
        """Stop the probe, run the named checks, and fail when any did not hold."""
        self._stop_probe()
        if self.startup_error is not None:
            self.timeline.add_event("startup_error", message=self.startup_error[:2000])

        first_fault = min((f.t_start for f in self.timeline.faults), default=None)
        context = CheckContext(
            timeline=self.timeline,
            model_set=self.model_set,
            bounds=self.settings.bounds,
            recoveries=self.recoveries,
            marker=self.marker,
            foreign_sha256=self.foreign_sha256,
            exit_code=self.target.exit_code,
            logs=self.target.logs(),
            fault_started_at=first_fault,
            sweep=self.sweep_result,
        )
        self.results = run_checks(list(checks), context)
        self.metrics["restart_count"] = self.target.restart_count

        failed = [result for result in self.results if not result.passed]
        if failed:
            raise ChecksFailed(failed)
        return self.results

    def _stop_probe(self) -> None:
        if self.probe is None:
            return
        self.probe.stop()
        self.metrics["samples"] = len(self.timeline.samples)
        self.metrics["samples_per_second"] = round(self.probe.samples_per_second, 1)

    def close(self) -> None:
        """Stop everything this scenario started and remove its scratch files."""
        try:
            self._stop_probe()
        finally:
            self.target.close()
            _remove_tree(self.work_dir)
            untrack(self._tracked)


@dataclass(frozen=True)
class Marker:
    """The marker file of a malicious pickle, as the host and the target see it."""

    host: Path
    in_target: str


class TornWriteControl:
    """Lets a scenario hold a torn write until the target has tried to load it."""

    def __init__(self, scenario: Scenario, model: str, *, before: int) -> None:
        self.scenario = scenario
        self.model = model
        self.before = before
        self.evidence: dict[str, Any] = {"load_attempt_seen": False}

    def hold_until_load_attempt(self, *, after_restart: bool = False) -> bool:
        """Hold the half-written file until the target attempted a load.

        Without a restart the target's ``load_attempts`` must go above what it
        was before the write began; after a restart the counter starts again,
        so any attempt of the new process counts. A loader that never reloads
        makes no attempt, and the hold ends after ``HOLD_TIMEOUT`` seconds.
        """
        threshold = 1 if after_restart else self.before + 1
        if self._counter_missing():
            return self._hold_without_counter()

        body = self.scenario.wait_for_health(
            lambda b: _attempts(b, self.model) >= threshold, HOLD_TIMEOUT
        )
        if body is None:
            self.evidence.update(
                load_attempt_seen=False,
                note=f"no load attempt within {HOLD_TIMEOUT:.0f} s: the target "
                "did not look at the half-written file",
            )
            return False

        # The service counts an attempt before it checks the file, so the error
        # of that attempt may appear a moment after the counter went up.
        settled = self.scenario.wait_for_health(
            lambda b: bool(b["models"][self.model].get("last_error")), ERROR_WAIT
        )
        state = (settled or body)["models"][self.model]
        self.evidence.update(
            load_attempt_seen=True,
            load_attempts=state.get("load_attempts"),
            service_error=state.get("last_error"),
            tier_while_torn=state.get("tier"),
        )
        return True

    def _counter_missing(self) -> bool:
        body = self.scenario.wait_for_health(lambda b: True, HOLD_TIMEOUT)
        return body is not None and load_attempts(body, self.model) is None

    def _hold_without_counter(self) -> bool:
        # Without a counter nothing proves that the target looked at the file;
        # holding for several of its poll intervals makes a look very likely.
        seconds = NO_COUNTER_POLLS * self.scenario.settings.poll_interval
        time.sleep(seconds)
        self.evidence.update(
            load_attempt_seen=False,
            note=f"the target reports no load_attempts; held the half-written "
            f"file for {seconds:.1f} s ({NO_COUNTER_POLLS} poll intervals)",
        )
        return False


def _attempts(body: dict[str, Any] | None, model: str) -> int:
    return load_attempts(body, model) or 0


def _remove_tree(path: Path) -> None:
    def make_writable(func: Callable[..., Any], failed: str, _exc: Any) -> None:
        # Faults remove permissions on purpose; give them back so removal works
        # when the harness does not run as root.
        os.chmod(os.path.dirname(failed), stat.S_IRWXU)
        if os.path.lexists(failed) and not os.path.islink(failed):
            os.chmod(failed, stat.S_IRWXU)
        func(failed)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=make_writable)
    else:
        shutil.rmtree(path, onerror=make_writable)
