"""The publisher: manifests, signing, atomic replacement, rotation and its CLI."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import sklearn
from service_support import canary_rows, dump, trained_models

from target_service.manifest import (
    library_versions,
    manifest_path,
    read_manifest,
    signature_valid,
    write_bytes_atomic,
)
from target_service.publish import (
    PublishError,
    build_manifest,
    main,
    make_canary_inputs,
    publish,
)

KEY = b"publisher-test-key"


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Model files to publish: two forests and a logistic regression pipeline."""
    models = trained_models()
    directory = tmp_path_factory.mktemp("sources")
    paths = {
        "forest": directory / "forest.pkl",
        "other_forest": directory / "other_forest.pkl",
        "logistic": directory / "logistic.pkl",
    }
    dump(models.forest, paths["forest"])
    dump(models.other_forest, paths["other_forest"])
    dump(models.logistic, paths["logistic"])
    return paths


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_publish_writes_file_and_manifest(
    tmp_path: Path, sources: dict[str, Path]
) -> None:
    manifest = publish(tmp_path, "global_model", sources["forest"])

    target = tmp_path / "global_model.pkl"
    assert target.read_bytes() == sources["forest"].read_bytes()
    assert read_manifest(target) == manifest
    assert manifest.model == "global_model"
    assert manifest.sha256 == sha256_of(sources["forest"])
    assert manifest.size == sources["forest"].stat().st_size
    assert manifest.model_class == "sklearn.ensemble._forest.RandomForestClassifier"
    assert manifest.sklearn_version == sklearn.__version__
    assert manifest.hmac is None


def test_publish_records_canary_outputs(
    tmp_path: Path, sources: dict[str, Path]
) -> None:
    rows = canary_rows()

    manifest = publish(
        tmp_path, "champion_model", sources["logistic"], canary_inputs=rows
    )

    model = trained_models().logistic
    assert manifest.canary.inputs == rows
    assert manifest.canary.probabilities == model.predict_proba(np.array(rows)).tolist()
    assert manifest.canary.predictions == model.predict(np.array(rows)).tolist()


def test_publish_default_canary_inputs(
    tmp_path: Path, sources: dict[str, Path]
) -> None:
    manifest = publish(tmp_path, "global_model", sources["forest"])

    assert manifest.canary.inputs == make_canary_inputs(trained_models().forest)


def test_publish_signs_with_key(tmp_path: Path, sources: dict[str, Path]) -> None:
    publish(tmp_path, "global_model", sources["forest"], key=KEY)

    manifest = read_manifest(tmp_path / "global_model.pkl")
    assert signature_valid(manifest, KEY)
    assert not signature_valid(manifest, b"another key")


def test_publish_leaves_no_temporary_files(
    tmp_path: Path, sources: dict[str, Path]
) -> None:
    publish(tmp_path, "global_model", sources["forest"], key=KEY)
    publish(tmp_path, "global_model", sources["other_forest"], key=KEY)

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "global_model.pkl",
        "global_model.pkl.manifest.json",
    ]


def test_publish_replaces_file_by_rename(
    tmp_path: Path, sources: dict[str, Path]
) -> None:
    target = tmp_path / "global_model.pkl"
    publish(tmp_path, "global_model", sources["forest"])
    first_inode = target.stat().st_ino

    publish(tmp_path, "global_model", sources["other_forest"])

    assert target.stat().st_ino != first_inode
    assert target.read_bytes() == sources["other_forest"].read_bytes()


def test_concurrent_reader_sees_whole_files(
    tmp_path: Path, sources: dict[str, Path]
) -> None:
    target = tmp_path / "global_model.pkl"
    versions = [sources["forest"].read_bytes(), sources["other_forest"].read_bytes()]
    write_bytes_atomic(target, versions[0])
    expected = {hashlib.sha256(data).hexdigest() for data in versions}
    seen: list[str] = []
    done = threading.Event()

    def read_continuously() -> None:
        while not done.is_set():
            seen.append(hashlib.sha256(target.read_bytes()).hexdigest())

    reader = threading.Thread(target=read_continuously)
    reader.start()
    try:
        for index in range(20):
            write_bytes_atomic(target, versions[index % 2])
    finally:
        done.set()
        reader.join()

    assert seen
    assert set(seen) <= expected


