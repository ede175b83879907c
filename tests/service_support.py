"""Helpers for the reference service's tests: small real models and a service process.

The models are trained on scikit-learn's bundled breast cancer data, so no
download is needed, and each is trained once per test process.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import requests
import sklearn
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from target_service.manifest import Manifest, sign, write_bytes_atomic, write_manifest
from target_service.publish import build_manifest

# Seconds a test waits for the service to respond to /health after it starts.
# It is far above the 2 to 8 s start-up measured on a 2-core machine, so that a
# loaded CI machine does not make the tests flaky.
STARTUP_TIMEOUT = 60.0

# Seconds a test waits for a hot reload or a tier change to show in /health.
RELOAD_TIMEOUT = 15.0


@dataclass(frozen=True)
class TrainedModels:
    """Fitted models and the rows they were trained on."""

    forest: Any
    other_forest: Any
    logistic: Any
    features: np.ndarray


@functools.cache
def trained_models() -> TrainedModels:
    """Train the test models once per process (about 0.3 s)."""
    features, labels = load_breast_cancer(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=20, random_state=0)
    other_forest = RandomForestClassifier(n_estimators=20, max_depth=3, random_state=1)
    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    for model in (forest, other_forest, logistic):
        model.fit(features, labels)
    return TrainedModels(forest, other_forest, logistic, features)


def canary_rows(count: int = 8) -> list[list[float]]:
    """Return real rows of the training data, spread over both classes."""
    features = trained_models().features
    return [
        [float(v) for v in row] for row in features[:: len(features) // count][:count]
    ]


def dump(model: Any, path: Path) -> bytes:
    """Pickle ``model`` to ``path`` uncompressed and return the bytes written."""
    joblib.dump(model, path)
    return path.read_bytes()


def hanging_forest(forest: Any) -> Any:
    """Return a copy of ``forest`` whose first tree makes ``predict`` loop forever.

    The root's children point back to the root. ``children_left`` and
    ``children_right`` are views into the tree's node array, so assigning to
    them changes the tree in place.
    """
    damaged = copy.deepcopy(forest)
    tree = damaged.estimators_[0].tree_
    tree.children_left[0] = 0
    tree.children_right[0] = 0
    return damaged


def segfaulting_forest(forest: Any) -> Any:
    """Return a copy of ``forest`` whose first tree makes ``predict`` die with SIGSEGV.

    The root's children point far outside the node array.
    """
    damaged = copy.deepcopy(forest)
    tree = damaged.estimators_[0].tree_
    tree.children_left[0] = 10**9
    tree.children_right[0] = 10**9
    return damaged


def write_pickles(directory: Path) -> dict[str, Path]:
    """Pickle the test models, the damaged forests and a non-model into ``directory``.

    Returns the path of each file by name: ``forest``, ``other_forest``,
    ``logistic``, ``hanging``, ``segfaulting`` and ``dict``.
    """
    models = trained_models()
    objects = {
        "forest": models.forest,
        "other_forest": models.other_forest,
        "logistic": models.logistic,
        "hanging": hanging_forest(models.forest),
        "segfaulting": segfaulting_forest(models.forest),
        "dict": {"not": "a model"},
    }
    paths = {name: directory / f"{name}.pkl" for name in objects}
    for name, obj in objects.items():
        dump(obj, paths[name])
    return paths


def other_version_pickle(data: bytes) -> tuple[bytes, str]:
    """Return ``data`` claiming another scikit-learn version, and that version.

    Estimators store the version that pickled them in ``_sklearn_version``.
    The replacement has the same length, so the pickle stays valid and
    unpickling it raises scikit-learn's version warning.
    """
    running = sklearn.__version__
    fake = re.sub(r"\d", "0", running)
    assert fake != running
    assert running.encode() in data
    return data.replace(running.encode(), fake.encode()), fake


def install(
    model_dir: Path,
    filename: str,
    data: bytes,
    manifest: Manifest | None,
    key: bytes | None = None,
) -> None:
    """Write a model file, and its manifest when given, signed with ``key`` if any."""
    path = model_dir / filename
    write_bytes_atomic(path, data)
    if manifest is not None:
        write_manifest(path, sign(manifest, key) if key is not None else manifest)


def manifest_for(
    name: str,
    data: bytes,
    model: Any,
    *,
    versions: dict[str, str] | None = None,
) -> Manifest:
    """Build the manifest of ``data`` with the canary outputs of ``model``."""
    return build_manifest(name, data, model, canary_rows(), versions=versions)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], Any], timeout: float, interval: float = 0.05
) -> Any:
    """Return the first true value of ``condition()``, or raise after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def child_pids(pid: int) -> set[int]:
    """Return the pids of the live processes whose parent is ``pid``, from /proc."""
    children = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name in brackets may contain spaces; fields follow it.
        fields = stat.rsplit(")", 1)[1].split()
        state, parent = fields[0], int(fields[1])
        if parent == pid and state != "Z":
            children.add(int(entry))
    return children


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class ServiceProcess:
    """``python -m target_service`` on a free loopback port, killed in ``close``."""

    def __init__(self, model_dir: Path, log_path: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.command = [
            sys.executable,
            "-m",
            "target_service",
            "--model-dir",
            str(model_dir),
            "--port",
            str(self.port),
            *args,
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None
        # The fork server's socket directory goes here and is removed in close(),
        # since a killed service cannot remove it. A short path under the system
        # temporary directory, because socket paths are limited to 107 bytes.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="model-chaos-test-"))

    def start(self, timeout: float = STARTUP_TIMEOUT) -> ServiceProcess:
        """Start the service and return once /health responds."""
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TMPDIR": str(self.temp_dir)},
                start_new_session=True,
            )
        wait_for(self._ready, timeout)
        self.startup_seconds = time.monotonic() - started
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"service exited with {self.process.returncode}:\n{self.logs()}"
            )
        try:
            return requests.get(f"{self.url}/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def health(self) -> dict[str, Any]:
        response = requests.get(f"{self.url}/health", timeout=5)
        assert response.status_code == 200
        return dict(response.json())

    def model_health(self, model: str = "global_model") -> dict[str, Any]:
        return dict(self.health()["models"][model])

    def predict(
        self,
        instances: Any,
        model: str | None = None,
        timeout: float = 10,
    ) -> requests.Response:
        body: dict[str, Any] = {"instances": instances}
        if model is not None:
            body["model"] = model
        return requests.post(f"{self.url}/predict", json=body, timeout=timeout)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 20.0) -> int:
        """Send SIGTERM and return the exit status once the process has ended."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def close(self) -> None:
        """Kill the service's whole process group; safe to call more than once."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
