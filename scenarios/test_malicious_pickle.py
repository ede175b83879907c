"""The primary is a pickle that runs code when loaded, alone or with a forged manifest.

The forged manifest has the right sha256 but no valid signature, because the
attacker has no key.
"""

import pytest

from harness import Scenario, faults

CHECKS = ("no_code_execution", "stayed_up", "truthful_health", "no_silent_corruption")


@pytest.mark.parametrize("manifest", ["alone", "forged_manifest"])
def test_malicious_pickle(chaos: Scenario, manifest: str) -> None:
    chaos.populate()
    path = chaos.file("global_model")
    marker = chaos.marker_path()
    chaos.inject(faults.write_malicious_pickle(path, marker.in_target))
    if manifest == "forged_manifest":
        chaos.inject(faults.forge_manifest(path, "global_model"))

    if chaos.start():
        chaos.observe(1.0)

    chaos.verify(*CHECKS)
