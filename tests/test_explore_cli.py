"""``model-chaos explore`` as a user runs it, and the scenario module it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_support import RUN_TIMEOUT, model_chaos

from harness.cli import main
from harness.sequence import Step

# The first three steps of seed 120 damage the global model's node array,
# write random bytes over the champion and restart: the basic loader loads the
# damaged global model at start-up and crashes on the first predict.
FOUND = ("--seed", "120", "--runs", "1", "--steps", "3", "--recover-within", "3")

# Both runs of the written module share one worker: they need the explore run.
pytestmark = pytest.mark.xdist_group("explore-cli")


@pytest.fixture(scope="module")
def basic_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    report_dir = tmp_path_factory.mktemp("explore")
    result = model_chaos(
        "explore", "--loader", "basic", *FOUND, "--report-dir", str(report_dir)
    )
    document = json.loads((report_dir / "latest" / "explore.json").read_text())
    return {"result": result, "document": document}


def test_basic_exits_1_and_shrinks(basic_run: dict[str, Any]) -> None:
    result = basic_run["result"]
    sequence = basic_run["document"]["sequences"][0]

    assert result.returncode == 1, result.stderr
    assert sequence["seed"] == 120
    assert sequence["failed"] == ["stayed_up", "recovered"]
    assert sequence["shrunk"]["steps"] == [
        "child_out_of_range global_model primary",
        "kill and restart the target",
    ]
    assert sequence["shrunk"]["confirmed"] is True
    assert "shrunk from 3 steps to 2 steps, confirmed" in result.stdout
    assert "run 1: 3 steps, failed stayed_up, recovered" in result.stderr


def test_report_names_the_replay_command(basic_run: dict[str, Any]) -> None:
    run = basic_run["document"]["run"]

    assert run["command"] == (
        "model-chaos explore --loader basic --seed 120 --runs 1 --steps 3 "
        "--recover-within 3"
    )
    assert run["versions"]["scikit-learn"]
    assert basic_run["document"]["summary"] == {"sequences": 1, "failed": 1}


def written_module(basic_run: dict[str, Any]) -> Path:
    return Path(basic_run["document"]["sequences"][0]["shrunk"]["module"])


def test_module_holds_the_shrunk_steps(basic_run: dict[str, Any]) -> None:
    source = written_module(basic_run).read_text()
    namespace: dict[str, Any] = {}
    exec(compile(source, "module", "exec"), namespace)

    assert namespace["STEPS"] == (
        Step("child_out_of_range", "global_model", "primary"),
        Step("restart"),
    )
    assert "model-chaos explore --loader basic --seed 120" in source


def run_module(module: Path, loader: str, report_dir: Path) -> int:
    """Run a written scenario module with pytest, as a copied-in scenario runs."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(module),
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(module.parent),
            "--loader",
            loader,
            "--recover-within",
            "3",
            "--report-dir",
            str(report_dir),
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    return result.returncode


@pytest.mark.parametrize(("loader", "code"), [("basic", 1), ("hardened", 0)])
def test_module_is_a_regression_test(
    basic_run: dict[str, Any], tmp_path: Path, loader: str, code: int
) -> None:
    assert run_module(written_module(basic_run), loader, tmp_path) == code


def test_hardened_exits_0(tmp_path: Path) -> None:
    result = model_chaos(
        "explore", "--loader", "hardened", *FOUND, "--report-dir", str(tmp_path)
    )

    document = json.loads((tmp_path / "latest" / "explore.json").read_text())
    assert result.returncode == 0, result.stderr
    assert document["sequences"][0]["failed"] == []
    assert "shrunk" not in document["sequences"][0]
    assert "1 sequence run, 0 failed." in result.stdout


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("--runs", "0"), "--runs 0: pass 1 or more"),
        (("--steps", "-1"), "--steps -1: pass 1 or more"),
        (("--budget", "0"), "--budget 0: pass 1 or more runs"),
        (("--recover-within", "0"), "--recover-within 0.0: pass a number of seconds"),
    ],
)
def test_bad_numbers_exit_2(
    option: tuple[str, str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["explore", *option, "--report-dir", str(tmp_path)])

    assert code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
