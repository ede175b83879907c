"""The service's dependencies as wheels for the image, downloaded on this machine.

The image build installs from this wheelhouse with ``pip install --no-index``,
so the build itself needs no network. ``pip download`` fetches wheels for
CPython 3.11 on manylinux x86_64 (what both ``python:3.11-slim`` and the
bookworm base run) once per set of pins, into
``<cache>/wheels/<pins digest>/``, and later builds reuse them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, fields
from importlib import metadata
from pathlib import Path

from harness.docker.cache import cache_lock, cache_root
from harness.docker.steps import timed_step
from harness.errors import ImageBuildError, UsageError

logger = logging.getLogger(__name__)

PYTHON_VERSION = "3.11"
ABI = "cp311"
# bookworm has glibc 2.36, so every manylinux wheel up to manylinux_2_36 runs
# there. pip expands only the legacy manylinux2014 tag to older tags by itself.
PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
_VERSION = re.compile(r"[0-9A-Za-z.+!*_-]+")
# Seconds allowed for downloading the whole wheelhouse (65 MiB for the default pins).
_DOWNLOAD_TIMEOUT = 900


@dataclass(frozen=True)
class Pins:
    """Versions of the service's dependencies to install in the image.

    ``None`` leaves the choice to pip, which takes the newest release that
    fits the other pins. Field names are the distribution names with ``_``.
    """

    scikit_learn: str | None = None
    numpy: str | None = None
    scipy: str | None = None
    joblib: str | None = None
    threadpoolctl: str | None = None
    fastapi: str | None = None
    uvicorn: str | None = None
    prometheus_client: str | None = None

    def __post_init__(self) -> None:
        for name, version in self.items():
            if version is not None and not _VERSION.fullmatch(version):
                raise UsageError(
                    f"invalid version {version!r} for {name}: use a release "
                    "number such as 1.2.2"
                )

    @classmethod
    def from_host(cls) -> Pins:
        """Return the versions installed next to the harness.

        The image then unpickles the harness's model files with the same
        scikit-learn, so the hardened loader's exact version check passes.
        """
        versions: dict[str, str | None] = {}
        for field in fields(cls):
            try:
                versions[field.name] = metadata.version(_distribution(field.name))
            except metadata.PackageNotFoundError:
                versions[field.name] = None
        return cls(**versions)

    def items(self) -> list[tuple[str, str | None]]:
        """Return ``(distribution name, version)`` pairs in field order."""
        return [
            (_distribution(field.name), getattr(self, field.name))
            for field in fields(self)
        ]

    def requirements(self) -> list[str]:
        """Return pip requirement strings, such as ``scikit-learn==1.2.2``."""
        return [
            name if version is None else f"{name}=={version}"
            for name, version in self.items()
        ]

    def build_args(self) -> dict[str, str]:
        """Return the Dockerfile's build arguments; an empty value leaves it unpinned.

        The argument of ``scikit-learn`` is ``SKLEARN_VERSION``; the others are
        the distribution name in upper case with ``_VERSION``.
        """
        args = {}
        for field in fields(self):
            name = "SKLEARN" if field.name == "scikit_learn" else field.name.upper()
            args[f"{name}_VERSION"] = getattr(self, field.name) or ""
        return args

    def digest(self) -> str:
        """Return a sha256 of the requirements and the target platform."""
        key = {
            "requirements": self.requirements(),
            "python": PYTHON_VERSION,
            "abi": ABI,
            "platforms": list(PLATFORMS),
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def wheelhouse_dir(pins: Pins) -> Path:
    return cache_root() / "wheels" / pins.digest()[:16]


def prepare_wheelhouse(pins: Pins) -> Path:
    """Return a directory of wheels that satisfies ``pins``, downloading it once.

    The download goes to a temporary directory that is renamed into place only
    when complete, so an interrupted download is never reused. Raises
    :class:`ImageBuildError` when pip cannot find or fetch a wheel.
    """
    directory = wheelhouse_dir(pins)
    if directory.is_dir():
        logger.info("wheelhouse %s is present", directory)
        return directory

    with cache_lock(f"wheels-{directory.name}"):
        if directory.is_dir():
            return directory
        directory.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=directory.parent))
        try:
            with timed_step(f"downloading wheels for {' '.join(pins.requirements())}"):
                _download(pins, partial)
            partial.rename(directory)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return directory


def _download(pins: Pins, destination: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--progress-bar=off",
        "--only-binary=:all:",
        f"--python-version={PYTHON_VERSION}",
        "--implementation=cp",
        f"--abi={ABI}",
        *(f"--platform={platform}" for platform in PLATFORMS),
        f"--dest={destination}",
        *pins.requirements(),
    ]
    try:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=_DOWNLOAD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise ImageBuildError(
            f"pip download did not finish within {_DOWNLOAD_TIMEOUT} s; check that "
            "the package index is reachable and try again"
        ) from err

    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-20:])
        raise ImageBuildError(
            f"pip download failed with status {result.returncode}. Each pin needs "
            f"a wheel for CPython {PYTHON_VERSION} on manylinux x86_64, so check "
            f"the versions {pins.requirements()}. pip's output ends with:\n{tail}"
        )


def _distribution(field_name: str) -> str:
    return field_name.replace("_", "-")
