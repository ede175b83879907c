"""Fixtures shared by the tests of the harness: the built-in reference models."""

from __future__ import annotations

import pytest

from harness.models import ModelSet, builtin_model_set
from harness.run import cache_dir


@pytest.fixture(scope="session")
def model_set() -> ModelSet:
    """The built-in reference models, trained once and cached between runs."""
    return builtin_model_set(cache_dir() / "models")
