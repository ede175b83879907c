"""Damage sweeps: many damaged copies of one model file, each judged in its own process.

:func:`run_sweep` makes copies of a model file damaged in five ways: truncated,
with single bits flipped, and with damage aimed at the pickle opcodes, the
compressed stream or the NumPy array payloads. It runs each copy through a
loader of the reference service in a forked process and judges it as
``rejected``, ``identical``, ``silent_corruption``, ``predict_error``,
``crash`` or ``hang``. The ``model-chaos sweep`` command and the
``damage_sweep`` scenario call it.
"""

from harness.sweep.damage import KINDS, Damage
from harness.sweep.replay import replay_damage
from harness.sweep.result import CaseResult, KindSummary, Regression, SweepResult
from harness.sweep.runner import DEFAULT_FLIPS, run_sweep
from harness.sweep.verdict import DANGEROUS, VERDICTS, Outcome

__all__ = [
    "DANGEROUS",
    "DEFAULT_FLIPS",
    "KINDS",
    "VERDICTS",
    "CaseResult",
    "Damage",
    "KindSummary",
    "Outcome",
    "Regression",
    "SweepResult",
    "replay_damage",
    "run_sweep",
]
