"""Render junit.xml, one ``testcase`` per scenario record, for CI dashboards."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from harness.report.records import INTERRUPTED_NOTE, RunRecord, ScenarioRecord

# Characters that XML 1.0 does not allow, which can appear in captured logs.
_INVALID_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render_junit(run: RunRecord, scenarios: Iterable[ScenarioRecord]) -> bytes:
    """Return junit.xml as UTF-8 bytes with an XML declaration.

    A failed scenario gets a ``failure`` with its failed checks' details, an
    errored one an ``error`` with the error text, and a skipped one ``skipped``.
    """
    records = list(scenarios)
    # An interrupted run counts as one more error, so that CI does not take
    # the scenarios that finished for the whole run.
    interrupted = int(run.interrupted)
    suites = ET.Element("testsuites")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="model-chaos",
        tests=str(len(records) + interrupted),
        failures=str(sum(r.outcome == "failed" for r in records)),
        errors=str(sum(r.outcome == "error" for r in records) + interrupted),
        skipped=str(sum(r.outcome == "skipped" for r in records)),
        time=f"{sum(r.duration for r in records):.3f}",
        timestamp=run.started_at,
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("run_id", run.id),
        ("target", run.target),
        ("loader", run.loader),
        ("seed", str(run.seed)),
        ("repeat", str(run.repeat)),
    ):
        ET.SubElement(properties, "property", name=name, value=_clean(value))

    for record in records:
        _add_testcase(suite, run, record)
    if run.interrupted:
        case = ET.SubElement(suite, "testcase", classname="model-chaos", name="run")
        ET.SubElement(case, "error", message=INTERRUPTED_NOTE)

    ET.indent(suites)
    data: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return data


def _add_testcase(suite: ET.Element, run: RunRecord, record: ScenarioRecord) -> None:
    name = record.name if run.repeat <= 1 else f"{record.name} repeat {record.repeat}"
    case = ET.SubElement(
        suite,
        "testcase",
        classname=_classname(record.nodeid),
        name=_clean(name),
        time=f"{record.duration:.3f}",
    )

    if record.outcome == "failed":
        failed = record.failed_checks
        message = "checks failed: " + ", ".join(c.name for c in failed)
        if not failed:
            message = "scenario failed"
        element = ET.SubElement(case, "failure", message=_clean(message))
        details = [f"{c.name}: {c.detail}" for c in failed] or [record.error or ""]
        element.text = _clean("\n".join(details))
    elif record.outcome == "error":
        error = record.error or "error"
        last_line = error.strip().splitlines()[-1] if error.strip() else "error"
        element = ET.SubElement(case, "error", message=_clean(last_line))
        element.text = _clean(error)
    elif record.outcome == "skipped":
        ET.SubElement(case, "skipped", message=_clean(record.skip_reason or ""))

    if record.replay:
        output = ET.SubElement(case, "system-out")
        output.text = _clean(f"replay: {record.replay}")


def _classname(nodeid: str) -> str:
    """Turn ``scenarios/test_x.py::test_y[a]`` into ``scenarios.test_x``."""
    module = nodeid.split("::", 1)[0].removesuffix(".py")
    return _clean(module.replace("/", ".").replace("\\", "."))


def _clean(text: str) -> str:
    return _INVALID_XML.sub("\ufffd", text)
