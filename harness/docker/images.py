"""Build the reference service's image, and rebuild it only when its inputs change.

The build context is the service's Dockerfile, the ``target_service`` package
and a wheelhouse. The image is tagged ``model-chaos/target:<digest>``, where
the digest is a sha256 over every file of the context, the build arguments and
the base image's id. The harness looks that tag up first, so it builds only
when the service's code, its pins or its base changed.
"""

from __future__ import annotations

import hashlib
import logging
import tarfile
import tempfile
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import docker
import requests
from docker.errors import DockerException, ImageNotFound

import target_service
from harness.docker.base_image import (
    DEFAULT_BASE_IMAGE,
    image_exists,
    resolve_base_image,
)
from harness.docker.cache import cache_lock
from harness.docker.engine import connect
from harness.docker.steps import timed_step
from harness.docker.wheels import Pins, prepare_wheelhouse
from harness.errors import ImageBuildError

logger = logging.getLogger(__name__)

IMAGE_PREFIX = "model-chaos/"
TARGET_REPOSITORY = "model-chaos/target"
IMAGE_LABEL = "model-chaos.image"
# Hex digits of the context digest in the tag: 64 bits, plenty to tell builds apart.
TAG_DIGITS = 16
# Seconds allowed for one image build.
_BUILD_TIMEOUT = 1800
_SKIPPED_PARTS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache"})


@dataclass(frozen=True)
class ContextFile:
    """One file of the build context: its path in the context and on this machine."""

    name: str
    source: Path


def service_dir() -> Path:
    """Return the directory of the ``target_service`` package."""
    return Path(target_service.__file__).parent


def context_files(wheelhouse: Path, package: Path | None = None) -> list[ContextFile]:
    """List the build context: ``Dockerfile``, ``target_service/``, ``wheels/``.

    Byte code, caches and hidden files of the package are left out, because
    they change without the service changing.
    """
    package = package or service_dir()
    files = [ContextFile("Dockerfile", package / "Dockerfile")]
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(package)
        if path.is_dir() or _skipped(relative) or relative == Path("Dockerfile"):
            continue
        files.append(ContextFile(f"target_service/{relative.as_posix()}", path))
    for path in sorted(wheelhouse.iterdir()):
        if path.is_file():
            files.append(ContextFile(f"wheels/{path.name}", path))
    return files


def context_digest(
    files: Iterable[ContextFile], build_args: dict[str, str], base_image_id: str
) -> str:
    """Return the sha256 of the context's names and contents, build args and base."""
    digest = hashlib.sha256()
    for item in sorted(files, key=lambda f: f.name):
        digest.update(item.name.encode() + b"\0")
        with open(item.source, "rb") as handle:
            file_digest = hashlib.file_digest(handle, "sha256")
        digest.update(file_digest.digest())
    for key in sorted(build_args):
        digest.update(f"{key}={build_args[key]}\0".encode())
    digest.update(base_image_id.encode())
    return digest.hexdigest()


def build_target_image(
    client: docker.DockerClient | None = None,
    pins: Pins | None = None,
    base_image: str = DEFAULT_BASE_IMAGE,
) -> str:
    """Build the service image for ``pins`` unless it exists; return its tag.

    ``pins`` defaults to the versions installed next to the harness. Raises
    :class:`ImageBuildError` when the wheelhouse, the base image or the build
    fails, and :class:`~harness.errors.DockerUnavailable` without an engine.
    """
    own_client = client is None
    client = client or connect()
    try:
        return _build_target_image(client, pins or Pins.from_host(), base_image)
    finally:
        if own_client:
            client.close()


def _build_target_image(client: docker.DockerClient, pins: Pins, base: str) -> str:
    wheelhouse = prepare_wheelhouse(pins)
    base = resolve_base_image(client, base)
    build_args = {"BASE_IMAGE": base, **pins.build_args()}
    files = context_files(wheelhouse)
    digest = context_digest(files, build_args, _image_id(client, base))
    tag = f"{TARGET_REPOSITORY}:{digest[:TAG_DIGITS]}"

    if image_exists(client, tag):
        logger.info("image %s is present", tag)
        return tag
    with cache_lock("target-image"):
        if image_exists(client, tag):
            return tag
        with timed_step(f"building image {tag} on {base}"):
            _build(client, files, tag, build_args, digest)
    return tag


