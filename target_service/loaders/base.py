"""Parts every loader shares: its slots, attempt counting and failure logging."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import sklearn

from target_service.config import ServiceConfig
from target_service.dummy import DummyModel
from target_service.failures import UPDATE_IN_PROGRESS, LoadFailure
from target_service.files import read_regular_file
from target_service.manifest import ManifestError, manifest_path, parse_manifest
from target_service.metrics import ServiceMetrics
from target_service.slots import ModelSlot, ServedModel, Tier

logger = logging.getLogger(__name__)

# Versions are sha256 hex digests; logs show this many characters of them.
_SHORT_VERSION = 12


class Loader(ABC):
    """Loads the configured models into slots and keeps them served.

    Every model starts on the dummy until :meth:`start` has loaded it.
    """

    name: ClassVar[str]

    def __init__(self, config: ServiceConfig, metrics: ServiceMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.slots = {
            model: ModelSlot(model, dummy_served_model()) for model in config.models
        }
        for model in config.models:
            metrics.set_tier(model, Tier.DUMMY)
        self._failures = _FailureLog()

    @property
    def integrity(self) -> str:
        """How files are checked before loading: ``hmac``, ``sha256`` or ``none``."""
        return "none"

    @abstractmethod
    def start(self) -> None:
        """Load every model once; returns when each one is served from some tier."""

    # Not abstract: a loader without background work has nothing to stop.
    def close(self) -> None:  # noqa: B027
        """Stop background work; the models in memory stay served."""

    def begin_attempt(
        self, model: str, path: Path, tier: Tier, *, repeated: bool = False
    ) -> None:
        """Count one load attempt of ``path`` before anything about it is checked.

        ``repeated`` marks another look at a file that is retried at every poll.
        Such an attempt is logged at debug level, so the log does not repeat itself.
        """
        self.slots[model].count_attempt()
        self.metrics.load_attempts.labels(model=model).inc()
        level = logging.DEBUG if repeated else logging.INFO
        logger.log(level, "%s: loading %s as %s", model, path, tier)

    def record_failure(self, model: str, path: Path, failure: LoadFailure) -> str:
        """Count and log a rejected file; return the text for ``last_error``."""
        self.metrics.load_failures.labels(model=model, reason=failure.reason).inc()
        self._failures.failed(model, path, failure)
        return f"{path.name}: {failure.message}"

    def serve(self, model: str, served: ServedModel, last_error: str | None) -> None:
        """Swap ``served`` in for ``model`` and log the load or reload."""
        previous = self.slots[model].swap(served, last_error)
        self.metrics.set_tier(model, served.tier)
        if served.source is not None:
            self._failures.succeeded(model, served.source)
        if served.model is None:
            logger.error(
                "%s: serving no model from %s, every prediction of it will fail",
                model,
                served.source,
            )
            return
        if served.tier is Tier.DUMMY:
            logger.warning(
                "%s: no loadable model file, serving the dummy model (%s)",
                model,
                last_error,
            )
            return
        action = "reloaded" if previous.tier is not Tier.DUMMY else "loaded"
        if served.tier is Tier.BACKUP:
            logger.warning(
                "%s: fell back to %s as backup (version %s) because %s",
                model,
                served.source,
                short_version(served.version),
                last_error or "the primary file was rejected",
            )
            return
        logger.info(
            "%s: %s %s as %s (version %s)",
            model,
            action,
            served.source,
            served.tier,
            short_version(served.version),
        )

    def demote(self, model: str, tier: Tier, reason: str) -> None:
        """Keep the model in memory but report it under ``tier`` from now on."""
        slot = self.slots[model]
        served = slot.served
        if served.tier is tier:
            return
        slot.set_tier(tier)
        self.metrics.set_tier(model, tier)
        logger.warning(
            "%s: keeping the model from %s (version %s) as %s because %s",
            model,
            served.source,
            short_version(served.version),
            tier,
            reason,
        )


def dummy_served_model(now: datetime | None = None) -> ServedModel:
    """Return the dummy model as a served model; it has no file and no version."""
    return ServedModel(
        model=DummyModel(),
        tier=Tier.DUMMY,
        version=None,
        source=None,
        sklearn_version=sklearn.__version__,
        loaded_at=now,
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


def short_version(version: str | None) -> str:
    return version[:_SHORT_VERSION] if version is not None else "none"


def recorded_sklearn_version(path: Path) -> str:
    """Return the scikit-learn version recorded for ``path``, else the running one.

    For reports only: the naive and basic loaders do not check manifests.
    """
    mpath = manifest_path(path)
    try:
        manifest = parse_manifest(read_regular_file(mpath), mpath)
    except (LoadFailure, ManifestError):
        return str(sklearn.__version__)
    return manifest.sklearn_version


@dataclass
class _LastFailure:
    reason: str
    repeats: int = 0


class _FailureLog:
    """Log a rejected file once per reason, then count repeats at debug level.

    A watcher polling a file that stays bad would otherwise write the same
    line at every poll.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, Path], _LastFailure] = {}

    def failed(self, model: str, path: Path, failure: LoadFailure) -> None:
        key = (model, path)
        last = self._last.get(key)
        if last is not None and last.reason == failure.reason:
            last.repeats += 1
            logger.debug(
                "%s: rejected %s again (%d repeats): %s",
                model,
                path,
                last.repeats,
                failure.message,
            )
            return
        self._report_repeats(model, path)
        self._last[key] = _LastFailure(failure.reason)
        # A file caught half-written is expected during a publish.
        level = (
            logging.WARNING if failure.reason == UPDATE_IN_PROGRESS else logging.ERROR
        )
        logger.log(level, "%s: rejected %s: %s", model, path, failure.message)

    def succeeded(self, model: str, path: Path) -> None:
        self._report_repeats(model, path)
        self._last.pop((model, path), None)

    def _report_repeats(self, model: str, path: Path) -> None:
        last = self._last.get((model, path))
        if last is not None and last.repeats > 0:
            logger.info(
                "%s: %s was rejected as %s %d more times",
                model,
                path,
                last.reason,
                last.repeats,
            )
