"""Run-wide settings shared by every scenario of one ``model-chaos run``."""

from __future__ import annotations

import math
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from harness.checks import Bounds
from harness.errors import UsageError
from harness.models import ModelSet, builtin_model_set, user_model_set
from harness.scenario import ScenarioSettings, TargetFactory
from harness.targets.base import Target, TargetConfig
from harness.timeline import Timeline

# Parametrised names keep their case id but lose the repeat index.
_REPEAT_ID = re.compile(r"(^|-)repeat\d+(?=-|$)")


def make_run_id() -> str:
    """Return a run id that sorts by time and does not collide within a second."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(2)}"


def scenario_name(item: pytest.Item) -> str:
    """Return the scenario's name: its module without ``test_``, plus case ids.

    ``scenarios/test_truncated_primary.py::test_truncated_primary[middle]`` is
    ``truncated_primary[middle]``; the repeat index of ``--repeat`` is dropped.
    """
    module = Path(str(item.path)).stem.removeprefix("test_")
    params = ""
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        case_id = _REPEAT_ID.sub("", callspec.id).strip("-")
        params = f"[{case_id}]" if case_id else ""
    return module + params


def cache_dir() -> Path:
    """Return where trained reference models are cached between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "model-chaos"


def harness_versions() -> dict[str, str]:
    versions = {}
    for name in ("model-chaos", "scikit-learn", "numpy", "joblib", "pytest"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def check_seconds(option: str, value: float | None) -> None:
    """Raise UsageError unless ``value`` is None or a finite number of seconds > 0."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UsageError(f"{option} {value}: pass a number of seconds above 0")


def selection_options(options: Any) -> dict[str, str]:
    """Return the options that select what a run tests, as ``model-chaos`` takes them.

    Replay and shrink commands repeat them, so that they run the same target,
    loader, model files and bounds; bounds at their defaults are left out.
    """
    selected = {"--target": options.target, "--loader": options.loader}
    if options.models:
        selected["--models"] = str(options.models)
    if options.recover_within != Bounds.recover_within:
        selected["--recover-within"] = f"{options.recover_within:g}"
    if options.request_latency != Bounds.request_latency:
        selected["--request-latency"] = f"{options.request_latency:g}"
    return selected


@dataclass
class RunContext:
    """The options of a run, turned into what scenarios need."""

    run_id: str
    seed: int
    loader: str
    target: str
    report_dir: Path
    models_dir: Path | None
    settings: ScenarioSettings

    @classmethod
    def from_options(cls, options: Any) -> RunContext:
        models_dir = Path(options.models) if options.models else None
        if models_dir is not None and not models_dir.is_dir():
            raise UsageError(
                f"--models {models_dir}: not a directory; pass a directory that "
                "holds global_model.pkl, champion_model.pkl or both"
            )
        bounds = Bounds(
            recover_within=options.recover_within,
            request_latency=options.request_latency,
        )
        return cls(
            run_id=options.run_id,
            seed=options.seed,
            loader=options.loader,
            target=options.target,
            report_dir=Path(options.report_dir),
            models_dir=models_dir,
            settings=ScenarioSettings(loader=options.loader, bounds=bounds),
        )

    def model_set(self) -> ModelSet:
        return load_model_set(self.models_dir)

    def artifacts_dir(self, name: str, repeat: int) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
        return self.report_dir / self.run_id / "files" / f"{safe}-r{repeat}"

    def target_factory(self) -> TargetFactory:
        if self.target == "docker":
            from harness.targets.docker import DockerTarget

            run_id = self.run_id

            def docker(
                config: TargetConfig, timeline: Timeline, **options: Any
            ) -> Target:
                return DockerTarget(config, timeline, run_id=run_id, **options)

            return docker

        from harness.targets.process import ProcessTarget

        return ProcessTarget


@cache
def load_model_set(models_dir: Path | None) -> ModelSet:
    if models_dir is None:
        return builtin_model_set(cache_dir() / "models")
    return user_model_set(models_dir, cache_dir() / "user-models")
