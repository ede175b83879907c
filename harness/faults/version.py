"""A model file pickled by another scikit-learn version, installed as the primary."""

from __future__ import annotations

from pathlib import Path

from harness.errors import FaultError
from harness.models import ModelSet
from harness.timeline import FaultEvent, now


def install_foreign(
    model_set: ModelSet,
    model_dir: Path,
    model: str,
    version: str | None = None,
    *,
    key: bytes | None,
) -> FaultEvent:
    """Install a foreign version of ``model`` as its primary, with a signed manifest.

    ``version`` defaults to the first foreign version the model set has. The
    manifest records the scikit-learn version that pickled the file, as a
    publisher running that version would have written it.
    """
    if version is None:
        version = _first_foreign(model_set, model)
    known = model_set.get(model, version)
    if not known.foreign:
        raise FaultError(
            f"{known.key} was pickled by the running scikit-learn "
            f"{known.sklearn_version}; choose a foreign version"
        )

    t_start = now()
    path = model_set.install(model_dir, model, version, key=key)
    return FaultEvent(
        kind="version_mismatch",
        t_start=t_start,
        t_end=now(),
        path=str(path),
        params={"version": version, "sklearn_version": known.sklearn_version},
        note=f"{model} replaced by a file pickled by scikit-learn "
        f"{known.sklearn_version}, with a signed manifest recording it",
    )


def _first_foreign(model_set: ModelSet, model: str) -> str:
    for known in model_set.known.values():
        if known.model == model and known.foreign:
            return known.version
    raise FaultError(
        f"the model set has no {model} pickled by another scikit-learn version"
    )
