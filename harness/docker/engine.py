"""Connect to the Docker engine on this machine, or explain why none is usable.

The docker target bind-mounts the model directory and the HMAC key from this
machine, so an engine elsewhere (``DOCKER_HOST=ssh://...`` or a remote
``tcp://``) would see other files or none: the harness rejects it before
connecting.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

import docker
import requests
from docker.errors import DockerException

from harness.errors import DockerUnavailable

DEFAULT_ENGINE_URL = "unix:///var/run/docker.sock"
LOCAL_HOSTNAMES = frozenset({"localhost", "127.0.0.1", "::1"})

# Seconds the SDK waits for one API call; image builds and imports pass their own.
API_TIMEOUT = 120.0


def engine_url(environ: Mapping[str, str] | None = None) -> str:
    """Return the engine address the docker SDK would use (``DOCKER_HOST``)."""
    env = os.environ if environ is None else environ
    return env.get("DOCKER_HOST") or DEFAULT_ENGINE_URL


def check_local(url: str) -> None:
    """Raise :class:`DockerUnavailable` unless ``url`` names an engine on this machine.

    Unix sockets, Windows named pipes and TCP to a loopback address are local;
    ``ssh://`` and TCP to any other host are not.
    """
    parts = urlsplit(url)
    if parts.scheme in ("unix", "npipe", "fd"):
        return

    if parts.scheme in ("tcp", "http", "https"):
        if parts.hostname in LOCAL_HOSTNAMES:
            return
        where = f"host {parts.hostname!r}" if parts.hostname else "no host"
    elif parts.scheme == "ssh":
        where = "a host reached over ssh"
    else:
        raise DockerUnavailable(
            f"DOCKER_HOST={url!r} has an unsupported scheme {parts.scheme!r}: "
            "use unix:///var/run/docker.sock or tcp://127.0.0.1:PORT"
        )
    raise DockerUnavailable(
        f"DOCKER_HOST={url!r} points at {where}, but the docker target bind-mounts "
        "model files from this machine, so the engine must run here: unset "
        "DOCKER_HOST or point it at a local engine, or use --target process"
    )


def connect(timeout: float = API_TIMEOUT) -> docker.DockerClient:
    """Return a client of the local engine after checking that it responds.

    Raises :class:`DockerUnavailable` when ``DOCKER_HOST`` names a remote engine
    or no engine responds.
    """
    url = engine_url()
    check_local(url)
    parts = urlsplit(url)
    if parts.scheme == "unix":
        _probe_unix_socket(url, parts.path, timeout)
    try:
        client = docker.from_env(timeout=int(timeout))
    except DockerException as err:
        raise _no_engine(url, err) from err

    try:
        client.ping()
    except (DockerException, requests.RequestException) as err:
        client.close()
        raise _no_engine(url, err) from err
    return client


def engine_responds() -> bool:
    """Return whether a local engine responds, without raising."""
    try:
        connect(timeout=5).close()
    except DockerUnavailable:
        return False
    return True


def _probe_unix_socket(url: str, path: str, timeout: float) -> None:
    """Raise :class:`DockerUnavailable` unless a process listens on socket ``path``.

    The docker SDK 7.2.0 leaks its socket when this connection fails
    (docker/docker-py pull request 3356 fixes that). An error raised here can
    also name the socket and the fix.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(path)
        except PermissionError as err:
            raise DockerUnavailable(
                f"permission denied on {path}: run the harness as a member of the "
                "docker group, or use --target process"
            ) from err
        except OSError as err:
            raise _no_engine(url, err) from err


def _no_engine(url: str, err: Exception) -> DockerUnavailable:
    return DockerUnavailable(
        f"no Docker engine answers at {url}: start the daemon or use "
        f"--target process ({err})"
    )
