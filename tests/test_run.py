"""Run-wide options: the bounds' checks and the options replay commands repeat."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from harness.errors import UsageError
from harness.run import check_seconds, selection_options


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -1.0])
def test_bad_seconds_rejected(value: float) -> None:
    with pytest.raises(UsageError, match="pass a number of seconds above 0"):
        check_seconds("--recover-within", value)


def test_unset_seconds_accepted() -> None:
    check_seconds("--recover-within", None)
    check_seconds("--recover-within", 0.5)


def options(**overrides: object) -> SimpleNamespace:
    values: dict[str, object] = {
        "target": "process",
        "loader": "basic",
        "models": None,
        "recover_within": 10.0,
        "request_latency": 2.0,
    }
    values.update(overrides)
    return SimpleNamespace(**values)


def test_defaults_leave_bounds_out() -> None:
    assert selection_options(options()) == {
        "--target": "process",
        "--loader": "basic",
    }


def test_changed_bounds_and_models_kept() -> None:
    selected = selection_options(
        options(models="/data/models", recover_within=3.0, request_latency=0.5)
    )

    assert selected == {
        "--target": "process",
        "--loader": "basic",
        "--models": "/data/models",
        "--recover-within": "3",
        "--request-latency": "0.5",
    }
