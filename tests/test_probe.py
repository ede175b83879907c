"""Tests of the probe against a real threaded HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from harness.errors import HarnessError
from harness.models import KnownModel, ModelSet, dummy_model
from harness.probe import Probe
from harness.timeline import Sample, Timeline

SHA_V1 = "1" * 64
SHA_CHAMPION = "c" * 64
GLOBAL_PROBABILITIES = [[0.2, 0.8], [0.7, 0.3]]
CHAMPION_PROBABILITIES = [[0.4, 0.6]]


def known(model: str, sha256: str, probabilities: list[list[float]]) -> KnownModel:
    return KnownModel(
        key=f"{model}@v1",
        model=model,
        version="v1",
        path=None,
        sha256=sha256,
        probabilities=probabilities,
        predictions=[1] * len(probabilities),
        sklearn_version="1.9.1",
        foreign=False,
    )


def canned_model_set(names: tuple[str, ...] = ("global_model", "champion_model")):
    return ModelSet(
        names=names,
        canary_inputs={
            "global_model": [[0.0, 1.0], [1.0, 0.0]],
            "champion_model": [[0.5, 0.5]],
        },
        known={
            "global_model@v1": known("global_model", SHA_V1, GLOBAL_PROBABILITIES),
            "champion_model@v1": known(
                "champion_model", SHA_CHAMPION, CHAMPION_PROBABILITIES
            ),
            "dummy": dummy_model(2),
        },
        builtin=False,
    )


@dataclass
class Reply:
    """What the canned service sends for one path or model."""

    status: int = 200
    body: Any = None
    # Seconds to wait before the headers, and between the headers and the body.
    delay: float = 0.0
    body_delay: float = 0.0
    # Close the connection without sending anything.
    hang_up: bool = False


@dataclass
class CannedService:
    """The state the test server's handler reads; tests change it while it runs."""

    health: Reply = field(
        default_factory=lambda: Reply(
            body={
                "status": "healthy",
                "integrity": "hmac",
                "models": {
                    "global_model": {
                        "tier": "primary",
                        "version": SHA_V1,
                        "source": "global_model.pkl",
                        "sklearn_version": "1.9.1",
                        "loaded_at": 1.0,
                        "load_attempts": 1,
                        "last_error": None,
                    },
                    "champion_model": {
                        "tier": "primary",
                        "version": SHA_CHAMPION,
                        "source": "champion_model.pkl",
                        "sklearn_version": "1.9.1",
                        "loaded_at": 1.0,
                        "load_attempts": 1,
                        "last_error": None,
                    },
                },
            }
        )
    )
    predict: dict[str, Reply] = field(
        default_factory=lambda: {
            "global_model": Reply(body=predict_body("global_model", SHA_V1)),
            "champion_model": Reply(body=predict_body("champion_model", SHA_CHAMPION)),
        }
    )
    client_ports: set[int] = field(default_factory=set)
    # Set at teardown so that slow handlers stop waiting.
    released: threading.Event = field(default_factory=threading.Event)
    url: str = ""


def predict_body(model: str, version: str | None) -> dict[str, Any]:
    probabilities = (
        GLOBAL_PROBABILITIES if model == "global_model" else CHAMPION_PROBABILITIES
    )
    return {
        "model": model,
        "tier": "primary",
        "version": version,
        "predictions": [1] * len(probabilities),
        "probabilities": probabilities,
    }


class CannedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes. With Nagle's algorithm the body
    # would wait for the client's delayed ACK, about 40 ms on Linux.
    disable_nagle_algorithm = True
    server: CannedServer

    def do_GET(self) -> None:
        self._reply(self.server.state.health if self.path == "/health" else None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length))
        reply = None
        if self.path == "/predict":
            reply = self.server.state.predict.get(request["model"])
        self._reply(reply)

    def _reply(self, reply: Reply | None) -> None:
        state = self.server.state
        state.client_ports.add(self.client_address[1])
        reply = reply or Reply(status=404, body={"detail": "not found"})
        if reply.hang_up:
            self.close_connection = True
            return

        if isinstance(reply.body, str):
            data = reply.body.encode()
        else:
            data = json.dumps(reply.body).encode()
        try:
            state.released.wait(reply.delay)
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.flush()
            state.released.wait(reply.body_delay)
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The probe gave up on a slow reply and closed the connection.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


class CannedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: CannedService) -> None:
        super().__init__(("127.0.0.1", 0), CannedHandler)
        self.state = state


@pytest.fixture
def service() -> Iterator[CannedService]:
    state = CannedService()
    server = CannedServer(state)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        state.released.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def first(probe: Probe, endpoint: str, model: str | None = None) -> Sample:
    sample = probe.wait_for(
        lambda s: s.endpoint == endpoint and s.model == model, timeout=5
    )
    assert sample is not None, f"no {endpoint} sample for {model} within 5 s"
    return sample


def test_health_sample_fields(service: CannedService) -> None:
    timeline = Timeline()
    with Probe(service.url, timeline, canned_model_set(), interval=0.02) as probe:
        sample = first(probe, "health")

    assert sample.http_status == 200
    assert sample.error is None
    assert sample.ok
    assert sample.status == "healthy"
    assert sample.tiers == {"global_model": "primary", "champion_model": "primary"}
    assert sample.versions == {"global_model": SHA_V1, "champion_model": SHA_CHAMPION}
    assert sample.models["global_model"]["load_attempts"] == 1
    assert sample.models["global_model"]["source"] == "global_model.pkl"
    assert "tier" not in sample.models["global_model"]
    assert sample.t >= timeline.t0
    assert sample.latency > 0


def test_predict_sample_matches(service: CannedService) -> None:
    with Probe(service.url, Timeline(), canned_model_set(), interval=0.02) as probe:
        global_sample = first(probe, "predict", "global_model")
        champion_sample = first(probe, "predict", "champion_model")

    assert global_sample.http_status == 200
    assert global_sample.tiers == {"global_model": "primary"}
    assert global_sample.versions == {"global_model": SHA_V1}
    assert global_sample.matches == ("global_model@v1",)
    assert champion_sample.matches == ("champion_model@v1",)


def test_predict_dummy_and_unknown(service: CannedService) -> None:
    service.predict["global_model"] = Reply(
        body={
            "model": "global_model",
            "tier": "dummy",
            "version": None,
            "predictions": [0, 0],
            "probabilities": [[0.9, 0.1], [0.9, 0.1]],
        }
    )
    wrong = predict_body("champion_model", SHA_CHAMPION)
    wrong["probabilities"] = [[0.5, 0.5]]
    service.predict["champion_model"] = Reply(body=wrong)

    with Probe(service.url, Timeline(), canned_model_set(), interval=0.02) as probe:
        dummy = first(probe, "predict", "global_model")
        unknown = first(probe, "predict", "champion_model")

    assert dummy.matches == ("dummy",)
    assert dummy.tiers == {"global_model": "dummy"}
    assert dummy.versions == {"global_model": None}
    assert unknown.http_status == 200
    assert unknown.matches == ()


def test_server_error_recorded(service: CannedService) -> None:
    service.predict["global_model"] = Reply(status=500, body={"detail": "boom"})
    with Probe(service.url, Timeline(), canned_model_set(), interval=0.02) as probe:
        sample = first(probe, "predict", "global_model")

    assert sample.http_status == 500
    assert sample.error is None
    assert not sample.ok
    assert sample.matches == ()


def test_slow_reply_is_timeout(service: CannedService) -> None:
    service.health = Reply(body={"status": "healthy", "models": {}}, delay=2.0)
    with Probe(
        service.url, Timeline(), canned_model_set(), interval=0.02, timeout=0.2
    ) as probe:
        sample = first(probe, "health")

    assert sample.error == "timeout"
    assert sample.http_status is None
    assert sample.latency > 0.15


def test_slow_body_is_timeout(service: CannedService) -> None:
    service.health = Reply(body={"status": "healthy", "models": {}}, body_delay=2.0)
    with Probe(
        service.url, Timeline(), canned_model_set(), interval=0.02, timeout=0.2
    ) as probe:
        sample = first(probe, "health")

    assert sample.error == "timeout"


