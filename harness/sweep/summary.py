"""The text summary ``model-chaos sweep`` prints: a table of verdicts by kind."""

from __future__ import annotations

from harness.sweep.result import SweepResult
from harness.sweep.timeouts import FACTOR, FLOOR
from harness.sweep.verdict import VERDICTS

# How many dangerous copies the summary names one by one.
_LISTED = 10


def render_summary(result: SweepResult) -> str:
    """Return the lines printed after a sweep: what ran, the counts, the files."""
    lines = [
        f"sweep of {result.model_file} ({result.model_size} bytes, sha256 "
        f"{result.model_sha256[:12]}) with the {result.loader} loader, seed "
        f"{result.seed}, {result.workers} workers",
        _timeouts_line(result),
        "",
        *_table(result),
        "",
    ]
    dangerous = result.dangerous
    if dangerous:
        lines.append(f"{len(dangerous)} dangerous copies:")
        for case in dangerous[:_LISTED]:
            cause = case.outcome.signal or case.outcome.error or ""
            lines.append(f"  {case.damage.describe()}: {case.verdict} {cause}".rstrip())
        if len(dangerous) > _LISTED:
            lines.append(f"  and {len(dangerous) - _LISTED} more in sweep.json")
    else:
        lines.append(
            f"no dangerous copy: the {result.loader} loader rejected or "
            "served unchanged every damaged copy"
        )
    if result.saved_files:
        lines.append(f"saved copies: {result.out_dir / 'damaged'}")
    for regression in result.regressions:
        lines.append(f"regression scenario: {regression.path}")
    lines.extend(f"note: {note}" for note in result.notes)
    lines.append(f"report: {result.path}")
    return "\n".join(lines)


def _timeouts_line(result: SweepResult) -> str:
    limits = result.timeouts
    phases = ", ".join(
        f"{phase} {seconds:.2f} s" for phase, seconds in limits.seconds.items()
    )
    if limits.source == "option":
        origin = "from --timeout"
    else:
        origin = f"{FACTOR:g} times the undamaged file's median, at least {FLOOR:g} s"
    return f"hang limits in CPU time per phase: {phases} ({origin})"


def _table(result: SweepResult) -> list[str]:
    header = ["kind", "cases", "cases/s", *VERDICTS]
    rows = [header]
    skipped = []
    for kind, summary in result.summaries.items():
        if summary.skipped is not None:
            skipped.append(f"{kind}: skipped, {summary.skipped}")
            continue
        rate = summary.cases_per_second
        rows.append(
            [
                kind,
                str(summary.cases),
                f"{rate:.1f}" if rate is not None else "-",
                *(str(summary.verdicts.get(verdict, 0)) for verdict in VERDICTS),
            ]
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    return lines + skipped