def _build(
    client: docker.DockerClient,
    files: list[ContextFile],
    tag: str,
    build_args: dict[str, str],
    digest: str,
) -> None:
    # A tar file on disk, not in memory, because the wheels alone take 65 MiB.
    with tempfile.TemporaryDirectory(prefix="model-chaos-context-") as tmp:
        context = Path(tmp) / "context.tar"
        write_context(files, context)
        with open(context, "rb") as handle:
            try:
                output = client.api.build(
                    fileobj=handle,
                    custom_context=True,
                    tag=tag,
                    buildargs=build_args,
                    labels={IMAGE_LABEL: "target", "model-chaos.context": digest},
                    pull=False,
                    rm=True,
                    forcerm=True,
                    decode=True,
                    timeout=_BUILD_TIMEOUT,
                )
                _follow_build(output, tag)
            except (DockerException, requests.RequestException) as err:
                raise ImageBuildError(
                    f"building {tag} failed: {err}", image=tag
                ) from err


def write_context(files: Iterable[ContextFile], destination: Path) -> None:
    """Write the build context as an uncompressed tar file."""
    with tarfile.open(destination, "w") as tar:
        for item in files:
            info = tar.gettarinfo(str(item.source), arcname=item.name)
            # Owner and time do not reach the image; fixed values keep the tar
            # the same for the same files.
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            info.mode = 0o644
            with open(item.source, "rb") as handle:
                tar.addfile(info, handle)


def _follow_build(output: Iterable[dict[str, object]], tag: str) -> None:
    """Log the build's output and raise when the engine reports an error."""
    recent: deque[str] = deque(maxlen=30)
    error = None
    # The stream is read to its end even after an error, because the SDK
    # closes the engine's connection only then.
    for chunk in output:
        text = chunk.get("stream")
        if isinstance(text, str) and text.strip():
            for line in text.rstrip().splitlines():
                recent.append(line)
                logger.debug("build %s: %s", tag, line)
        error = error or chunk.get("error")

    if error:
        tail = "\n".join(recent)
        raise ImageBuildError(
            f"building {tag} failed: {error}\nthe build output ends with:\n{tail}",
            image=tag,
        )


def prune_images(
    client: docker.DockerClient | None = None,
    *,
    repositories: Iterable[str] | None = None,
) -> list[str]:
    """Remove the harness's images and return the tags removed.

    By default every image tagged ``model-chaos/*`` goes, with the untagged
    install stages of the service builds. ``repositories`` limits the removal
    to those repositories, for example ``["model-chaos/target"]`` to keep the
    base image, which takes minutes to rebuild. An image that a container
    still uses is kept and logged; ``model-chaos clean`` removes such
    containers.
    """
    own_client = client is None
    client = client or connect()
    chosen = None if repositories is None else set(repositories)
    try:
        removed = _remove_tagged(client, chosen)
        if chosen is None or TARGET_REPOSITORY in chosen:
            _remove_build_stages(client)
    finally:
        if own_client:
            client.close()
    return removed


def _remove_tagged(
    client: docker.DockerClient, repositories: set[str] | None
) -> list[str]:
    removed = []
    for image in client.images.list():
        for tag in image.tags:
            repository = tag.rpartition(":")[0]
            if repositories is None:
                if not tag.startswith(IMAGE_PREFIX):
                    continue
            elif repository not in repositories:
                continue
            try:
                client.images.remove(tag)
            except ImageNotFound:
                continue
            except DockerException as err:
                logger.warning("image %s was kept: %s", tag, err)
                continue
            removed.append(tag)
    return removed


def _remove_build_stages(client: docker.DockerClient) -> None:
    # The install stage of the Dockerfile stays as an untagged image. Its
    # label distinguishes it from other projects' untagged images.
    try:
        client.images.prune(filters={"dangling": True, "label": IMAGE_LABEL})
    except DockerException as err:
        logger.warning("untagged model-chaos images were kept: %s", err)


def _image_id(client: docker.DockerClient, name: str) -> str:
    try:
        return str(client.images.get(name).id)
    except DockerException as err:
        raise ImageBuildError(
            f"cannot inspect image {name!r}: {err}", image=name
        ) from err


def _skipped(relative: Path) -> bool:
    return any(
        part in _SKIPPED_PARTS or part.startswith(".") for part in relative.parts
    ) or relative.suffix in (".pyc", ".pyo")
