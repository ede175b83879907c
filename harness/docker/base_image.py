"""The Python 3.11 base image the service image builds on, even without a registry.

The service image builds ``FROM python:3.11-slim`` when the engine has that
image or can pull it. When it cannot (no registry reachable), the harness makes
an equivalent image itself: a Debian bookworm root file system made by
mmdebstrap from Debian's package archive, with bookworm's Python 3.11 and a
virtual environment at ``/opt/venv`` first on ``PATH``. ``python`` and ``pip``
then mean that environment's, so ``pip install`` works without running into
Debian's externally-managed-environment marker. The root file system is
imported with ``docker import`` as :data:`FALLBACK_BASE_IMAGE` and kept, so it
is built once per engine.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import docker
import requests
from docker.errors import DockerException, ImageNotFound

from harness.docker.cache import cache_lock
from harness.docker.steps import timed_step
from harness.errors import ImageBuildError, SetupError

logger = logging.getLogger(__name__)

DEFAULT_BASE_IMAGE = "python:3.11-slim"
FALLBACK_BASE_IMAGE = "model-chaos/base:bookworm-py311"

# bookworm's python3 is 3.11, the version the wheelhouse is downloaded for.
DEBIAN_SUITE = "bookworm"
DEBIAN_SOURCES = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# python3.11-venv brings ensurepip and the pip and setuptools wheels it installs.
DEBIAN_PACKAGES = ("python3.11", "python3.11-venv")
VENV_DIR = "/opt/venv"

# Nothing in the image reads documentation, manual pages or translations, so
# they are not installed. Copyright files stay.
_DPKG_EXCLUDES = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
)
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_IMAGE_CHANGES = (
    f"ENV PATH={VENV_DIR}/bin:{_SYSTEM_PATH}",
    "ENV LANG=C.UTF-8",
    "LABEL model-chaos.image=base",
    'CMD ["python"]',
)
# With this hook mmdebstrap merges /usr with symlinks and the small usr-is-merged
# package. The usrmerge package it would use otherwise pulls in 47 MB of Perl
# (the image is 146 MB with the hook, 194 MB without).
_MERGED_USR_HOOKS = Path("/usr/share/mmdebstrap/hooks/merged-usr")
# Seconds allowed for mmdebstrap, which took 36 s on a 2-core machine near a
# fast mirror.
_BOOTSTRAP_TIMEOUT = 1800


def resolve_base_image(
    client: docker.DockerClient, requested: str = DEFAULT_BASE_IMAGE
) -> str:
    """Return the name of a base image present in the engine, pulling or building it.

    ``requested`` is used when it is present or can be pulled. Only the default
    falls back to :data:`FALLBACK_BASE_IMAGE`, because an explicit choice
    replaced silently would test something else; a fallback already built is
    used without asking the registry again. Raises
    :class:`ImageBuildError` when no base image can be had.
    """
    if image_exists(client, requested):
        logger.info("base image %s is present", requested)
        return requested
    if requested == DEFAULT_BASE_IMAGE and image_exists(client, FALLBACK_BASE_IMAGE):
        # The fallback exists because an earlier pull failed; trying the
        # registry again on every run would only add a network round trip.
        logger.info("base image %s is present", FALLBACK_BASE_IMAGE)
        return FALLBACK_BASE_IMAGE

    pull_error = _try_pull(client, requested)
    if pull_error is None:
        return requested
    if requested != DEFAULT_BASE_IMAGE:
        raise ImageBuildError(
            f"base image {requested!r} is not in the engine and pulling it failed "
            f"({pull_error}): load it with `docker load`, or leave the base image "
            f"unset to let the harness build {FALLBACK_BASE_IMAGE}",
            image=requested,
        )

    logger.info(
        "pulling %s failed (%s); using %s instead",
        requested,
        pull_error,
        FALLBACK_BASE_IMAGE,
    )
    return ensure_fallback_base(client)


def ensure_fallback_base(client: docker.DockerClient) -> str:
    """Build and import :data:`FALLBACK_BASE_IMAGE` unless the engine has it."""
    with cache_lock("base-image"):
        if image_exists(client, FALLBACK_BASE_IMAGE):
            logger.info("base image %s is present", FALLBACK_BASE_IMAGE)
            return FALLBACK_BASE_IMAGE

        with timed_step(f"building base image {FALLBACK_BASE_IMAGE}"):
            mmdebstrap = find_mmdebstrap()
            with tempfile.TemporaryDirectory(prefix="model-chaos-rootfs-") as tmp:
                rootfs = Path(tmp) / "rootfs.tar"
                with timed_step(f"making a {DEBIAN_SUITE} root file system"):
                    bootstrap_rootfs(mmdebstrap, rootfs)
                with timed_step(f"importing {rootfs.stat().st_size >> 20} MiB"):
                    import_rootfs(client, rootfs, FALLBACK_BASE_IMAGE)
    return FALLBACK_BASE_IMAGE


def image_exists(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.get(name)
    except ImageNotFound:
        return False
    except DockerException as err:
        raise ImageBuildError(
            f"cannot look up image {name!r} in the engine: {err}", image=name
        ) from err
    return True


def _try_pull(client: docker.DockerClient, name: str) -> str | None:
    """Pull ``name``; return ``None`` on success, else why it failed."""
    repository, _, tag = name.rpartition(":")
    if not repository or "/" in tag:
        repository, tag = name, "latest"
    try:
        with timed_step(f"pulling {name}"):
            client.images.pull(repository, tag=tag)
    except (DockerException, requests.RequestException) as err:
        return str(err)
    return None


def find_mmdebstrap() -> str:
    """Return the path of mmdebstrap, installing it with apt-get when running as root.

    Raises :class:`SetupError` with the command to run when it is missing and
    the harness cannot install it.
    """
    found = shutil.which("mmdebstrap")
    if found:
        return found

    install = ["apt-get", "install", "-y", "mmdebstrap"]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SetupError(
            f"mmdebstrap is needed to build {FALLBACK_BASE_IMAGE} because "
            f"{DEFAULT_BASE_IMAGE} cannot be pulled; install it with "
            f"`sudo {' '.join(install)}` (Debian or Ubuntu), or load "
            f"{DEFAULT_BASE_IMAGE} into the engine with `docker load`"
        )

    with timed_step("installing mmdebstrap with apt-get"):
        result = _run(install, timeout=600)
        if result.returncode != 0:
            # The package lists may be missing or stale in a fresh system.
            _run(["apt-get", "update"], timeout=600)
            result = _run(install, timeout=600)
    found = shutil.which("mmdebstrap")
    if result.returncode != 0 or found is None:
        raise SetupError(
            f"`{' '.join(install)}` failed with status {result.returncode}:\n"
            f"{_tail(result.stdout)}\nrun it by hand and try again"
        )
    return found


def bootstrap_rootfs(mmdebstrap: str, output: Path) -> None:
    """Write a bookworm root file system with Python 3.11 to the tar file ``output``.

    Runs as root (mmdebstrap's ``root`` mode) or, for other users, in a user
    namespace (``unshare`` mode, which needs entries in /etc/subuid).
    """
    # NOTE: only root mode has been run; in unshare mode the customize hook's
    # chroot is expected to work as mmdebstrap documents, but is untested.
    command = [
        mmdebstrap,
        "--variant=minbase",
        f"--include={','.join(DEBIAN_PACKAGES)}",
        *(f"--dpkgopt={option}" for option in _DPKG_EXCLUDES),
        *_merged_usr_options(),
        f'--customize-hook=chroot "$1" python3.11 -m venv {VENV_DIR}',
        DEBIAN_SUITE,
        str(output),
        *DEBIAN_SOURCES,
    ]
    try:
        result = _run(command, timeout=_BOOTSTRAP_TIMEOUT)
    except subprocess.TimeoutExpired as err:
        raise ImageBuildError(
            f"mmdebstrap did not finish within {_BOOTSTRAP_TIMEOUT} s; check that "
            "deb.debian.org is reachable and try again",
            image=FALLBACK_BASE_IMAGE,
        ) from err
    if result.returncode != 0:
        raise ImageBuildError(
            f"mmdebstrap failed with status {result.returncode}; its output ends "
            f"with:\n{_tail(result.stdout)}",
            image=FALLBACK_BASE_IMAGE,
        )


def _merged_usr_options() -> list[str]:
    if _MERGED_USR_HOOKS.is_dir():
        return [f"--hook-dir={_MERGED_USR_HOOKS}"]
    return []


def import_rootfs(client: docker.DockerClient, rootfs: Path, name: str) -> None:
    """Import the root file system tar ``rootfs`` as the image ``name``."""
    repository, _, tag = name.rpartition(":")
    try:
        with open(rootfs, "rb") as tar:
            client.api.import_image(
                src=tar, repository=repository, tag=tag, changes=list(_IMAGE_CHANGES)
            )
    except (DockerException, requests.RequestException) as err:
        raise ImageBuildError(
            f"docker import of {rootfs} as {name} failed: {err}", image=name
        ) from err


def _run(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    logger.debug("running %s", command)
    return subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def _tail(output: str, lines: int = 30) -> str:
    return "\n".join(output.splitlines()[-lines:])