def test_rotate_backup_keeps_previous(tmp_path: Path, sources: dict[str, Path]) -> None:
    first = publish(tmp_path, "global_model", sources["forest"], key=KEY)

    second = publish(
        tmp_path, "global_model", sources["other_forest"], key=KEY, rotate_backup=True
    )

    backup = tmp_path / "global_model.pkl.backup"
    assert backup.read_bytes() == sources["forest"].read_bytes()
    assert read_manifest(backup) == first
    assert signature_valid(read_manifest(backup), KEY)
    assert read_manifest(tmp_path / "global_model.pkl") == second


def test_rotate_backup_without_primary(
    tmp_path: Path, sources: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="target_service.publish")

    publish(tmp_path, "global_model", sources["forest"], rotate_backup=True)

    assert not (tmp_path / "global_model.pkl.backup").exists()
    assert "nothing to rotate" in caplog.text


def test_rotate_backup_rejects_mismatched_primary(
    tmp_path: Path, sources: dict[str, Path]
) -> None:
    publish(tmp_path, "global_model", sources["forest"])
    (tmp_path / "global_model.pkl").write_bytes(b"half written")

    with pytest.raises(PublishError, match="does not match its manifest"):
        publish(tmp_path, "global_model", sources["other_forest"], rotate_backup=True)

    assert not (tmp_path / "global_model.pkl.backup").exists()


def test_rotate_backup_rejects_missing_manifest(
    tmp_path: Path, sources: dict[str, Path]
) -> None:
    publish(tmp_path, "global_model", sources["forest"])
    manifest_path(tmp_path / "global_model.pkl").unlink()

    with pytest.raises(PublishError, match="its manifest is unusable"):
        publish(tmp_path, "global_model", sources["other_forest"], rotate_backup=True)


def test_publish_as_backup(tmp_path: Path, sources: dict[str, Path]) -> None:
    manifest = publish(tmp_path, "global_model", sources["forest"], as_backup=True)

    backup = tmp_path / "global_model.pkl.backup"
    assert backup.read_bytes() == sources["forest"].read_bytes()
    assert read_manifest(backup) == manifest
    assert not (tmp_path / "global_model.pkl").exists()


def test_publish_rejects_rotate_with_backup(
    tmp_path: Path, sources: dict[str, Path]
) -> None:
    with pytest.raises(PublishError, match="cannot be combined"):
        publish(
            tmp_path,
            "global_model",
            sources["forest"],
            rotate_backup=True,
            as_backup=True,
        )


def test_publish_rejects_bad_name(tmp_path: Path, sources: dict[str, Path]) -> None:
    with pytest.raises(PublishError, match=r"invalid model name '\.\./escape'"):
        publish(tmp_path, "../escape", sources["forest"])


def test_publish_rejects_non_model(tmp_path: Path) -> None:
    source = tmp_path / "page.html"
    source.write_text("<html>502 Bad Gateway</html>")

    with pytest.raises(PublishError, match="is not a loadable joblib model file"):
        publish(tmp_path, "global_model", source)


def test_publish_rejects_object_without_predict(tmp_path: Path) -> None:
    source = tmp_path / "dict.pkl"
    dump({"weights": [1, 2]}, source)

    with pytest.raises(
        PublishError, match="contains a dict, which has no predict method"
    ):
        publish(tmp_path, "global_model", source)


def test_make_canary_inputs_shape() -> None:
    rows = make_canary_inputs(trained_models().forest)

    assert len(rows) == 8
    assert {len(row) for row in rows} == {30}


def test_make_canary_inputs_deterministic() -> None:
    forest = trained_models().forest

    assert make_canary_inputs(forest, seed=3) == make_canary_inputs(forest, seed=3)
    assert make_canary_inputs(forest, seed=3) != make_canary_inputs(forest, seed=4)


def test_make_canary_inputs_tell_models_apart() -> None:
    models = trained_models()
    rows = np.array(make_canary_inputs(models.forest))

    first = models.forest.predict_proba(rows)
    second = models.other_forest.predict_proba(rows)

    assert not np.allclose(first, second)


def test_make_canary_inputs_needs_feature_count() -> None:
    with pytest.raises(PublishError, match="the dict has no n_features_in_"):
        make_canary_inputs({})


def test_build_manifest_version_override(sources: dict[str, Path]) -> None:
    data = sources["forest"].read_bytes()

    manifest = build_manifest(
        "global_model",
        data,
        trained_models().forest,
        canary_rows(),
        versions={"sklearn_version": "1.2.2"},
    )

    assert manifest.sklearn_version == "1.2.2"
    assert manifest.numpy_version == library_versions()["numpy_version"]


