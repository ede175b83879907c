"""What explore leaves behind: module text, explore.json and the printed summary."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from harness.sequence import Step
from harness.sequence.explore import SequenceResult, Shrunk, Trial
from harness.sequence.report import (
    module_name,
    render_summary,
    write_explore_json,
    write_module,
)

DAMAGE = Step("leaf_values", "global_model", "primary")
NOISE = Step("delete", "champion_model", "backup")
COMMAND = ["model-chaos", "explore", "--loader", "basic", "--seed", "5", "--runs", "1"]


def result(steps: tuple[Step, ...], *, confirmed: bool = True) -> SequenceResult:
    original = (NOISE, DAMAGE, NOISE)
    failed = ("no_silent_corruption",)
    trials = [Trial(steps, failed, 1.0), Trial(steps, failed, 1.0)]
    shrunk = Shrunk(original, failed, steps, trials, confirmed, exhausted=False)
    return SequenceResult(5, Trial(original, failed, 2.0), shrunk)


def test_module_is_valid_python_with_the_steps(tmp_path: Path) -> None:
    path = write_module(tmp_path, result((DAMAGE,)), loader="basic", command=COMMAND)
    tree = ast.parse(path.read_text())

    assert path.name == module_name((DAMAGE,)) + ".py"
    docstring = ast.get_docstring(tree) or ""
    assert docstring.startswith("1 step that the basic loader fails: ")
    assert "shrunk to 1 step in 2 runs" in " ".join(docstring.split())
    assert 'Step("leaf_values", "global_model", "primary"),' in path.read_text()


def test_module_name_depends_on_the_steps_only() -> None:
    assert module_name((DAMAGE,)) == module_name((DAMAGE,))
    assert module_name((DAMAGE,)) != module_name((NOISE,))
    assert module_name(()).startswith("test_sequence_")


def test_no_step_says_so(tmp_path: Path) -> None:
    path = write_module(tmp_path, result(()), loader="basic", command=COMMAND)

    text = path.read_text()
    assert text.startswith('"""The basic loader fails no_silent_corruption without')
    assert "STEPS = ()" in text


def test_unconfirmed_module_says_it_depends_on_timing(tmp_path: Path) -> None:
    shrunk = result((DAMAGE,), confirmed=False)
    path = write_module(tmp_path, shrunk, loader="basic", command=COMMAND)

    assert "depends on timing" in " ".join(path.read_text().split())


def test_explore_json_lists_every_sequence(tmp_path: Path) -> None:
    passed = SequenceResult(6, Trial((NOISE,), (), 1.5))
    path = tmp_path / "explore.json"

    write_explore_json(path, {"seed": 5}, [result((DAMAGE,)), passed])

    document = json.loads(path.read_text())
    assert document["summary"] == {"sequences": 2, "failed": 1}
    first, second = document["sequences"]
    assert first["shrunk"]["steps"] == ["leaf_values global_model primary"]
    assert len(first["shrunk"]["runs"]) == 2
    assert second == {
        "seed": 6,
        "steps": ["delete champion_model backup"],
        "failed": [],
        "details": {},
        "seconds": 1.5,
    }


def test_summary_lists_shrunk_steps() -> None:
    text = render_summary([result((DAMAGE,))])

    assert text.splitlines() == [
        "1 sequence run, 1 failed.",
        "seed 5: failed no_silent_corruption; shrunk from 3 steps to 1 step, "
        "confirmed by a final run:",
        "  leaf_values global_model primary",
    ]
