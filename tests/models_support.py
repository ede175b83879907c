"""Helpers for tests that damage real model files and load them in a child process.

A damaged model can kill or hang the process that predicts with it, so every
load of such a file happens in a child Python with a timeout.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness.models import ModelSet

# Seconds a healthy load and predict of a reference model may take in a child
# process. The import of scikit-learn takes most of it, about 1 s on 2 cores.
CHILD_TIMEOUT = 30.0

# Seconds a predict may run after the load before a test calls it endless; a
# healthy predict of the 300-tree forest takes about 0.05 s.
HANG_SECONDS = 3.0

_PREDICT_SCRIPT = """
import json, sys
import joblib, numpy
model = joblib.load(sys.argv[1])
print("loaded", flush=True)
inputs = numpy.asarray(json.loads(sys.argv[2]), dtype=numpy.float64)
print(json.dumps(model.predict_proba(inputs).tolist()), flush=True)
"""


@dataclass
class ChildResult:
    """What a child process that loaded and predicted with a model file did."""

    returncode: int | None
    loaded: bool
    hung: bool
    stdout: str
    stderr: str


def copy_model(model_set: ModelSet, model: str, version: str, directory: Path) -> Path:
    """Copy a known model file to ``directory/<model>.pkl`` and return the copy."""
    known = model_set.get(model, version)
    assert known.path is not None
    directory.mkdir(parents=True, exist_ok=True)
    dest = directory / f"{model}.pkl"
    shutil.copyfile(known.path, dest)
    return dest


def child_env() -> dict[str, str]:
    # One BLAS/OpenMP thread, so a killed child leaves no thread pools behind.
    return {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def run_python(
    code: str, *args: str, timeout: float = CHILD_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        stdin=subprocess.DEVNULL,
    )


def predict_in_child(path: Path, inputs: list[list[float]]) -> ChildResult:
    """Load ``path`` and predict on ``inputs`` in a child process.

    The child is killed when predict runs longer than :data:`HANG_SECONDS`
    after the load; ``hung`` then is true.
    """
    child = subprocess.Popen(
        [sys.executable, "-c", _PREDICT_SCRIPT, str(path), json.dumps(inputs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=child_env(),
    )
    try:
        assert child.stdout is not None
        # A load that hangs must not hang the test: wait for the first line with
        # a timeout, then read it.
        ready, _, _ = select.select([child.stdout], [], [], CHILD_TIMEOUT)
        first_line = child.stdout.readline() if ready else ""
        loaded = first_line.strip() == "loaded"
        hung = False
        if loaded:
            hung = _wait_or_kill(child, HANG_SECONDS)
        stdout, stderr = child.communicate(timeout=CHILD_TIMEOUT)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return ChildResult(child.returncode, loaded, hung, first_line + stdout, stderr)


def _wait_or_kill(child: subprocess.Popen[str], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if child.poll() is not None:
            return False
        time.sleep(0.05)
    child.kill()
    child.wait()
    return True


def predicted_probabilities(result: ChildResult) -> list[list[float]]:
    """Return the probabilities a successful :func:`predict_in_child` printed."""
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stderr
    assert lines[0] == "loaded"
    return list(json.loads(lines[1]))
