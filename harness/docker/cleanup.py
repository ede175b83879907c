"""Remove the containers that harness runs left behind.

Every container the harness creates carries the label
``model-chaos.run=<run id>``, so a crashed or interrupted run can be cleaned up
later by its id, or every run at once. The harness creates no networks or
named volumes.
"""

from __future__ import annotations

import logging
import os

import docker
import requests
from docker.errors import DockerException, NotFound

from harness.docker.engine import connect
from harness.errors import TargetError

logger = logging.getLogger(__name__)

RUN_LABEL = "model-chaos.run"
# The pid of the harness process that created the container: while it runs,
# its containers are in use and `clean` leaves them alone.
OWNER_LABEL = "model-chaos.owner"


def run_filter(run_id: str | None) -> dict[str, str]:
    """Return the engine's label filter for one run, or for every run when ``None``."""
    return {"label": RUN_LABEL if run_id is None else f"{RUN_LABEL}={run_id}"}


def clean(
    run_id: str | None = None, client: docker.DockerClient | None = None
) -> list[str]:
    """Remove the containers of run ``run_id``, or of every run; return their names.

    Without a run id, containers whose harness process still runs are in use
    and are kept; a named run is removed whatever its state.
    Running containers are killed first. Raises
    :class:`~harness.errors.DockerUnavailable` when no engine responds and
    :class:`~harness.errors.TargetError` when the engine rejects a removal.
    """
    own_client = client is None
    client = client or connect()
    try:
        return _remove_containers(client, run_id)
    finally:
        if own_client:
            client.close()


def _remove_containers(client: docker.DockerClient, run_id: str | None) -> list[str]:
    try:
        containers = client.containers.list(all=True, filters=run_filter(run_id))
    except (DockerException, requests.RequestException) as err:
        raise TargetError(f"cannot list containers: {err}", target="docker") from err

    removed = []
    for container in containers:
        if run_id is None and _owner_alive(container.labels.get(OWNER_LABEL)):
            continue
        try:
            # v=True also removes anonymous volumes, such as /models when a
            # container was started without its bind mount.
            container.remove(force=True, v=True)
        except NotFound:
            continue
        except (DockerException, requests.RequestException) as err:
            raise TargetError(
                f"cannot remove container {container.name}: {err}; remove it with "
                f"`docker rm -f {container.id[:12]}`",
                target="docker",
            ) from err
        logger.info("removed container %s", container.name)
        removed.append(str(container.name))
    return removed


def _owner_alive(owner: str | None) -> bool:
    if owner is None or not owner.isdigit():
        return False
    try:
        os.kill(int(owner), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
