"""The primary was pickled by scikit-learn 1.2.2 with numpy 1.26.

An old tree model fails to load on current versions; an old linear model loads
with only a warning. Neither may be served as healthy.
"""

import pytest

from harness import Scenario

CHECKS = (
    "stayed_up",
    "truthful_health",
    "no_silent_corruption",
    "version_mismatch_reported",
)

OLD_MODELS = {"tree": "global_model", "linear": "champion_model"}
OLD_VERSION = "sklearn-1.2.2"


@pytest.mark.parametrize("kind", list(OLD_MODELS))
def test_version_mismatch(chaos: Scenario, kind: str) -> None:
    model = OLD_MODELS[kind]
    if not chaos.model_set.has(model, OLD_VERSION):
        pytest.skip(f"no {model} pickled by scikit-learn 1.2.2 in this model set")
    chaos.populate()
    chaos.inject(chaos.install_foreign(model, OLD_VERSION))

    if chaos.start():
        chaos.observe(1.0)

    chaos.verify(*CHECKS)
