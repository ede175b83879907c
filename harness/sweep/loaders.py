"""The loaders of the reference service, each handling one damaged copy.

A case loader has three parts. ``load`` unpickles from a stream. It runs in
the sweep process on the undamaged file and goes on in each case process on
the damaged copy. ``admit`` runs in the case process before the rest of the
unpickling, and the hardened loader checks its manifest there. ``finish``
turns the loaded model, or the error, into a verdict.

- naive: ``joblib.load``; a failed load leaves no model, so every prediction
  fails;
- basic: ``joblib.load`` inside ``except Exception``, then a check that the
  object has ``predict``;
- hardened: the service's own admission path, on a copy that comes with a
  correctly signed manifest whose canary outputs are the undamaged model's
  (the HMAC, size and sha256 pass, so only validation can stop the copy).
"""

from __future__ import annotations

import json
import os
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import joblib

from harness.sweep.damage import Damage
from harness.sweep.processes import CaseChannel
from harness.sweep.verdict import Outcome, error_text, judge_predictions
from target_service.config import ServiceConfig
from target_service.failures import LoadFailure
from target_service.loaders.hardened import HardenedLoader
from target_service.manifest import (
    Canary,
    Manifest,
    manifest_path,
    sha256_bytes,
    sign,
)
from target_service.metrics import ServiceMetrics
from target_service.unpickle import load_model_bytes, load_model_stream
from target_service.validation import check_canary, check_tree_links


@dataclass
class CaseProcess:
    """The damaged copy one case process works on, and its pipe to the sweep.

    ``manifest`` is the manifest the hardened loader admitted the copy with.
    """

    damage: Damage
    data: bytes
    channel: CaseChannel
    manifest: Manifest | None = None


class CaseLoader(ABC):
    """One loader's way with a damaged copy, judged on ``canary``."""

    name: ClassVar[str]
    phases: ClassVar[tuple[str, ...]] = ("load", "predict")

    def __init__(self, canary: Canary) -> None:
        self.canary = canary

    def admit(self, case: CaseProcess) -> Outcome | None:
        """Check the copy before it is unpickled; return a verdict to stop there."""
        return None

    @abstractmethod
    def load(self, stream: BinaryIO) -> Any:
        """Unpickle a model from ``stream`` as this loader does."""

    @abstractmethod
    def finish(
        self, case: CaseProcess, model: Any, error: BaseException | None
    ) -> Outcome:
        """Return the verdict on a copy that loaded as ``model`` or raised ``error``."""

    def on_crash(self, phase: str, signal_name: str) -> Outcome:
        return Outcome(
            "crash",
            f"the process died with {signal_name} in phase {phase}",
            signal_name,
        )

    def on_timeout(self, phase: str, limit: str) -> Outcome:
        """Return the verdict on a process that ran past ``limit`` in ``phase``."""
        return Outcome("hang", f"phase {phase} did not end within {limit}")


class NaiveCase(CaseLoader):
    name = "naive"

    def load(self, stream: BinaryIO) -> Any:
        return joblib.load(stream)

    def finish(
        self, case: CaseProcess, model: Any, error: BaseException | None
    ) -> Outcome:
        if error is not None:
            if not isinstance(error, Exception):
                return _escaped(error)
            # The naive loader keeps None for a model that failed to load and
            # goes on serving it, so every prediction of that model fails.
            return Outcome(
                "predict_error",
                f"the load failed ({error_text(error)}), and the naive loader "
                "serves no model",
            )
        case.channel.phase("predict")
        return judge_predictions(model, self.canary)


class BasicCase(CaseLoader):
    name = "basic"

    def load(self, stream: BinaryIO) -> Any:
        return joblib.load(stream)

    def finish(
        self, case: CaseProcess, model: Any, error: BaseException | None
    ) -> Outcome:
        if error is not None:
            if not isinstance(error, Exception):
                return _escaped(error)
            return Outcome("rejected", error_text(error))
        if not hasattr(model, "predict"):
            return Outcome(
                "rejected",
                f"the file contains a {type(model).__name__}, which has no predict "
                "method",
            )
        case.channel.phase("predict")
        return judge_predictions(model, self.canary)


