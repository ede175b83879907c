"""The records of a sweep: one per damaged copy, one per kind, and the whole sweep."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.sweep.damage import Damage, Flip
from harness.sweep.timeouts import Timeouts
from harness.sweep.verdict import VERDICTS, Outcome

# The most frequent error types of a kind that sweep.json lists.
_ERROR_TYPES = 10


@dataclass
class CaseResult:
    """The verdict on one damaged copy, and where the copy was saved.

    ``duration`` is seconds from fork to exit. ``saved_file`` is set for the
    copies the sweep keeps (crash, hang, silent corruption).
    """

    damage: Damage
    outcome: Outcome
    duration: float
    saved_file: Path | None = None

    @property
    def verdict(self) -> str:
        return self.outcome.verdict

    @property
    def dangerous(self) -> bool:
        return self.outcome.dangerous

    def to_json(self) -> dict[str, Any]:
        return {
            **self.damage.to_json(),
            "verdict": self.verdict,
            "signal": self.outcome.signal,
            "error": self.outcome.error,
            "seconds": round(self.duration, 4),
            "saved_file": str(self.saved_file) if self.saved_file else None,
        }


@dataclass
class KindSummary:
    """The counts by verdict and the speed of one kind, or why it was skipped.

    ``seconds`` is the wall time of the kind's cases, all workers together.
    """

    kind: str
    cases: int = 0
    seconds: float = 0.0
    verdicts: dict[str, int] = field(default_factory=dict)
    error_types: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None

    @property
    def cases_per_second(self) -> float | None:
        if self.cases == 0 or self.seconds <= 0:
            return None
        return self.cases / self.seconds

    @classmethod
    def of(cls, kind: str, results: list[CaseResult], seconds: float) -> KindSummary:
        verdicts = Counter(result.verdict for result in results)
        error_types = Counter(
            _error_type(result.outcome.error)
            for result in results
            if result.verdict == "rejected" and result.outcome.error
        )
        return cls(
            kind=kind,
            cases=len(results),
            seconds=seconds,
            verdicts={verdict: verdicts.get(verdict, 0) for verdict in VERDICTS},
            error_types=dict(error_types.most_common(_ERROR_TYPES)),
        )

    def to_json(self) -> dict[str, Any]:
        rate = self.cases_per_second
        return {
            "cases": self.cases,
            "seconds": round(self.seconds, 3),
            "cases_per_second": round(rate, 1) if rate is not None else None,
            "verdicts": dict(self.verdicts),
            "rejected_error_types": dict(self.error_types),
            "skipped": self.skipped,
        }


@dataclass
class Regression:
    """A scenario module written for one dangerous copy, with its fewest flips."""

    path: Path
    case: CaseResult
    flips: tuple[Flip, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "kind": self.case.damage.kind,
            "index": self.case.damage.index,
            "verdict": self.case.verdict,
            "flips": [list(flip) for flip in self.flips],
            "flips_before_shrinking": len(self.case.damage.flips),
        }


@dataclass
class SweepResult:
    """Everything one sweep found, as ``sweep.json`` records it.

    ``out_dir`` contains ``sweep.json`` (``path``), the saved copies under
    ``damaged/`` and the regression scenarios under ``regressions/``.
    """

    model_file: Path
    model_sha256: str
    model_size: int
    model_name: str
    compressor: str | None
    loader: str
    seed: int
    kinds: tuple[str, ...]
    flips: int
    stride: int
    timeouts: Timeouts
    workers: int
    canary_source: str
    canary_rows: int
    versions: dict[str, str]
    started_at: str
    ended_at: str
    summaries: dict[str, KindSummary]
    cases: list[CaseResult]
    regressions: list[Regression]
    out_dir: Path
    notes: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.out_dir / "sweep.json"

    @property
    def dangerous(self) -> list[CaseResult]:
        return [case for case in self.cases if case.dangerous]

    @property
    def saved_files(self) -> list[Path]:
        return [case.saved_file for case in self.cases if case.saved_file]

    def verdict_counts(self) -> dict[str, int]:
        """Return the number of copies of every verdict, over all kinds."""
        counts = Counter(case.verdict for case in self.cases)
        return {verdict: counts.get(verdict, 0) for verdict in VERDICTS}

    def to_json(self) -> dict[str, Any]:
        total = sum(summary.seconds for summary in self.summaries.values())
        cases = len(self.cases)
        return {
            "format": 1,
            "model": {
                "file": str(self.model_file),
                "sha256": self.model_sha256,
                "size": self.model_size,
                "name": self.model_name,
                "compressor": self.compressor,
            },
            "loader": self.loader,
            "seed": self.seed,
            "kinds": list(self.kinds),
            "flips": self.flips,
            "stride": self.stride,
            "workers": self.workers,
            "canary": {"source": self.canary_source, "rows": self.canary_rows},
            "timeouts": self.timeouts.to_json(),
            "versions": dict(self.versions),
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "totals": {
                "cases": cases,
                "seconds": round(total, 3),
                "cases_per_second": round(cases / total, 1) if total > 0 else None,
                "verdicts": self.verdict_counts(),
                "dangerous": len(self.dangerous),
            },
            "by_kind": {
                kind: summary.to_json() for kind, summary in self.summaries.items()
            },
            "dangerous": [case.to_json() for case in self.dangerous],
            "regressions": [regression.to_json() for regression in self.regressions],
            "notes": list(self.notes),
        }


def _error_type(error: str) -> str:
    """Return the exception type or failure reason an error text starts with."""
    return error.split(":", 1)[0]
