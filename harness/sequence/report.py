"""Output of ``model-chaos explore``: explore.json, scenario modules, a summary."""

from __future__ import annotations

import hashlib
import json
import shlex
import textwrap
from pathlib import Path
from typing import Any

from harness.sequence.explore import SequenceResult, Shrunk
from harness.sequence.steps import Step

_TEMPLATE = '''\
"""{summary}

{found}

{how}

{keep}
"""

from harness import Scenario
from harness.sequence import CHECKS, Step, run_sequence

STEPS = {steps}


def {name}(chaos: Scenario) -> None:
    run_sequence(chaos, STEPS)
    chaos.verify(*CHECKS)
'''


_HOW = (
    "The scenario starts the target on fresh copies of the models, applies the "
    "steps one after another while the probe records, then publishes v2 of every "
    "model and checks that the target stayed up, reported its health truthfully, "
    "served no wrong prediction and recovered."
)


def module_name(steps: tuple[Step, ...]) -> str:
    """Return ``test_sequence_<8 hex digits>``, the same for the same steps."""
    text = "\n".join(step.source() for step in steps)
    return f"test_sequence_{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def write_module(
    directory: Path, result: SequenceResult, *, loader: str, command: list[str]
) -> Path:
    """Write the shrunk sequence of ``result`` as a scenario module; return its path."""
    shrunk = result.shrunk
    assert shrunk is not None
    name = module_name(shrunk.steps)
    scenario = name.removeprefix("test_")
    keep = (
        "To keep it, copy this file into the scenarios/ folder of model-chaos: "
        f"`model-chaos list` then shows it as {scenario}, and "
        f"`model-chaos run -k {scenario}` runs it."
    )

    text = _TEMPLATE.format(
        summary=_summary(shrunk, loader),
        found=_wrap(_found(result, command)),
        how=_wrap(_HOW),
        keep=_wrap(keep),
        steps=_steps_literal(shrunk.steps),
        name=name,
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    path.write_text(text, encoding="utf-8")
    return path


def _summary(shrunk: Shrunk, loader: str) -> str:
    checks = ", ".join(shrunk.failed)
    if not shrunk.steps:
        return f"The {loader} loader fails {checks} without any fault."
    count = _steps(len(shrunk.steps)).capitalize()
    return f"{count} that the {loader} loader fails: {checks}."


def _found(result: SequenceResult, command: list[str]) -> str:
    shrunk = result.shrunk
    assert shrunk is not None
    return (
        f"Found by `{shlex.join(command)}` in the sequence of seed {result.seed}, "
        f"{_steps(len(shrunk.original))} long, and shrunk to "
        f"{_steps(len(shrunk.steps))} in {len(shrunk.trials)} runs of the target. "
        + _confirmation(shrunk)
    )


def write_explore_json(
    path: Path, run: dict[str, Any], results: list[SequenceResult]
) -> None:
    """Write explore.json: the run's options and every sequence with its verdict."""
    document = {
        "run": run,
        "summary": {
            "sequences": len(results),
            "failed": sum(result.failed for result in results),
        },
        "sequences": [_sequence_json(result) for result in results],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def render_summary(results: list[SequenceResult]) -> str:
    """Return the lines ``model-chaos explore`` prints when it is done."""
    failed = [result for result in results if result.failed]
    runs = f"{len(results)} sequence" + ("" if len(results) == 1 else "s")
    lines = [f"{runs} run, {len(failed)} failed."]
    for result in failed:
        shrunk = result.shrunk
        assert shrunk is not None
        lines.append(
            f"seed {result.seed}: failed {', '.join(shrunk.failed)}; shrunk from "
            f"{_steps(len(shrunk.original))} to {_steps(len(shrunk.steps))}, "
            f"{_short_confirmation(shrunk)}:"
        )
        lines += [f"  {step.describe()}" for step in shrunk.steps] or ["  (no step)"]
        if result.module is not None:
            lines.append(f"  scenario module: {result.module}")
    return "\n".join(lines)


def _sequence_json(result: SequenceResult) -> dict[str, Any]:
    data: dict[str, Any] = {
        "seed": result.seed,
        "steps": [step.describe() for step in result.first.steps],
        "failed": list(result.first.failed),
        "details": result.first.details,
        "seconds": round(result.first.seconds, 2),
    }
    shrunk = result.shrunk
    if shrunk is not None:
        data["shrunk"] = {
            "steps": [step.describe() for step in shrunk.steps],
            "confirmed": shrunk.confirmed,
            "exhausted": shrunk.exhausted,
            "runs": [trial.to_json() for trial in shrunk.trials],
            "module": str(result.module) if result.module else None,
        }
    return data


def _confirmation(shrunk: Shrunk) -> str:
    if shrunk.confirmed:
        text = "A final run of the shortest sequence failed the same checks again."
    else:
        text = (
            "A final run of the shortest sequence did not fail the same checks "
            "again: the failure depends on timing, so run this module with "
            "--repeat to measure how often it fails."
        )
    if shrunk.exhausted:
        text += " The run budget ended the shrinking early; a shorter one may exist."
    return text


def _short_confirmation(shrunk: Shrunk) -> str:
    text = "confirmed" if shrunk.confirmed else "not confirmed (timing)"
    return text + " by a final run" + (", budget used up" if shrunk.exhausted else "")


def _steps(count: int) -> str:
    return f"{count} step" + ("" if count == 1 else "s")


def _steps_literal(steps: tuple[Step, ...]) -> str:
    if not steps:
        return "()"
    return "(\n" + "".join(f"    {step.source()},\n" for step in steps) + ")"


def _wrap(paragraph: str) -> str:
    return textwrap.fill(paragraph, width=80, break_on_hyphens=False)
