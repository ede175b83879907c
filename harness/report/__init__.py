"""Report writers: report.json (validated against schema.json), report.md, junit.xml."""

from harness.report.records import CheckRecord, RunRecord, ScenarioRecord
from harness.report.writer import (
    build_report,
    load_schema,
    point_latest,
    summarize,
    validate_report,
    write_report,
)

__all__ = [
    "CheckRecord",
    "RunRecord",
    "ScenarioRecord",
    "build_report",
    "load_schema",
    "point_latest",
    "summarize",
    "validate_report",
    "write_report",
]