class HardenedCase(CaseLoader):
    """The hardened loader's admission path, with the service's own code.

    ``manifest`` is the unsigned manifest of the undamaged file. Each copy gets
    it with its own sha256 and size, signed with a key of this sweep, and the
    service's :meth:`HardenedLoader.checked_manifest` reads and checks it from
    ``work_dir``. Validation then runs ``load_model_stream``,
    ``check_canary`` and ``check_tree_links`` as the service's validation
    process does, and the served
    model comes from ``load_model_bytes`` as in the service.

    NOTE: validation here is bounded by the sweep's phase timeout, not by the
    service's ``--validate-timeout``, so a copy whose validation ends between
    the two limits gets another verdict here than in the service.
    """

    name = "hardened"
    phases = ("validate", "load", "predict")

    def __init__(
        self,
        canary: Canary,
        *,
        manifest: Manifest,
        work_dir: Path,
        version_match: str = "exact",
    ) -> None:
        super().__init__(canary)
        self._manifest = manifest
        self._work_dir = work_dir
        self._version_match = version_match
        self._key = secrets.token_bytes(32)
        config = ServiceConfig(
            model_dir=work_dir,
            loader="hardened",
            models=(manifest.model,),
            hmac_key=self._key,
            version_match=version_match,
        )
        self._service = HardenedLoader(config, ServiceMetrics())

    def admit(self, case: CaseProcess) -> Outcome | None:
        path = self._work_dir / f"case-{os.getpid()}.pkl"
        signed = sign(
            replace(
                self._manifest, sha256=sha256_bytes(case.data), size=len(case.data)
            ),
            self._key,
        )
        # The text write_manifest writes, without its two fsyncs: the manifest
        # only carries the copy into the service's check, once per case.
        text = json.dumps(signed.to_json(), indent=2, sort_keys=True) + "\n"
        manifest_file = manifest_path(path)
        manifest_file.write_text(text, encoding="utf-8")
        try:
            case.manifest = self._service.checked_manifest(
                self._manifest.model, path, case.data
            )
        except LoadFailure as failure:
            return _rejected(failure)
        finally:
            manifest_file.unlink(missing_ok=True)
        return None

    def load(self, stream: BinaryIO) -> Any:
        return load_model_stream(stream, self._version_match)

    def finish(
        self, case: CaseProcess, model: Any, error: BaseException | None
    ) -> Outcome:
        # The service's validation process turns any exception, SystemExit
        # included, into a rejection.
        if error is not None:
            if isinstance(error, LoadFailure):
                return _rejected(error)
            return Outcome("rejected", error_text(error))
        assert case.manifest is not None
        try:
            check_canary(model, case.manifest.canary)
            check_tree_links(model)
        except LoadFailure as failure:
            return _rejected(failure)

        case.channel.phase("load")
        try:
            served = load_model_bytes(case.data, self._version_match)
        except LoadFailure as failure:
            return _rejected(failure)
        case.channel.phase("predict")
        return judge_predictions(served, self.canary)

    def on_crash(self, phase: str, signal_name: str) -> Outcome:
        # The hardened loader validates in a child process with a timeout and
        # rejects the file when that process dies or runs too long. A case
        # process that dies while it validates stands for that child process,
        # so its death is a rejection, not a crash of the service.
        if phase == "validate":
            return Outcome(
                "rejected", f"validation_crashed: validation died with {signal_name}"
            )
        return super().on_crash(phase, signal_name)

    def on_timeout(self, phase: str, limit: str) -> Outcome:
        if phase == "validate":
            return Outcome(
                "rejected", f"validation_timeout: validation did not end within {limit}"
            )
        return super().on_timeout(phase, limit)


LOADERS: dict[str, type[CaseLoader]] = {
    "naive": NaiveCase,
    "basic": BasicCase,
    "hardened": HardenedCase,
}


def _rejected(failure: LoadFailure) -> Outcome:
    return Outcome("rejected", f"{failure.reason}: {failure.message}"[:500])


def _escaped(error: BaseException) -> Outcome:
    # Both simple loaders catch Exception only; anything else ends the service.
    return Outcome(
        "crash",
        f"{error_text(error)} is not an Exception, so it escaped the loader's "
        "except clause and ends the service",
    )
