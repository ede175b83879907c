"""model-chaos: damage the model files of a live inference service, check what it does.

Scenario modules use the ``chaos`` fixture of the pytest plugin, which gives them
a :class:`Scenario`, and the fault injectors of :mod:`harness.faults`.
"""

from harness import faults
from harness.checks import Bounds, CheckResult, Recovery
from harness.errors import HarnessError
from harness.models import KnownModel, ModelSet
from harness.scenario import ChecksFailed, Scenario
from harness.timeline import Event, FaultEvent, Sample, Timeline

__all__ = [
    "Bounds",
    "CheckResult",
    "ChecksFailed",
    "Event",
    "FaultEvent",
    "HarnessError",
    "KnownModel",
    "ModelSet",
    "Recovery",
    "Sample",
    "Scenario",
    "Timeline",
    "faults",
]
