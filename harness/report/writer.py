"""Write a run's report folder: report.json, report.md, junit.xml and ``latest``.

``report.json`` is validated against ``schema.json`` (JSON Schema draft
2020-12) before any file is written, so that a report on disk always matches
the schema that ships with the harness.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from harness.errors import HarnessError
from harness.report.junit import render_junit
from harness.report.markdown import render_markdown
from harness.report.records import OUTCOMES, RunRecord, ScenarioRecord

logger = logging.getLogger(__name__)

_MAX_SCHEMA_ERRORS = 5

# jsonschema checks "date-time" only when the optional rfc3339-validator package
# is installed, so the harness checks it itself: ISO 8601 with a UTC offset.
_FORMAT_CHECKER = jsonschema.FormatChecker(formats=())


@_FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return datetime.fromisoformat(value).tzinfo is not None


def load_schema() -> dict[str, Any]:
    """Return the JSON Schema of report.json, as shipped in this package."""
    text = resources.files("harness.report").joinpath("schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_report(document: dict[str, Any]) -> None:
    """Raise HarnessError listing the first schema errors of a report document."""
    validator = jsonschema.Draft202012Validator(
        load_schema(), format_checker=_FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(document), key=lambda e: e.json_path)
    if not errors:
        return

    first_errors = errors[:_MAX_SCHEMA_ERRORS]
    listed = "; ".join(f"{e.json_path}: {e.message}" for e in first_errors)
    if len(errors) > len(first_errors):
        listed += f"; and {len(errors) - len(first_errors)} more"
    raise HarnessError(f"the report does not match its schema: {listed}")


def summarize(run: RunRecord, scenarios: Iterable[ScenarioRecord]) -> dict[str, Any]:
    """Count the scenario records by outcome.

    With ``run.repeat`` above 1 the summary also gives, under ``by_scenario``,
    each scenario name's passes out of its repeats, the seeds of the repeats
    that did not pass, and for scenarios that stage a race, how many repeats
    reproduced it (see :func:`reproduced`).
    """
    records = list(scenarios)
    counts = Counter(record.outcome for record in records)
    summary: dict[str, Any] = {"total": len(records)}
    summary.update({outcome: counts.get(outcome, 0) for outcome in OUTCOMES})

    if run.repeat > 1:
        summary["by_scenario"] = _by_scenario(records)
    return summary


def _by_scenario(records: list[ScenarioRecord]) -> dict[str, dict[str, Any]]:
    by_scenario: dict[str, dict[str, Any]] = {}
    for record in records:
        entry = by_scenario.setdefault(
            record.name, {"passed": 0, "repeats": 0, "failed_seeds": []}
        )
        entry["repeats"] += 1
        entry["passed"] += record.outcome == "passed"
        if record.outcome in ("failed", "error"):
            entry["failed_seeds"].append(record.seed)
        race = reproduced(record)
        if race is not None:
            entry["reproduced"] = entry.get("reproduced", 0) + race
    return by_scenario


def reproduced(record: ScenarioRecord) -> bool | None:
    """Return whether a scenario that stages a race reproduced it, else ``None``.

    A torn write reproduces its race when the target attempted a load while
    the file was half-written and reported an error for that attempt: the
    fault records both, as ``load_attempt_seen`` and ``service_error``.
    """
    races = [
        fault["params"]
        for fault in record.faults
        if "load_attempt_seen" in fault.get("params", {})
    ]
    if not races:
        return None
    return all(
        race["load_attempt_seen"] and race.get("service_error") for race in races
    )


def build_report(run: RunRecord, scenarios: Iterable[ScenarioRecord]) -> dict[str, Any]:
    """Return the report.json document of a run, not yet validated."""
    records = list(scenarios)
    return {
        "run": run.to_json(),
        "summary": summarize(run, records),
        "scenarios": [record.to_json() for record in records],
    }


def write_report(
    report_dir: Path, run: RunRecord, scenarios: list[ScenarioRecord]
) -> Path:
    """Write ``<report_dir>/<run.id>/`` and point ``<report_dir>/latest`` at it.

    Returns the run's folder, which contains report.json, report.md and
    junit.xml. Raises HarnessError when the report does not match its schema,
    contains a value that is not JSON, or cannot be written.
    """
    document = build_report(run, scenarios)
    try:
        text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise HarnessError(
            f"the report of run {run.id} contains a value that is not JSON: {err}"
        ) from err
    validate_report(json.loads(text))

    run_dir = Path(report_dir) / run.id
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(run_dir / "report.json", text.encode())
        markdown = render_markdown(run, scenarios, document["summary"])
        _write_atomically(run_dir / "report.md", markdown.encode())
        _write_atomically(run_dir / "junit.xml", render_junit(run, scenarios))
    except OSError as err:
        raise HarnessError(
            f"cannot write the report to {run_dir}: {err.strerror or err}; "
            "choose a writable --report-dir"
        ) from err

    point_latest(Path(report_dir), run.id)
    logger.info("report written to %s", run_dir)
    return run_dir


def point_latest(report_dir: Path, run_id: str) -> None:
    """Point ``<report_dir>/latest`` at the run folder ``run_id``.

    ``latest`` becomes a relative symlink, replaced atomically by a rename.
    Where the file system cannot hold symlinks it becomes a text file that
    contains the run id. A failure is logged and not raised, because the run's
    own folder is already complete.
    """
    latest = report_dir / "latest"
    temporary = report_dir / f".latest.{os.getpid()}.tmp"
    try:
        temporary.unlink(missing_ok=True)
        try:
            os.symlink(run_id, temporary, target_is_directory=True)
        except (OSError, NotImplementedError) as err:
            logger.info(
                "symlinks unavailable in %s (%s); latest is a file", report_dir, err
            )
            temporary.write_text(run_id + "\n", encoding="utf-8")
        os.replace(temporary, latest)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        logger.error(
            "cannot point %s at %s: %s; remove %s to let the next run replace it",
            latest,
            run_id,
            err,
            latest,
        )


def _write_atomically(path: Path, data: bytes) -> None:
    # Readers, and runs interrupted while writing, never find a half-written file.
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
