"""The three model loaders, selected by ``--loader``."""

from __future__ import annotations

from target_service.config import ServiceConfig
from target_service.loaders.base import Loader
from target_service.metrics import ServiceMetrics

LOADERS = ("naive", "basic", "hardened")

__all__ = ["LOADERS", "Loader", "create_loader"]


def create_loader(config: ServiceConfig, metrics: ServiceMetrics) -> Loader:
    """Return the loader named by ``config.loader``.

    Raises :class:`ValueError` for an unknown name.
    """
    if config.loader == "naive":
        from target_service.loaders.naive import NaiveLoader

        return NaiveLoader(config, metrics)
    if config.loader == "basic":
        from target_service.loaders.basic import BasicLoader

        return BasicLoader(config, metrics)
    if config.loader == "hardened":
        from target_service.loaders.hardened import HardenedLoader

        return HardenedLoader(config, metrics)
    raise ValueError(
        f"unknown loader {config.loader!r}: choose one of {', '.join(LOADERS)}"
    )
