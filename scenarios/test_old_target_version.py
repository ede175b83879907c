"""The service runs scikit-learn 1.2.2 and numpy 1.26; the files come from newer ones.

This is version mismatch the other way round: a service image that lags
behind the training job. Every model file was pickled by a newer library, so
none may be served as healthy.
"""

from harness import Scenario

CHECKS = (
    "stayed_up",
    "truthful_health",
    "no_silent_corruption",
    "version_mismatch_reported",
)


def test_old_target_version(chaos: Scenario) -> None:
    chaos.require_target("docker", "the old library versions live in a target image")
    from harness.docker import Pins

    chaos.use_target_options(pins=Pins(scikit_learn="1.2.2", numpy="1.26.4"))
    chaos.populate()
    chaos.treat_installed_as_foreign()

    if chaos.start():
        chaos.observe(1.5)

    chaos.verify(*CHECKS)
