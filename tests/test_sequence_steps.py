"""Fault sequence steps: drawn from a seed, and applied to a live target."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.checks import Bounds
from harness.faults.format import KINDS as FORMAT_DAMAGE
from harness.models import ModelSet
from harness.scenario import Scenario, ScenarioSettings
from harness.sequence import ACTIONS, CHECKS, Step, draw_sequence, run_sequence
from harness.sequence.steps import check_applicable, format_kinds
from harness.targets.process import ProcessTarget


def test_draw_is_deterministic_per_seed(model_set: ModelSet) -> None:
    first = draw_sequence(7, model_set, 8)

    assert draw_sequence(7, model_set, 8) == first
    assert len(first) == 8
    assert draw_sequence(8, model_set, 8) != first


def test_many_seeds_draw_every_action(model_set: ModelSet) -> None:
    drawn = [step for seed in range(80) for step in draw_sequence(seed, model_set, 6)]

    assert {step.action for step in drawn} == set(ACTIONS)
    # The champion is a linear model: no tree damage is drawn for it.
    champion = {step.action for step in drawn if step.model == "champion_model"}
    assert champion.isdisjoint({"child_loop", "child_out_of_range"})
    assert "leaf_values" in champion


def test_linear_model_takes_two_kinds(model_set: ModelSet) -> None:
    assert format_kinds(model_set, "champion_model") == (
        "leaf_values",
        "attribute_removed",
    )
    assert format_kinds(model_set, "global_model") == FORMAT_DAMAGE


def test_step_for_another_model_skips(model_set: ModelSet) -> None:
    forest_only = dataclasses.replace(model_set, names=("global_model",))

    with pytest.raises(pytest.skip.Exception, match="needs champion_model"):
        check_applicable(forest_only, [Step("delete", "champion_model", "backup")])


def test_tree_damage_on_linear_skips(model_set: ModelSet) -> None:
    steps = [Step("child_loop", "champion_model", "primary")]

    with pytest.raises(pytest.skip.Exception, match="takes leaf_values"):
        check_applicable(model_set, steps)


@pytest.mark.parametrize(
    "step",
    [
        Step("restart"),
        Step("pause"),
        Step("publish", "champion_model", version="v1"),
        Step("torn_write", "global_model", version="v2"),
        Step("truncate", "global_model", "backup"),
        Step("child_loop", "global_model", "primary"),
    ],
)
def test_source_makes_the_same_step(step: Step) -> None:
    assert eval(step.source(), {"Step": Step}) == step


def test_unknown_action_names_the_known_ones() -> None:
    with pytest.raises(
        ValueError, match="unknown step 'melt'; expected one of truncate"
    ):
        Step("melt", "global_model")


def test_unknown_slot_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown slot 'spare'"):
        Step("truncate", "global_model", "spare")


def test_recovered_is_always_checked() -> None:
    assert "recovered" in CHECKS


def hardened_scenario(model_set: ModelSet, tmp_path: Path) -> Scenario:
    settings = ScenarioSettings(loader="hardened", bounds=Bounds(recover_within=5.0))
    return Scenario(
        "sequence",
        model_set=model_set,
        settings=settings,
        target_factory=ProcessTarget,
        seed=1,
        artifacts_dir=tmp_path / "files",
    )


def test_hardened_target_survives_a_sequence(
    model_set: ModelSet, tmp_path: Path
) -> None:
    steps = (
        Step("garbage", "global_model", "primary"),
        Step("child_out_of_range", "global_model", "backup"),
        Step("restart"),
        Step("truncate", "global_model", "backup"),
        Step("publish", "champion_model", version="v1"),
        Step("torn_write", "global_model", version="v2"),
        Step("pause"),
    )
    scenario = hardened_scenario(model_set, tmp_path)
    try:
        run_sequence(scenario, steps)
        results = scenario.verify(*CHECKS)
    finally:
        scenario.close()

    assert [result.name for result in results] == list(CHECKS)
    assert scenario.metrics["steps"][0] == "garbage global_model primary"
    kinds = [fault.kind for fault in scenario.timeline.faults]
    assert kinds[:2] == ["garbage", "damage_format"]
    assert "restart" in kinds
    assert kinds[-2:] == ["torn_write", "pause"]
    torn = scenario.timeline.faults[-2]
    assert torn.params["load_attempt_seen"] is True


def test_inapplicable_step_is_skipped(model_set: ModelSet, tmp_path: Path) -> None:
    steps = (
        Step("delete", "global_model", "backup"),
        Step("truncate", "global_model", "backup"),
    )
    scenario = hardened_scenario(model_set, tmp_path)
    try:
        run_sequence(scenario, steps)
        scenario.verify(*CHECKS)
    finally:
        scenario.close()

    skipped = [e for e in scenario.timeline.events if e.kind == "step_skipped"]
    assert [e.detail["index"] for e in skipped] == [1]
    assert "cannot truncate" in skipped[0].detail["reason"]
