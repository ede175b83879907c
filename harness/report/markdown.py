"""Render report.md: a run's summary for people, failures first.

Failed and errored scenarios get their failed checks' details, a slice of the
timeline around the first offending request, the matching log lines and the
replay command. Passed and skipped scenarios get one line each.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from harness.report.records import INTERRUPTED_NOTE, RunRecord, ScenarioRecord

# Rows of the timeline slice before and after the first offending request.
_ROWS_BEFORE = 5
_ROWS_AFTER = 10
_MAX_LOG_LINES = 20
_MAX_CELL = 120
# Control characters from captured logs or errors, other than tab and newline.
_CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


def render_markdown(
    run: RunRecord, scenarios: Iterable[ScenarioRecord], summary: dict[str, Any]
) -> str:
    """Return the text of report.md."""
    records = list(scenarios)
    parts = [_header(run, summary), _overview(run, records)]

    broken = [r for r in records if r.outcome in ("failed", "error")]
    if broken:
        parts.append("## Failed scenarios")
        parts += [_failure_section(record) for record in broken]

    passed = [r for r in records if r.outcome == "passed"]
    if passed:
        parts.append("## Passed scenarios")
        parts.append("\n".join(_passed_line(record) for record in passed))

    skipped = [r for r in records if r.outcome == "skipped"]
    if skipped:
        parts.append("## Skipped scenarios")
        parts.append(
            "\n".join(
                f"- {_title(r)}: {r.skip_reason or 'no reason given'}" for r in skipped
            )
        )
    return _CONTROL_CHARACTERS.sub("\ufffd", "\n\n".join(parts)) + "\n"


def _header(run: RunRecord, summary: dict[str, Any]) -> str:
    lines = [
        f"# model-chaos run {run.id}",
        "",
        f"- started: {run.started_at}, ended: {run.ended_at or 'not recorded'}",
        f"- target: {run.target}, loader: {run.loader}, seed: {run.seed}, "
        f"repeat: {run.repeat}",
    ]
    if run.command:
        lines.append(f"- command: `{run.command}`")
    if run.harness_versions:
        lines.append(f"- harness libraries: {_versions(run.harness_versions)}")
    if run.target_versions:
        lines.append(f"- target libraries: {_versions(run.target_versions)}")

    lines += [
        "",
        f"{summary['total']} scenario runs: {summary['passed']} passed, "
        f"{summary['failed']} failed, {summary['error']} errored, "
        f"{summary['skipped']} skipped.",
    ]
    if run.interrupted:
        lines += ["", INTERRUPTED_NOTE]
    by_scenario = summary.get("by_scenario")
    if by_scenario:
        lines += [
            "",
            "| scenario | passed | race reproduced | seeds that failed |",
            "| --- | --- | --- | --- |",
        ]
        for name, counts in by_scenario.items():
            lines.append(_repeat_row(name, counts))
    return "\n".join(lines)


def _repeat_row(name: str, counts: dict[str, Any]) -> str:
    repeats = counts["repeats"]
    passed = f"{counts['passed']}/{repeats}"
    race = counts.get("reproduced")
    reproduced = "-" if race is None else f"{race}/{repeats}"
    seeds = ", ".join(str(seed) for seed in counts["failed_seeds"][:20]) or "-"
    if len(counts["failed_seeds"]) > 20:
        seeds += f" and {len(counts['failed_seeds']) - 20} more"
    return f"| {_cell(name)} | {passed} | {reproduced} | {seeds} |"


def _versions(versions: dict[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in versions.items())


def _overview(run: RunRecord, records: list[ScenarioRecord]) -> str:
    lines = [
        "| scenario | repeat | outcome | duration (s) | failed checks |",
        "| --- | --- | --- | --- | --- |",
    ]
    for record in records:
        failed = ", ".join(check.name for check in record.failed_checks) or "-"
        lines.append(
            f"| {_cell(record.name)} | {record.repeat} | {record.outcome} | "
            f"{record.duration:.1f} | {_cell(failed)} |"
        )
    return "\n".join(lines)


def _title(record: ScenarioRecord) -> str:
    return f"{record.name} (repeat {record.repeat})"


def _passed_line(record: ScenarioRecord) -> str:
    checks = ", ".join(check.name for check in record.checks) or "no checks"
    return f"- {_title(record)}: {checks} held in {record.duration:.1f} s."


def _failure_section(record: ScenarioRecord) -> str:
    parts = [f"### {_title(record)}: {record.outcome}"]
    failed = record.failed_checks
    if failed:
        parts.append(
            "\n".join(f"- **{check.name}**: {check.detail}" for check in failed)
        )
    if record.error and not failed:
        parts.append("Error:\n\n```text\n" + record.error.strip() + "\n```")

    rows = _timeline_slice(record)
    if rows:
        parts.append("Timeline (seconds since the scenario started):\n\n" + rows)

    log_lines = _log_lines(record)
    if log_lines:
        parts.append("Log lines:\n\n```text\n" + "\n".join(log_lines) + "\n```")
    if record.saved_files:
        parts.append(
            "Saved files:\n\n" + "\n".join(f"- `{path}`" for path in record.saved_files)
        )
    parts.append("Replay:\n\n```sh\n" + (record.replay or "# not recorded") + "\n```")
    return "\n\n".join(parts)


def _log_lines(record: ScenarioRecord) -> list[str]:
    lines: list[str] = []
    for check in record.failed_checks:
        for line in check.evidence.get("log_lines", []):
            if line not in lines:
                lines.append(line)
    if not lines and record.logs_excerpt:
        lines = record.logs_excerpt.splitlines()
    return lines[-_MAX_LOG_LINES:]


def _focus_time(record: ScenarioRecord) -> float | None:
    """Return the time of the first offending sample, or of the first fault."""
    for check in record.failed_checks:
        samples = check.evidence.get("samples") or []
        if samples and isinstance(samples[0].get("t"), int | float):
            return float(samples[0]["t"])
    if record.faults:
        return float(record.faults[0]["t_start"])
    return None


def _timeline_slice(record: ScenarioRecord) -> str:
    rows: list[tuple[float, str, str, str, str]] = []
    for sample in record.timeline.get("samples", []):
        rows.append(_sample_row(sample))
    for event in record.timeline.get("events", []):
        detail = json.dumps(event.get("detail", {}), sort_keys=True)
        rows.append((event["t"], f"event {event['kind']}", "", "", detail))
    for fault in record.faults:
        result = "downtime" if fault.get("downtime") else ""
        note = fault.get("note") or fault.get("path") or ""
        rows.append((fault["t_start"], f"fault {fault['kind']}", result, "", note))
    if not rows:
        return ""
    rows.sort(key=lambda row: row[0])

    focus = _focus_time(record)
    if focus is None:
        start = max(len(rows) - _ROWS_BEFORE - _ROWS_AFTER, 0)
    else:
        index = next((i for i, row in enumerate(rows) if row[0] >= focus), len(rows))
        start = max(index - _ROWS_BEFORE, 0)
    visible = rows[start : start + _ROWS_BEFORE + _ROWS_AFTER]

    lines = [
        "| t | request or event | result | latency (s) | reported |",
        "| --- | --- | --- | --- | --- |",
    ]
    for t, label, result, latency, reported in visible:
        lines.append(
            f"| {t:.2f} | {_cell(label)} | {_cell(result)} | {latency} | "
            f"{_cell(reported)} |"
        )
    return "\n".join(lines)


def _sample_row(sample: dict[str, Any]) -> tuple[float, str, str, str, str]:
    label = sample["endpoint"]
    if sample.get("model"):
        label += f" {sample['model']}"
    result = sample.get("error") or str(sample.get("http_status"))
    latency = f"{sample['latency']:.3f}"

    served = [
        f"{name} {tier} {_short(sample.get('versions', {}).get(name))}"
        for name, tier in sample.get("tiers", {}).items()
    ]
    reported = ", ".join(served)
    if sample.get("status"):
        reported = f"{sample['status']}: {reported}"
    if sample.get("endpoint") == "predict" and sample.get("http_status") == 200:
        matches = ", ".join(sample.get("matches", [])) or "no known model"
        reported += f"; matches {matches}"
    return (sample["t"], label, result, latency, reported)


def _short(version: Any) -> str:
    if not isinstance(version, str):
        return "null"
    return version[:8]


def _cell(text: str) -> str:
    """Escape text for one Markdown table cell and cut it to a readable length."""
    text = " ".join(str(text).split())
    if len(text) > _MAX_CELL:
        text = text[: _MAX_CELL - 1] + "…"
    return text.replace("|", "\\|")
