"""How much CPU time each phase of a case may use before the sweep calls it a hang.

A case runs in phases (``load``, ``validate``, ``predict``), and each phase
gets its own limit when it starts. The limit is CPU time, not wall time, so
that a machine busy with other work does not turn slow cases into hangs. A
model that loops forever uses a full CPU and reaches its limit however busy
the machine is. The limit adapts to the model: it is :data:`FACTOR` times the
median CPU time of that phase for the undamaged file, measured at the start of
the sweep, and never less than :data:`FLOOR`. A damaged copy parses at most the
whole file and predicts the same rows as the undamaged one, so a phase that
uses this much more is taken as endless.

A process that waits without using CPU is stopped by a wall-clock limit of
:data:`WALL_FACTOR` times its CPU limit, which also covers a process that gets
only a small share of a busy machine.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

FACTOR = 20.0
# A phase that uses at least one CPU second, and 20 times its usual share, is
# taken as endless. With a lower floor, a loaded machine made slow copies look hung.
FLOOR = 1.0
WALL_FACTOR = 10.0

# Calibration runs undamaged cases before any limit is known; this bounds, in
# CPU seconds, a model that hangs even undamaged.
CALIBRATION_LIMIT = 300.0


@dataclass(frozen=True)
class Timeouts:
    """CPU seconds per phase; ``default`` covers a phase calibration did not see.

    ``source`` is ``measured``, ``option`` (given with ``--timeout``) or
    ``calibration``, and ``medians`` maps each phase to the measured median
    CPU seconds of the undamaged file.
    """

    seconds: Mapping[str, float]
    default: float
    source: str
    medians: Mapping[str, float]

    def of(self, phase: str) -> float:
        """Return the CPU seconds ``phase`` may use."""
        return self.seconds.get(phase, self.default)

    def wall_of(self, phase: str) -> float:
        """Return the wall-clock seconds ``phase`` may take."""
        return WALL_FACTOR * self.of(phase)

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "cpu_seconds": {
                phase: round(value, 3) for phase, value in self.seconds.items()
            },
            "default": round(self.default, 3),
            "median_undamaged_cpu_seconds": {
                phase: round(value, 4) for phase, value in self.medians.items()
            },
            "factor": FACTOR,
            "floor": FLOOR,
            "wall_factor": WALL_FACTOR,
        }


def fixed(seconds: float, phases: Iterable[str]) -> Timeouts:
    """Return the same limit for every phase, as ``--timeout`` sets it."""
    return Timeouts({phase: seconds for phase in phases}, seconds, "option", {})


def calibration() -> Timeouts:
    """Return the limit undamaged cases run under while they are measured."""
    return Timeouts({}, CALIBRATION_LIMIT, "calibration", {})


def from_durations(durations: Mapping[str, list[float]]) -> Timeouts:
    """Return limits from the measured CPU seconds of undamaged cases' phases."""
    medians = {phase: statistics.median(times) for phase, times in durations.items()}
    seconds = {phase: max(FLOOR, FACTOR * median) for phase, median in medians.items()}
    default = max(seconds.values(), default=FLOOR)
    return Timeouts(seconds, default, "measured", medians)