def test_closed_port_is_connection_refused() -> None:
    with Probe(
        closed_port_url(), Timeline(), canned_model_set(), interval=0.02
    ) as probe:
        health = first(probe, "health")
        predict = first(probe, "predict", "global_model")

    assert health.error == "connection_refused"
    assert health.http_status is None
    assert predict.error == "connection_refused"
    assert predict.model == "global_model"


def test_hang_up_is_connection_error(service: CannedService) -> None:
    service.health = Reply(hang_up=True)
    with Probe(service.url, Timeline(), canned_model_set(), interval=0.02) as probe:
        sample = first(probe, "health")

    assert sample.error is not None
    assert sample.error.startswith("connection_error: ")
    assert "RemoteDisconnected" in sample.error


def test_body_not_json(service: CannedService) -> None:
    service.health = Reply(body="<html>gateway</html>")
    with Probe(service.url, Timeline(), canned_model_set(), interval=0.02) as probe:
        sample = first(probe, "health")

    assert sample.http_status == 200
    assert sample.error is None
    assert sample.status is None
    assert sample.tiers == {}


class BrokenModelSet(ModelSet):
    def identify(self, model: str, probabilities: Any) -> tuple[str, ...]:
        raise RuntimeError("identify is broken")


def test_probe_error_keeps_thread(
    service: CannedService, caplog: pytest.LogCaptureFixture
) -> None:
    broken = BrokenModelSet(
        names=("global_model",),
        canary_inputs={"global_model": [[0.0, 1.0]]},
        known={},
        builtin=False,
    )
    caplog.set_level(logging.WARNING, logger="harness.probe")
    with Probe(service.url, Timeline(), broken, interval=0.02) as probe:
        sample = first(probe, "predict", "global_model")
        later = first(probe, "predict", "global_model")
        running = probe.running

    assert sample.error == "probe_error: RuntimeError: identify is broken"
    assert later.error == sample.error
    assert running
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 1
    assert (
        "recording the predict request for model global_model raised"
        in tracebacks[0].message
    )


def test_failures_logged_once(
    service: CannedService, caplog: pytest.LogCaptureFixture
) -> None:
    service.predict["global_model"] = Reply(status=500, body={"detail": "boom"})
    caplog.set_level(logging.INFO, logger="harness.probe")
    with Probe(service.url, Timeline(), canned_model_set(), interval=0.01) as probe:
        for _ in range(3):
            first(probe, "predict", "global_model")
        service.predict["global_model"] = Reply(
            body=predict_body("global_model", SHA_V1)
        )
        probe.wait_for(lambda s: s.model == "global_model" and s.ok, timeout=5)

    messages = [r.getMessage() for r in caplog.records]
    failures = [m for m in messages if "predict global_model failed: HTTP 500" in m]
    assert len(failures) == 1
    assert any("predict global_model succeeds again after" in m for m in messages)


def test_samples_reach_timeline(service: CannedService) -> None:
    timeline = Timeline()
    with Probe(service.url, timeline, canned_model_set(), interval=0.02) as probe:
        first(probe, "predict", "champion_model")
        first(probe, "predict", "global_model")

    times = [s.t for s in timeline.samples]
    assert sorted(probe.samples, key=lambda s: s.t) == timeline.samples
    assert times == sorted(times)
    assert {(s.endpoint, s.model) for s in timeline.samples} == {
        ("health", None),
        ("predict", "global_model"),
        ("predict", "champion_model"),
    }


def test_hung_predict_leaves_health_sampled(service: CannedService) -> None:
    service.predict["global_model"] = Reply(
        body=predict_body("global_model", SHA_V1), delay=1.0
    )
    with Probe(service.url, Timeline(), canned_model_set(), interval=0.02) as probe:
        time.sleep(0.5)
        samples = probe.samples

    health = [s for s in samples if s.endpoint == "health"]
    held = [s for s in samples if s.model == "global_model"]
    assert len(health) >= 5
    assert held == []


def test_samples_per_second(service: CannedService) -> None:
    probe = Probe(service.url, Timeline(), canned_model_set(), interval=0.02)
    assert probe.samples_per_second == 0.0

    with probe:
        time.sleep(0.3)
    rate = probe.samples_per_second

    assert rate > 0
    assert rate == pytest.approx(len(probe.samples) / 0.3, rel=0.5)
    time.sleep(0.05)
    assert probe.samples_per_second == rate


