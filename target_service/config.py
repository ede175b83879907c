"""Service settings and the layout of the model directory.

Each model ``NAME`` lives in ``NAME.pkl``, optionally with a backup in
``NAME.pkl.backup``; each file has its manifest next to it
(``NAME.pkl.manifest.json``, ``NAME.pkl.backup.manifest.json``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MODEL = "global_model"
DEFAULT_MODELS = ("global_model", "champion_model")
VERSION_MATCHES = ("exact", "minor", "any")

# Model names become file names, so they may not contain a path separator or
# start with a dot.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def check_model_name(name: str) -> str:
    """Return ``name`` when it is a valid model name.

    Raises :class:`ValueError` naming the value and the allowed characters.
    """
    if not _MODEL_NAME.fullmatch(name):
        raise ValueError(
            f"invalid model name {name!r}: use letters, digits, '_' and '-', "
            "starting with a letter or digit (for example global_model)"
        )
    return name


def primary_path(model_dir: Path, name: str) -> Path:
    """Return the path of the primary file of model ``name``."""
    return model_dir / f"{name}.pkl"


def backup_path(model_dir: Path, name: str) -> Path:
    """Return the path of the backup file of model ``name``."""
    return model_dir / f"{name}.pkl.backup"


@dataclass(frozen=True)
class ServiceConfig:
    """Settings of one service: the models it serves and how it loads them.

    ``poll_interval`` and ``validate_timeout`` are in seconds. ``hmac_key`` is
    kept out of ``repr`` so that logging a configuration never logs the key.
    """

    model_dir: Path
    loader: str = "hardened"
    models: tuple[str, ...] = DEFAULT_MODELS
    hmac_key: bytes | None = field(default=None, repr=False)
    poll_interval: float = 0.2
    validate_timeout: float = 5.0
    version_match: str = "exact"
