"""The basic loader: the common fix, a try/except with a backup and a dummy.

At start-up it tries the primary file, then the backup, then the dummy, and it
never reloads. It reports the tier it really ended on. It opens files the
ordinary way, so a FIFO blocks it, and it only checks that the loaded object
has ``predict``, so a pickle from another scikit-learn version that loads with
a warning is served as healthy.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import joblib

from target_service.config import backup_path, primary_path
from target_service.failures import (
    NOT_A_MODEL,
    LoadFailure,
    classify_exception,
    describe_exception,
)
from target_service.loaders.base import (
    Loader,
    dummy_served_model,
    recorded_sklearn_version,
    utc_now,
)
from target_service.manifest import sha256_bytes
from target_service.slots import ServedModel, Tier

logger = logging.getLogger(__name__)


class BasicLoader(Loader):
    name = "basic"

    def start(self) -> None:
        for model in self.config.models:
            self._load(model)

    def _load(self, model: str) -> None:
        candidates = (
            (primary_path(self.config.model_dir, model), Tier.PRIMARY),
            (backup_path(self.config.model_dir, model), Tier.BACKUP),
        )
        errors: list[str] = []
        for path, tier in candidates:
            self.begin_attempt(model, path, tier)
            try:
                served = self._load_file(path, tier)
            except LoadFailure as failure:
                errors.append(self.record_failure(model, path, failure))
                continue
            self.serve(model, served, "; ".join(errors) or None)
            return
        self.serve(model, dummy_served_model(), "; ".join(errors))

    def _load_file(self, path: Path, tier: Tier) -> ServedModel:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
            loaded = joblib.load(io.BytesIO(data))
        except Exception as err:
            raise LoadFailure(classify_exception(err), describe_exception(err)) from err
        if not hasattr(loaded, "predict"):
            raise LoadFailure(
                NOT_A_MODEL,
                f"the file contains a {type(loaded).__name__}, which has no "
                "predict method",
            )
        return ServedModel(
            model=loaded,
            tier=tier,
            version=sha256_bytes(data),
            source=path,
            sklearn_version=recorded_sklearn_version(path),
            loaded_at=utc_now(),
        )