def test_build_manifest_rejects_unknown_version_key(sources: dict[str, Path]) -> None:
    with pytest.raises(PublishError, match=r"unknown version keys \['torch_version'\]"):
        build_manifest(
            "global_model",
            sources["forest"].read_bytes(),
            trained_models().forest,
            canary_rows(),
            versions={"torch_version": "2.0"},
        )


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "must be a non-empty list of rows"),
        ([[1.0, 2.0], [3.0]], "are not a table of numbers"),
        ([[float("nan")] * 30], "must be finite numbers"),
    ],
)
def test_build_manifest_rejects_bad_canary(
    sources: dict[str, Path], rows: list[list[float]], message: str
) -> None:
    with pytest.raises(PublishError, match=message):
        build_manifest(
            "global_model",
            sources["forest"].read_bytes(),
            trained_models().forest,
            rows,
        )


def test_build_manifest_rejects_wrong_width(sources: dict[str, Path]) -> None:
    with pytest.raises(PublishError, match="the model failed on its canary inputs"):
        build_manifest(
            "global_model",
            sources["forest"].read_bytes(),
            trained_models().forest,
            [[1.0, 2.0]],
        )


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the publisher's CLI in this process; return its status and stderr."""
    try:
        status = main(args)
    except SystemExit as stop:
        status = int(stop.code or 0)
    return status, capsys.readouterr().err


def test_cli_publishes_with_key_and_canary_file(
    tmp_path: Path, sources: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "hmac.key"
    key_file.write_bytes(KEY + b"\n")
    canary_file = tmp_path / "canary.json"
    canary_file.write_text(json.dumps(canary_rows(3)))
    model_dir = tmp_path / "models"
    model_dir.mkdir()

    status, _ = run_main(
        [
            "--model-dir",
            str(model_dir),
            "--name",
            "global_model",
            "--source",
            str(sources["forest"]),
            "--hmac-key-file",
            str(key_file),
            "--canary-inputs",
            str(canary_file),
        ],
        capsys,
    )

    manifest = read_manifest(model_dir / "global_model.pkl")
    assert status == 0
    assert signature_valid(manifest, KEY)
    assert manifest.canary.inputs == canary_rows(3)


def cli_args(model_dir: Path, source: Path, *extra: str) -> list[str]:
    return [
        "--model-dir",
        str(model_dir),
        "--name",
        "global_model",
        "--source",
        str(source),
        *extra,
    ]


def test_cli_missing_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run_main(cli_args(tmp_path, tmp_path / "nope.pkl"), capsys)

    assert status == 2
    assert f"--source {tmp_path / 'nope.pkl'} is not a file" in err


def test_cli_bad_name(
    tmp_path: Path, sources: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = cli_args(tmp_path, sources["forest"])
    args[3] = "global model"

    status, err = run_main(args, capsys)

    assert status == 2
    assert "--name: invalid model name 'global model'" in err


def test_cli_unreadable_key(
    tmp_path: Path, sources: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.key"

    status, err = run_main(
        cli_args(tmp_path, sources["forest"], "--hmac-key-file", str(missing)), capsys
    )

    assert status == 2
    assert f"--hmac-key-file {missing} cannot be used" in err
    assert "No such file or directory" in err


def test_cli_bad_canary_file(
    tmp_path: Path, sources: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    canary_file = tmp_path / "canary.json"
    canary_file.write_text('{"rows": 1}')

    status, err = run_main(
        cli_args(tmp_path, sources["forest"], "--canary-inputs", str(canary_file)),
        capsys,
    )

    assert status == 2
    assert "must hold a non-empty JSON list of rows" in err


def test_cli_missing_model_dir(
    tmp_path: Path, sources: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = run_main(cli_args(tmp_path / "nowhere", sources["forest"]), capsys)

    assert status == 2
    assert "is not a directory: create it first" in err


def test_cli_rotate_with_backup(
    tmp_path: Path, sources: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = run_main(
        cli_args(tmp_path, sources["forest"], "--rotate-backup", "--as-backup"), capsys
    )

    assert status == 2
    assert "--rotate-backup and --as-backup cannot be combined" in err


def test_cli_source_not_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "pointer.pkl"
    source.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\n")

    status, err = run_main(cli_args(tmp_path, source), capsys)

    assert status == 1
    assert f"publish failed: {source} is not a loadable joblib model file" in err


def test_module_entry_point(tmp_path: Path, sources: dict[str, Path]) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "target_service.publish",
            *cli_args(tmp_path, sources["forest"], "--as-backup"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    backup = tmp_path / "global_model.pkl.backup"
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{backup} {sha256_of(sources['forest'])}"
    assert read_manifest(backup).sha256 == sha256_of(sources["forest"])
