"""``model-chaos sweep`` as a user runs it: exit status, messages, the report folder."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import pytest
from cli_support import model_chaos
from sweep_support import canary_inputs, write_forest

from harness.cli import main
from harness.models import ModelSet
from target_service.publish import publish

# A sweep small enough for a few seconds, damage aimed at the node arrays.
SMALL = (
    "--kinds",
    "truncate,array",
    "--flips",
    "30",
    "--stride",
    "2000",
    "--seed",
    "4",
)


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small forest, published with a manifest that records its canary rows."""
    source = write_forest(tmp_path_factory.mktemp("source"))
    model_dir = tmp_path_factory.mktemp("published")
    publish(model_dir, "global_model", source, canary_inputs=canary_inputs())
    return model_dir / "global_model.pkl"


def sweep(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``model-chaos sweep`` in this process; return the status and stderr."""
    code = main(["sweep", *args])
    return code, capsys.readouterr().err


def test_hardened_sweep_exits_0(forest: Path, tmp_path: Path) -> None:
    result = model_chaos("sweep", str(forest), *SMALL, "--report-dir", str(tmp_path))

    document = json.loads((tmp_path / "latest" / "sweep.json").read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    assert document["loader"] == "hardened"
    assert document["canary"]["source"] == "manifest"
    assert document["totals"]["dangerous"] == 0
    assert "no dangerous copy: the hardened loader rejected" in result.stdout
    assert f"report: {tmp_path}" in result.stdout
    assert (tmp_path / "latest").is_symlink()


def test_basic_sweep_exits_1(forest: Path, tmp_path: Path) -> None:
    result = model_chaos(
        "sweep", str(forest), "--loader", "basic", *SMALL, "--report-dir", str(tmp_path)
    )

    document = json.loads((tmp_path / "latest" / "sweep.json").read_text())
    assert result.returncode == 1, result.stdout + result.stderr
    assert document["totals"]["dangerous"] > 0
    assert "dangerous copies:" in result.stdout
    assert "kind      cases  cases/s  rejected" in result.stdout


def test_sweep_without_copies_exits_2(forest: Path, tmp_path: Path) -> None:
    # Passing would claim the loader survived damage it never saw.
    result = model_chaos(
        "sweep",
        str(forest),
        "--kinds",
        "bitflip,compressed",
        "--flips",
        "0",
        "--report-dir",
        str(tmp_path),
    )

    assert result.returncode == 2
    assert "the sweep made no damaged copy (bitflip: no copy drawn; compressed:" in (
        result.stderr
    )


def test_missing_model_file_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.pkl"

    result = model_chaos("sweep", str(missing), "--report-dir", str(tmp_path))

    assert result.returncode == 2
    assert f"model file {missing} not found" in result.stderr
    assert "pass the path of a joblib model file" in result.stderr


def test_unloadable_model_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a pickle at all")

    code, stderr = sweep(str(garbage), "--report-dir", str(tmp_path), capsys=capsys)

    assert code == 2
    assert f"cannot load model file {garbage}" in stderr
    assert "pass a joblib file of a fitted model" in stderr


def test_file_without_predict_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dict.pkl"
    joblib.dump({"not": "a model"}, path)

    code, stderr = sweep(str(path), "--report-dir", str(tmp_path), capsys=capsys)

    assert code == 2
    assert "contains a dict without predict and predict_proba" in stderr


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("--flips", "-5"), "--flips -5: pass 0 or more"),
        (("--stride", "0"), "--stride 0: pass 1 or more"),
        (("--timeout", "-1"), "--timeout -1.0: pass a number of seconds above 0"),
        (("--kinds", "truncate,bitflips"), "--kinds: unknown kind 'bitflips'"),
        (("--kinds", ","), "--kinds ',': no kind given"),
    ],
)
def test_bad_option_exits_2(
    forest: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: tuple[str, str],
    message: str,
) -> None:
    code, stderr = sweep(
        str(forest), *option, "--report-dir", str(tmp_path), capsys=capsys
    )

    assert code == 2
    assert message in stderr
    assert not (tmp_path / "latest").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("--flips", "many"), "argument --flips: invalid int value: 'many'"),
        (("--loader", "bogus"), "invalid choice: 'bogus'"),
    ],
)
def test_unparsable_option_exits_2(
    forest: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: tuple[str, str],
    message: str,
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", str(forest), *option])

    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_unknown_kind_names_choices(
    forest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, stderr = sweep(
        str(forest), "--kinds", "bogus", "--report-dir", str(tmp_path), capsys=capsys
    )

    assert "truncate, bitflip, opcode, compressed, array" in stderr


def test_report_dir_not_creatable_exits_2(
    forest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    code, stderr = sweep(
        str(forest), "--report-dir", str(blocker / "out"), capsys=capsys
    )

    assert code == 2
    assert f"--report-dir {blocker / 'out'}: cannot create it" in stderr


def test_sweep_defaults_to_builtin_model(model_set: ModelSet, tmp_path: Path) -> None:
    small = ("--kinds", "truncate", "--stride", "300000")
    result = model_chaos("sweep", *small, "--report-dir", str(tmp_path))

    document = json.loads((tmp_path / "latest" / "sweep.json").read_text())
    builtin = model_set.get("global_model", "v1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert document["model"]["sha256"] == builtin.sha256
