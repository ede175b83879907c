"""The reference service as a real process: HTTP endpoints, loaders and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import sklearn
from service_support import (
    RELOAD_TIMEOUT,
    ServiceProcess,
    alive,
    canary_rows,
    child_pids,
    install,
    manifest_for,
    other_version_pickle,
    trained_models,
    wait_for,
    write_pickles,
)

from target_service.manifest import sha256_bytes
from target_service.publish import publish

KEY = b"service-test-key"
MODELS = ("global_model", "champion_model")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_pickles(tmp_path_factory.mktemp("sources"))


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "hmac.key"
    path.write_bytes(KEY + b"\n")
    return path


def publish_model(model_dir: Path, name: str, source: Path, **options: Any) -> None:
    publish(model_dir, name, source, key=KEY, canary_inputs=canary_rows(), **options)


def publish_good(model_dir: Path, sources: dict[str, Path]) -> None:
    publish_model(model_dir, "global_model", sources["forest"])
    publish_model(model_dir, "champion_model", sources["logistic"])


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Any]:
    """Start services for one test and kill every one of them afterwards."""
    services: list[ServiceProcess] = []

    def start(model_dir: Path, *args: str) -> ServiceProcess:
        log = tmp_path / f"service-{len(services)}.log"
        service = ServiceProcess(model_dir, log, *args)
        services.append(service)
        return service.start()

    yield start
    for service in services:
        service.close()


def hardened_args(key_file: Path, *extra: str) -> list[str]:
    return ["--hmac-key-file", str(key_file), "--poll-interval", "0.1", *extra]


# Endpoints, on one service with two good models.


@pytest.fixture(scope="module")
def good_service(
    tmp_path_factory: pytest.TempPathFactory,
    sources: dict[str, Path],
    key_file: Path,
) -> Iterator[ServiceProcess]:
    directory = tmp_path_factory.mktemp("good")
    model_dir = directory / "models"
    model_dir.mkdir()
    publish_good(model_dir, sources)
    service = ServiceProcess(
        model_dir, directory / "service.log", *hardened_args(key_file)
    )
    try:
        yield service.start()
    finally:
        service.close()


def test_health_reports_models(
    good_service: ServiceProcess, sources: dict[str, Path]
) -> None:
    body = good_service.health()

    assert body["status"] == "healthy"
    assert body["integrity"] == "hmac"
    assert body["loader"] == "hardened"
    assert body["sklearn_version"] == sklearn.__version__
    assert set(body["models"]) == set(MODELS)
    entry = body["models"]["global_model"]
    assert entry["tier"] == "primary"
    assert entry["version"] == sha256_bytes(sources["forest"].read_bytes())
    assert entry["source"].endswith("/models/global_model.pkl")
    assert entry["load_attempts"] == 1
    assert entry["last_error"] is None
    assert entry["loaded_at"] is not None


def test_predict_default_model(
    good_service: ServiceProcess, sources: dict[str, Path]
) -> None:
    rows = canary_rows(4)
    forest = trained_models().forest

    response = good_service.predict(rows)

    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "global_model"
    assert body["tier"] == "primary"
    assert body["version"] == sha256_bytes(sources["forest"].read_bytes())
    assert body["predictions"] == forest.predict(np.array(rows)).tolist()
    assert body["probabilities"] == forest.predict_proba(np.array(rows)).tolist()


def test_predict_named_model(good_service: ServiceProcess) -> None:
    rows = canary_rows(2)
    logistic = trained_models().logistic

    response = good_service.predict(rows, model="champion_model")

    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "champion_model"
    assert np.allclose(body["probabilities"], logistic.predict_proba(np.array(rows)))


def test_predict_unknown_model(good_service: ServiceProcess) -> None:
    response = good_service.predict(canary_rows(1), model="nope")

    assert response.status_code == 404
    assert response.json() == {
        "detail": "unknown model 'nope': this service serves "
        "global_model, champion_model"
    }


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"instances": []},
        {"instances": "rows"},
        {"instances": [["1.0"] * 30]},
        {"instances": [[True] * 30]},
        {"instances": [[1.0] * 30], "extra": 1},
        {"model": 3, "instances": [[1.0] * 30]},
    ],
    ids=[
        "no-instances",
        "empty",
        "string",
        "string-values",
        "bools",
        "extra",
        "model-type",
    ],
)
def test_predict_rejects_malformed_body(
    good_service: ServiceProcess, body: dict[str, Any]
) -> None:
    response = requests.post(f"{good_service.url}/predict", json=body, timeout=10)

    assert response.status_code == 422


def test_predict_rejects_invalid_json(good_service: ServiceProcess) -> None:
    response = requests.post(
        f"{good_service.url}/predict",
        data=b"{not json",
        headers={"content-type": "application/json"},
        timeout=10,
    )

    assert response.status_code == 422


def test_predict_rejects_nan(good_service: ServiceProcess) -> None:
    response = requests.post(
        f"{good_service.url}/predict",
        data=b'{"instances": [[NaN]]}',
        headers={"content-type": "application/json"},
        timeout=10,
    )

    assert response.status_code == 422


def test_predict_rejects_ragged_rows(good_service: ServiceProcess) -> None:
    response = good_service.predict([[1.0] * 30, [1.0, 2.0]])

    assert response.status_code == 422
    assert response.json() == {
        "detail": "instances must be non-empty rows of equal length, "
        "got rows of lengths [2, 30]"
    }


def test_predict_rejects_wrong_width(good_service: ServiceProcess) -> None:
    response = good_service.predict([[1.0, 2.0]])

    assert response.status_code == 422
    assert response.json() == {"detail": "the model expects 30 features per row, got 2"}


def test_metrics_exposes_counters(good_service: ServiceProcess) -> None:
    good_service.predict(canary_rows(1))

    response = requests.get(f"{good_service.url}/metrics", timeout=10)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'target_service_load_attempts_total{model="global_model"} 1.0' in text
    assert 'target_service_model_tier{model="global_model",tier="primary"} 1.0' in text
    assert 'target_service_model_tier{model="global_model",tier="dummy"} 0.0' in text
    assert 'target_service_request_duration_seconds_count{endpoint="/predict"}' in text
    assert 'target_service_request_duration_seconds_bucket{endpoint="/health"' in text


# The hardened loader in a running service.


def wait_for_model(
    service: ServiceProcess, condition: Any, model: str = "global_model"
) -> dict[str, Any]:
    return dict(wait_for(lambda: _matching(service, model, condition), RELOAD_TIMEOUT))


def _matching(
    service: ServiceProcess, model: str, condition: Any
) -> dict[str, Any] | None:
    entry = service.model_health(model)
    return entry if condition(entry) else None


def test_hot_reload_and_last_known_good(
    tmp_path: Path, sources: dict[str, Path], key_file: Path, service_factory: Any
) -> None:
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    publish_good(model_dir, sources)
    service = service_factory(model_dir, *hardened_args(key_file))
    second = sha256_bytes(sources["other_forest"].read_bytes())

    publish_model(model_dir, "global_model", sources["other_forest"])
    wait_for_model(
        service, lambda entry: entry["version"] == second and entry["tier"] == "primary"
    )
    assert service.health()["status"] == "healthy"
    response = service.predict(canary_rows(2))
    assert response.json()["version"] == second
    assert response.json()["probabilities"] == (
        trained_models().other_forest.predict_proba(np.array(canary_rows(2))).tolist()
    )

    # A corrupt file with a signed manifest that matches its bytes: only the
    # validation process can reject it.
    garbage = b"\x80\x04garbage" * 100
    manifest = manifest_for("global_model", garbage, trained_models().other_forest)
    install(model_dir, "global_model.pkl", garbage, manifest, KEY)
    # Between the two renames the watcher may see an update in progress first.
    entry = wait_for_model(
        service,
        lambda entry: (
            entry["tier"] == "last_known_good"
            and "update in progress" not in entry["last_error"]
        ),
    )
    assert entry["version"] == second
    assert entry["last_error"].startswith("global_model.pkl: ")
    assert service.health()["status"] == "degraded"
    response = service.predict(canary_rows(2))
    assert response.status_code == 200
    assert response.json()["tier"] == "last_known_good"
    assert response.json()["version"] == second

    publish_model(model_dir, "global_model", sources["forest"])
    wait_for_model(service, lambda entry: entry["tier"] == "primary")

    (model_dir / "global_model.pkl").unlink()
    entry = wait_for_model(service, lambda entry: entry["tier"] == "last_known_good")
    assert entry["last_error"] == "global_model.pkl: file not found"
    assert entry["version"] == sha256_bytes(sources["forest"].read_bytes())
    assert service.predict(canary_rows(1)).status_code == 200

    publish_model(model_dir, "global_model", sources["forest"])
    wait_for_model(service, lambda entry: entry["tier"] == "primary")
    assert service.health()["status"] == "healthy"
    assert "global_model: reloaded" in service.logs()


def test_unreadable_and_forged_files_at_startup(
    tmp_path: Path, sources: dict[str, Path], key_file: Path, service_factory: Any
) -> None:
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    publish_good(model_dir, sources)
    publish_model(model_dir, "global_model", sources["other_forest"], as_backup=True)
    primary = model_dir / "global_model.pkl"
    primary.unlink()
    os.mkfifo(primary)
    # A forger without the key: another model with a correct sha256, unsigned.
    forged = sources["other_forest"].read_bytes()
    install(
        model_dir,
        "champion_model.pkl",
        forged,
        manifest_for("champion_model", forged, trained_models().other_forest),
    )

    service = service_factory(model_dir, *hardened_args(key_file))

    body = service.health()
    assert body["status"] == "degraded"
    global_entry = body["models"]["global_model"]
    assert global_entry["tier"] == "backup"
    assert (
        global_entry["last_error"] == "global_model.pkl: not a regular file but a FIFO"
    )
    champion = body["models"]["champion_model"]
    assert champion["tier"] == "dummy"
    assert champion["version"] is None
    assert champion["last_error"].startswith(
        "champion_model.pkl: manifest is not signed, and this service requires an HMAC"
    )
    response = service.predict(canary_rows(3), model="champion_model")
    assert response.json() == {
        "model": "champion_model",
        "tier": "dummy",
        "version": None,
        "predictions": [0, 0, 0],
        "probabilities": [[0.9, 0.1]] * 3,
    }
    metrics = requests.get(f"{service.url}/metrics", timeout=10).text
    assert (
        'target_service_load_failures_total{model="global_model",'
        'reason="not_regular_file"} 1.0'
    ) in metrics
    assert (
        'target_service_load_failures_total{model="champion_model",'
        'reason="signature_invalid"} 1.0'
    ) in metrics
    assert (
        'target_service_model_tier{model="champion_model",tier="dummy"} 1.0'
    ) in metrics


def test_damaged_models_rejected_and_clean_exit(
    tmp_path: Path, sources: dict[str, Path], key_file: Path, service_factory: Any
) -> None:
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    forest = trained_models().forest
    for name, damaged in (
        ("global_model", "hanging"),
        ("champion_model", "segfaulting"),
    ):
        data = sources[damaged].read_bytes()
        install(model_dir, f"{name}.pkl", data, manifest_for(name, data, forest), KEY)
    publish_model(model_dir, "global_model", sources["forest"], as_backup=True)

    service = service_factory(
        model_dir, *hardened_args(key_file, "--validate-timeout", "1")
    )

    models = service.health()["models"]
    assert models["global_model"]["tier"] == "backup"
    assert models["global_model"]["last_error"] == (
        "global_model.pkl: validation timed out after 1.0 s"
    )
    assert models["champion_model"]["tier"] == "dummy"
    assert models["champion_model"]["last_error"].startswith(
        "champion_model.pkl: validation process died with SIGSEGV"
    )
    assert service.predict(canary_rows(1)).status_code == 200

    helpers = child_pids(service.pid)
    assert helpers, "the fork server should run as a child of the service"
    # The fork server is a fork of the service, not a new interpreter that
    # would import scikit-learn a second time.
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in helpers]
    assert Path(f"/proc/{service.pid}/cmdline").read_bytes() in commands
    assert not any(b"multiprocessing.forkserver" in command for command in commands)
    assert service.terminate() == 0
    wait_for(lambda: not any(alive(pid) for pid in helpers), timeout=10)
    assert "Application shutdown complete" in service.logs()


# The naive and basic loaders show the weaknesses the harness is meant to catch.


def test_naive_truncated_file_fails_predictions(
    tmp_path: Path, sources: dict[str, Path], service_factory: Any
) -> None:
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    publish_good(model_dir, sources)
    primary = model_dir / "global_model.pkl"
    primary.write_bytes(sources["forest"].read_bytes()[:1000])

    service = service_factory(model_dir, "--loader", "naive")

    body = service.health()
    assert body["status"] == "healthy"
    assert body["integrity"] == "none"
    assert body["models"]["global_model"]["tier"] == "primary"
    response = service.predict(canary_rows(1))
    assert response.status_code == 500
    assert response.json() == {
        "detail": "prediction with model 'global_model' failed: RuntimeError: "
        f"no model was loaded from {primary}"
    }
    assert service.predict(canary_rows(1), model="champion_model").status_code == 200
    assert service.process is not None and service.process.poll() is None


def test_basic_falls_back_and_never_reloads(
    tmp_path: Path, sources: dict[str, Path], service_factory: Any
) -> None:
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    publish_good(model_dir, sources)
    publish_model(model_dir, "global_model", sources["other_forest"], as_backup=True)
    (model_dir / "global_model.pkl").write_bytes(b"")
    # A pickle from another scikit-learn version that loads with a warning.
    data, _ = other_version_pickle(sources["logistic"].read_bytes())
    (model_dir / "champion_model.pkl").write_bytes(data)

    service = service_factory(model_dir, "--loader", "basic")

    body = service.health()
    assert body["status"] == "degraded"
    assert body["integrity"] == "none"
    entry = body["models"]["global_model"]
    assert entry["tier"] == "backup"
    assert entry["version"] == sha256_bytes(sources["other_forest"].read_bytes())
    assert entry["last_error"].startswith("global_model.pkl: EOFError")
    assert body["models"]["champion_model"]["tier"] == "primary"

    publish_model(model_dir, "global_model", sources["forest"])
    time.sleep(1.0)
    assert service.model_health()["tier"] == "backup"
    assert service.model_health()["load_attempts"] == 2


def test_basic_endless_loop_blocks_one_thread(
    tmp_path: Path, sources: dict[str, Path], service_factory: Any
) -> None:
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    publish_good(model_dir, sources)
    (model_dir / "global_model.pkl").write_bytes(sources["hanging"].read_bytes())
    service = service_factory(model_dir, "--loader", "basic")

    with pytest.raises(requests.Timeout):
        service.predict(canary_rows(1), timeout=1.0)
    health = service.health()
    other = service.predict(canary_rows(1), model="champion_model")

    assert health["models"]["global_model"]["tier"] == "primary"
    assert other.status_code == 200
    assert service.terminate() == 0
    assert "exiting with 1 worker threads still busy" in service.logs()


# Command-line usage errors.


def run_service_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "target_service", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_missing_model_dir(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"

    result = run_service_cli("--model-dir", str(missing), "--port", "1")

    assert result.returncode == 2
    assert (
        f"--model-dir {missing} is not a directory: create it or pass the "
        "directory that holds the model files"
    ) in result.stderr


def test_cli_unreadable_key_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.key"

    result = run_service_cli(
        "--model-dir", str(tmp_path), "--port", "1", "--hmac-key-file", str(missing)
    )

    assert result.returncode == 2
    assert f"--hmac-key-file {missing} cannot be used" in result.stderr
    assert "pass a readable file that holds the publisher's key" in result.stderr


def test_cli_empty_key_file(tmp_path: Path) -> None:
    key = tmp_path / "empty.key"
    key.write_text("\n")

    result = run_service_cli(
        "--model-dir", str(tmp_path), "--port", "1", "--hmac-key-file", str(key)
    )

    assert result.returncode == 2
    assert f"HMAC key file {key} is empty" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--loader", "fancy"], "argument --loader: invalid choice: 'fancy'"),
        (
            ["--version-match", "major"],
            "argument --version-match: invalid choice: 'major'",
        ),
        (["--models", "global_model,../x"], "invalid model name '../x'"),
        (["--models", "a,a"], "--models 'a,a' names a model twice"),
        (
            ["--poll-interval", "0"],
            "--poll-interval 0.0 must be a positive number of seconds",
        ),
        (
            ["--validate-timeout", "-1"],
            "--validate-timeout -1.0 must be a positive number",
        ),
        (["--port", "70000"], "--port 70000 is out of range: use 0 to 65535"),
    ],
    ids=[
        "loader",
        "version-match",
        "model-name",
        "duplicate",
        "poll",
        "timeout",
        "port",
    ],
)
def test_cli_rejects_bad_option(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_service_cli("--model-dir", str(tmp_path), "--port", "1", *args)

    assert result.returncode == 2
    assert message in result.stderr
