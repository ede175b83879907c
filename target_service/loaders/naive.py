"""The naive loader: one ``joblib.load`` at start-up and no checks at all.

It shows what the harness catches in the simplest service: a failed load
leaves ``None`` behind, every prediction of that model then fails, and /health
still reports the primary file as healthy.
"""

from __future__ import annotations

import logging
from pathlib import Path

import joblib

from target_service.config import primary_path
from target_service.failures import LoadFailure, classify_exception, describe_exception
from target_service.loaders.base import Loader, recorded_sklearn_version, utc_now
from target_service.manifest import sha256_bytes
from target_service.slots import ServedModel, Tier

logger = logging.getLogger(__name__)


class NaiveLoader(Loader):
    name = "naive"

    def start(self) -> None:
        for model in self.config.models:
            self._load(model)

    def _load(self, model: str) -> None:
        path = primary_path(self.config.model_dir, model)
        self.begin_attempt(model, path, Tier.PRIMARY)

        loaded = None
        last_error = None
        try:
            loaded = joblib.load(path)
        except Exception as err:
            failure = LoadFailure(classify_exception(err), describe_exception(err))
            last_error = self.record_failure(model, path, failure)

        self.serve(
            model,
            ServedModel(
                model=loaded,
                tier=Tier.PRIMARY,
                version=_file_sha256(path),
                source=path,
                sklearn_version=recorded_sklearn_version(path),
                loaded_at=utc_now(),
            ),
            last_error,
        )


def _file_sha256(path: Path) -> str | None:
    try:
        return sha256_bytes(path.read_bytes())
    except OSError:
        return None
