"""A sweep of damaged model file copies: the loader must reject every harmful one.

Each copy (truncated, a bit flipped, a NumPy array field of the model flipped
or zeroed) is loaded and predicted in a process of its own, as the run's loader
would, without a running target. A copy that crashes, hangs, predicts wrongly
or fails to predict is dangerous; the damaged files are saved with the report.
"""

from harness import Scenario
from harness.sweep import run_sweep

# A few dozen copies of each kind keep the sweep to about 7 s on 2 cores.
# NOTE: with the basic loader, about 7% of the bit flips and 10% of the array
# damage of the built-in forest are dangerous (200 copies of each, several
# seeds). For an estimated 0.3% of seeds the sweep finds no dangerous copy.
TRUNCATIONS = 32
FLIPS = 32


def test_damage_sweep(chaos: Scenario) -> None:
    names = chaos.model_set.names
    model = "global_model" if "global_model" in names else names[0]
    known = chaos.model_set.get(model, "v1")
    assert known.path is not None and known.size is not None

    chaos.sweep_result = run_sweep(
        known.path,
        loader=chaos.settings.loader,
        kinds=("truncate", "bitflip", "array"),
        flips=FLIPS,
        stride=max(1, known.size // TRUNCATIONS),
        seed=chaos.seed,
        out_dir=chaos.artifacts_dir / "sweep",
        canary_inputs=chaos.model_set.canary_inputs[model],
        max_regressions=0,
    )
    chaos.saved_files.extend(str(path) for path in chaos.sweep_result.saved_files)

    chaos.verify("dangerous_files_rejected")
