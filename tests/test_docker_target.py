"""The docker target against the real service image in a real Docker engine.

The tests that start containers are skipped when no engine responds. The first
run builds the images (minutes for the base image without a registry); later
runs find them by tag.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from harness.docker import RUN_LABEL, build_target_image, clean, connect
from harness.docker.engine import check_local
from harness.errors import DockerUnavailable, TargetError, TargetNotReady
from harness.models import ModelSet
from harness.targets.base import TargetConfig
from harness.targets.docker import CONTAINER_KEY_FILE, IMAGE_UID, DockerTarget
from harness.timeline import Timeline

# Seconds a container may take from start to a response from /health. The
# service's imports and first model loads took 5 to 7 s on a 2-core machine.
STARTUP_TIMEOUT = 60.0


MakeTarget = Callable[..., DockerTarget]


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    try:
        engine = connect(timeout=30)
    except DockerUnavailable as err:
        pytest.skip(f"Docker tests need a local engine: {err}")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def image(client: docker.DockerClient) -> str:
    return build_target_image(client)


def make_config(
    tmp_path: Path, model_set: ModelSet, **overrides: object
) -> TargetConfig:
    model_dir = tmp_path / "models"
    model_dir.mkdir(exist_ok=True)
    key_file = tmp_path / "hmac.key"
    key = secrets.token_hex(32).encode()
    key_file.write_bytes(key)
    key_file.chmod(0o600)
    model_set.populate(model_dir, key=key)
    config = TargetConfig(
        loader="hardened",
        model_dir=model_dir,
        log_dir=tmp_path / "logs",
        hmac_key_file=key_file,
        model_names=model_set.names,
        startup_timeout=STARTUP_TIMEOUT,
    )
    for name, value in overrides.items():
        setattr(config, name, value)
    return config


def run_containers(client: docker.DockerClient, run_id: str) -> list[str]:
    """Return the names of all containers, running or not, labelled with ``run_id``."""
    found = client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})
    return [container.name for container in found]


def new_run_id() -> str:
    return f"test-{secrets.token_hex(4)}"


@pytest.fixture
def make_target(
    tmp_path: Path, model_set: ModelSet, client: docker.DockerClient, image: str
) -> Iterator[MakeTarget]:
    """Return a factory of targets on fresh model files; closes them all."""
    created: list[DockerTarget] = []

    def factory(
        restart_policy: dict[str, object] | None = None, **overrides: object
    ) -> DockerTarget:
        target = DockerTarget(
            make_config(tmp_path, model_set, **overrides),
            Timeline(),
            run_id=new_run_id(),
            image=image,
            restart_policy=restart_policy,
            client=client,
        )
        created.append(target)
        return target

    yield factory
    for target in created:
        target.close()
        assert run_containers(client, target.run_id) == []


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory,
    model_set: ModelSet,
    client: docker.DockerClient,
    image: str,
) -> Iterator[DockerTarget]:
    """One started target shared by the tests that only look at it."""
    tmp_path = tmp_path_factory.mktemp("docker-running")
    target = DockerTarget(
        make_config(tmp_path, model_set),
        Timeline(),
        run_id=new_run_id(),
        image=image,
        client=client,
    )
    try:
        target.start()
        yield target
    finally:
        target.close()


def container_of(client: docker.DockerClient, target: DockerTarget) -> Any:
    assert target.container_id is not None
    return client.containers.get(target.container_id)


def crash_service(client: docker.DockerClient, target: DockerTarget) -> None:
    """Kill the service process inside the container, as the OOM killer would.

    Unlike ``docker kill``, the engine does not count this as a requested stop,
    so a restart policy applies. The init process (PID 1) then exits with
    128 + 9.
    """
    container = client.containers.get(target.container_id)
    result = container.exec_run(
        ["sh", "-c", "kill -KILL $(cat /proc/1/task/1/children)"]
    )
    assert result.exit_code == 0, result.output


def wait_for(condition: Callable[[], bool], timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout} s")


def responds(target: DockerTarget, timeout: float = 1.0) -> bool:
    try:
        return requests.get(f"{target.url}/health", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


# No engine needed


@pytest.mark.parametrize(
    "url",
    [
        "unix:///var/run/docker.sock",
        "tcp://127.0.0.1:2375",
        "tcp://localhost:2376",
        "tcp://[::1]:2375",
    ],
)
def test_check_local_accepts_local_engine(url: str) -> None:
    check_local(url)


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("tcp://192.0.2.10:2376", "host '192.0.2.10'"),
        ("tcp://docker.example.com:2375", "host 'docker.example.com'"),
        ("ssh://builder@192.0.2.10", "a host reached over ssh"),
    ],
)
def test_target_rejects_remote_docker_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str, where: str
) -> None:
    monkeypatch.setenv("DOCKER_HOST", url)
    config = TargetConfig(loader="hardened", model_dir=tmp_path, log_dir=tmp_path)

    with pytest.raises(DockerUnavailable) as info:
        DockerTarget(config, run_id="remote")

    message = str(info.value)
    assert message.startswith(f"DOCKER_HOST={url!r} points at {where}")
    assert "the engine must run here" in message
    assert "use --target process" in message


def test_check_local_rejects_unknown_scheme() -> None:
    with pytest.raises(DockerUnavailable, match=r"unsupported scheme 'http\+unix'"):
        check_local("http+unix://%2Fvar%2Frun%2Fdocker.sock")


def test_connect_without_engine_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"unix://{tmp_path}/missing.sock"
    monkeypatch.setenv("DOCKER_HOST", url)

    with pytest.raises(DockerUnavailable) as info:
        connect(timeout=5)

    assert str(info.value).startswith(
        f"no Docker engine answers at {url}: start the daemon or use --target process"
    )


# A shared running target


def test_start_serves_health(running: DockerTarget) -> None:
    body = running.health()

    assert body is not None
    assert body["status"] == "healthy"
    assert body["integrity"] == "hmac"
    assert running.running
    assert running.exit_code is None
    assert running.restart_count == 0


def test_start_records_events(running: DockerTarget) -> None:
    assert running.timeline is not None
    kinds = [event.kind for event in running.timeline.events]

    assert kinds[:2] == ["target_started", "target_ready"]


def test_container_becomes_healthy(running: DockerTarget) -> None:
    wait_for(lambda: running.container_health == "healthy", timeout=30)

    assert running.container_health == "healthy"


def test_container_carries_run_label(
    running: DockerTarget, client: docker.DockerClient
) -> None:
    names = run_containers(client, running.run_id)

    assert names == [running.container_name]


def test_port_published_on_loopback_only(
    running: DockerTarget, client: docker.DockerClient
) -> None:
    container = container_of(client, running)
    bindings = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"]

    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(running.port)}]
    assert running.url == f"http://127.0.0.1:{running.port}"


def test_service_runs_as_non_root(
    running: DockerTarget, client: docker.DockerClient
) -> None:
    container = container_of(client, running)
    result = container.exec_run(["id", "-u"])

    expected = IMAGE_UID if os.geteuid() == 0 else os.getuid()
    assert result.exit_code == 0
    assert int(result.output.decode().strip()) == expected


def test_model_dir_mounted_read_write(
    running: DockerTarget, client: docker.DockerClient
) -> None:
    container = container_of(client, running)
    mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}

    assert mounts["/models"]["Source"] == str(running.config.model_dir.resolve())
    assert mounts["/models"]["RW"] is True
    assert mounts[CONTAINER_KEY_FILE]["RW"] is False


@pytest.mark.skipif(os.geteuid() != 0, reason="the key is copied only for root")
def test_key_copy_private_to_image_user(
    running: DockerTarget, client: docker.DockerClient
) -> None:
    container = container_of(client, running)
    source = Path(
        next(
            m["Source"]
            for m in container.attrs["Mounts"]
            if m["Destination"] == CONTAINER_KEY_FILE
        )
    )
    info = source.stat()

    assert info.st_uid == IMAGE_UID
    assert stat.S_IMODE(info.st_mode) == 0o400
    assert source.read_bytes() == running.config.hmac_key_file.read_bytes()


def test_logs_contain_service_output(running: DockerTarget) -> None:
    logs = running.logs()

    assert "global_model" in logs
    assert "Uvicorn running on http://0.0.0.0:8080" in logs


def test_start_twice_raises(running: DockerTarget) -> None:
    with pytest.raises(TargetError) as info:
        running.start()

    assert str(info.value) == f"container {running.container_name} already runs"


def test_missing_model_dir_raises(make_target: MakeTarget, tmp_path: Path) -> None:
    target = make_target(model_dir=tmp_path / "no-such-dir")

    with pytest.raises(TargetError) as info:
        target.start()

    assert str(info.value).startswith(
        f"model directory {tmp_path / 'no-such-dir'} does not exist"
    )
    assert not (tmp_path / "no-such-dir").exists()


# Targets of their own


def test_kill_reports_sigkill(make_target: MakeTarget) -> None:
    target = make_target()
    target.start()

    target.kill()

    assert not target.running
    assert target.exit_code == 137
    assert not responds(target)
    kinds = [event.kind for event in target.timeline.events]
    assert "target_killed" in kinds
    assert "target_exited" in kinds


def test_start_after_kill_keeps_url(make_target: MakeTarget) -> None:
    target = make_target()
    target.start()
    url = target.url
    target.kill()

    target.start()

    assert target.url == url
    assert responds(target)
    assert target.exit_code is None
    assert target.restart_count == 1


def test_restart_counts_and_serves(make_target: MakeTarget) -> None:
    target = make_target()
    target.start()

    target.restart()

    assert responds(target)
    assert target.restart_count == 1
    assert target.timeline.last_event("target_restarted") is not None


def test_stop_exits_cleanly(make_target: MakeTarget) -> None:
    target = make_target()
    target.start()

    target.stop()

    assert not target.running
    assert target.exit_code == 0


def test_pause_freezes_service(make_target: MakeTarget) -> None:
    target = make_target()
    target.start()

    target.pause()
    frozen = responds(target, timeout=1.0)
    paused = target.paused
    target.unpause()

    assert paused
    assert not frozen
    assert target.running
    assert responds(target, timeout=5.0)


def test_stop_while_paused(make_target: MakeTarget) -> None:
    target = make_target()
    target.start()
    target.pause()

    target.stop(timeout=10)

    assert target.exit_code == 0


def test_kill_while_paused(make_target: MakeTarget) -> None:
    target = make_target()
    target.start()
    target.pause()

    target.kill()

    assert not target.running
    assert target.exit_code == 137


def test_policy_restart_counted(
    make_target: MakeTarget, client: docker.DockerClient
) -> None:
    target = make_target(restart_policy={"Name": "on-failure", "MaximumRetryCount": 5})
    target.start()

    crash_service(client, target)
    wait_for(lambda: target.restart_count == 1 and responds(target))
    target.restart()

    assert target.restart_count == 2
    assert responds(target)
    restarts = [
        event.detail["by"]
        for event in target.timeline.events
        if event.kind == "target_restarted"
    ]
    assert restarts == ["restart policy", "harness"]


def test_kill_not_undone_by_policy(make_target: MakeTarget) -> None:
    target = make_target(restart_policy={"Name": "on-failure", "MaximumRetryCount": 5})
    target.start()

    target.kill()
    time.sleep(2)

    assert not target.running
    assert target.exit_code == 137
    assert target.restart_count == 0


def test_crash_without_policy_stays_down(
    make_target: MakeTarget, client: docker.DockerClient
) -> None:
    target = make_target()
    target.start()

    crash_service(client, target)
    wait_for(lambda: not target.running, timeout=30)

    assert target.exit_code == 137
    assert target.restart_count == 0


def test_exit_before_ready_raises(make_target: MakeTarget) -> None:
    target = make_target(extra_args=("--no-such-option",))

    with pytest.raises(TargetNotReady) as info:
        target.start()

    message = str(info.value)
    assert message.startswith(
        f"container {target.container_name} exited with status 2 before it "
        "responded to /health; its log ends with:\n"
    )
    assert "unrecognized arguments: --no-such-option" in message
    assert target.timeline.last_event("target_not_ready") is not None


def test_startup_timeout_raises(make_target: MakeTarget) -> None:
    target = make_target(startup_timeout=0.5)

    with pytest.raises(TargetNotReady) as info:
        target.start()

    assert str(info.value).startswith(
        f"container {target.container_name} did not respond to {target.url}/health "
        "within 0.5 s"
    )


def test_close_removes_container_and_saves_logs(
    make_target: MakeTarget, client: docker.DockerClient
) -> None:
    target = make_target()
    target.start()

    target.close()
    target.close()

    assert run_containers(client, target.run_id) == []
    saved = (target.config.log_dir / "target.log").read_text()
    assert "Uvicorn running" in saved
    assert target.logs() == saved
    assert not target.running


def test_clean_removes_run_containers(
    make_target: MakeTarget, client: docker.DockerClient
) -> None:
    target = make_target()
    target.start()

    removed = clean(target.run_id, client=client)

    assert removed == [target.container_name]
    assert run_containers(client, target.run_id) == []
    target.close()


def test_clean_other_run_untouched(
    running: DockerTarget, client: docker.DockerClient
) -> None:
    removed = clean(new_run_id(), client=client)

    assert removed == []
    assert run_containers(client, running.run_id) == [running.container_name]


def test_clean_all_spares_live_runs(
    running: DockerTarget, client: docker.DockerClient
) -> None:
    clean(client=client)

    assert run_containers(client, running.run_id) == [running.container_name]