def test_one_connection_per_thread(service: CannedService) -> None:
    with Probe(service.url, Timeline(), canned_model_set(), interval=0.01) as probe:
        time.sleep(0.3)

    # One thread for /health and one per model, each on its keep-alive session.
    assert len(probe.samples) > 10
    assert all(s.ok for s in probe.samples)
    assert len(service.client_ports) == 3


def test_wait_for_degraded(service: CannedService) -> None:
    def degrade() -> None:
        service.health.body = {
            "status": "degraded",
            "models": {"global_model": {"tier": "backup", "version": "b" * 64}},
        }

    timer = threading.Timer(0.2, degrade)
    with Probe(service.url, Timeline(), canned_model_set(), interval=0.02) as probe:
        timer.start()
        sample = probe.wait_for(lambda s: s.status == "degraded", timeout=5)
    timer.join()

    assert sample is not None
    assert sample.tiers == {"global_model": "backup"}


def test_wait_for_timeout(service: CannedService) -> None:
    with Probe(service.url, Timeline(), canned_model_set(), interval=0.02) as probe:
        started = time.monotonic()
        sample = probe.wait_for(lambda s: s.status == "degraded", timeout=0.2)
        waited = time.monotonic() - started

    assert sample is None
    assert waited >= 0.15


def test_wait_for_only_new_samples(service: CannedService) -> None:
    with Probe(service.url, Timeline(), canned_model_set(), interval=0.02) as probe:
        old = first(probe, "health")
        new = first(probe, "health")

    assert new.t > old.t


def test_wait_for_after_stop(service: CannedService) -> None:
    probe = Probe(service.url, Timeline(), canned_model_set(), interval=0.02)
    with probe:
        first(probe, "health")

    assert probe.wait_for(lambda s: True, timeout=5) is None


def test_wait_for_needs_start() -> None:
    probe = Probe("http://127.0.0.1:9", Timeline(), canned_model_set())
    with pytest.raises(HarnessError, match=r"call start\(\) on the probe"):
        probe.wait_for(lambda s: True, timeout=0.1)


def test_stop_is_idempotent(service: CannedService) -> None:
    probe = Probe(service.url, Timeline(), canned_model_set(), interval=0.02)
    probe.stop()
    probe.start()
    first(probe, "health")
    probe.stop()
    count = len(probe.samples)
    probe.stop()
    time.sleep(0.1)

    assert not probe.running
    assert len(probe.samples) == count


def test_start_twice_raises(service: CannedService) -> None:
    with Probe(service.url, Timeline(), canned_model_set(), interval=0.02) as probe:
        with pytest.raises(HarnessError, match="already started"):
            probe.start()


@pytest.mark.parametrize(
    ("interval", "timeout", "message"),
    [
        (0.0, 1.0, "probe interval must be positive, got 0.0"),
        (0.1, -1.0, "probe timeout must be positive, got -1.0"),
    ],
)
def test_invalid_settings(interval: float, timeout: float, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        Probe(
            "http://127.0.0.1:9",
            Timeline(),
            canned_model_set(),
            interval=interval,
            timeout=timeout,
        )


def test_proxy_variables_ignored(
    service: CannedService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy on a closed loopback port would turn every request into
    # connection_refused if the probe used it.
    monkeypatch.setenv("HTTP_PROXY", closed_port_url())
    monkeypatch.setenv("http_proxy", closed_port_url())
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with Probe(service.url, Timeline(), canned_model_set(), interval=0.02) as probe:
        sample = first(probe, "health")

    assert sample.error is None
    assert sample.http_status == 200


def test_stop_after_an_interrupted_start(
    service: CannedService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C or SIGTERM after the first thread started and before the others.
    probe = Probe(service.url, Timeline(), canned_model_set(), interval=0.02)
    start = threading.Thread.start
    started: list[threading.Thread] = []

    def interrupted_start(thread: threading.Thread) -> None:
        # The canned service starts a thread per request, and those must run.
        if thread.name.startswith("probe "):
            if started:
                raise KeyboardInterrupt
            started.append(thread)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", interrupted_start)
    with pytest.raises(KeyboardInterrupt):
        probe.start()
    monkeypatch.undo()

    probe.stop()

    assert not started[0].is_alive()
