"""Predict latency of the reference service, without faults and during a fault loop."""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import requests
from threadpoolctl import threadpool_limits

from benchmarks.fault_loop import (
    FLIPPED_BITS,
    HEALTH_POLL,
    STEPS,
    FaultLoopConfig,
    read_record,
    run_fault_loop,
)
from benchmarks.figures import (
    Figure,
    Section,
    at_most,
    format_value,
    markdown_table,
    percentile,
)
from benchmarks.service import LiveService
from harness.models import KnownModel

TARGET_P99_MS = 25.0

MODEL = "global_model"

# Requests sent before measuring, so that connection set-up and first-call
# costs in the service are not counted.
WARMUP_REQUESTS = 20

# Seconds to wait for the spawned fault loop to start, and then to stop: a step
# can be in the middle of its 15 s wait for /health when asked to stop.
LOOP_START_TIMEOUT = 60.0
LOOP_STOP_TIMEOUT = 40.0

# Calls of the model timed in this process to find its own share of a request.
MODEL_CALLS = 30


@dataclass(frozen=True)
class ModelCost:
    """Time of the model's own work for one request, in ms, outside the service."""

    median_ms: float
    min_ms: float


@dataclass(frozen=True)
class Response:
    """One ``/predict`` request: its start on the monotonic clock and its outcome."""

    t: float
    latency_ms: float
    status: int | None
    tier: str | None


def measure_latency(
    service: LiveService, *, quiet_seconds: float, fault_seconds: float, seed: int
) -> Section:
    """Measure predict latency on a quiet service, then during the fault loop."""
    section = Section(3, "Predict latency without and during faults")
    rows = service.model_set.canary_inputs[MODEL]
    known = service.model_set.get(MODEL, service.served_version(MODEL) or "v1")
    cost = measure_model_cost(known, rows)
    quiet = predict_loop(service, rows, quiet_seconds)
    faulted, record = _during_faults(service, rows, fault_seconds, seed)

    p99 = Figure(
        "p99 during faults",
        percentile([r.latency_ms for r in faulted], 99),
        "ms",
        at_most(TARGET_P99_MS),
        note=f"{len(faulted)} requests",
    )
    section.figures += [
        Figure(
            "p50 without faults", _p(quiet, 50), "ms", note=f"{len(quiet)} requests"
        ),
        Figure("p99 without faults", _p(quiet, 99), "ms"),
        Figure("p50 during faults", _p(faulted, 50), "ms"),
        p99,
        Figure("max during faults", max(r.latency_ms for r in faulted), "ms"),
        Figure(
            "the model alone, median",
            cost.median_ms,
            "ms",
            note=f"`predict` and `predict_proba` of {MODEL} {known.version} in "
            f"this process; min {cost.min_ms:.1f} ms",
        ),
    ]
    if p99.met is False:
        p99.miss_reason = _miss_reason(quiet, faulted, record, cost, known)

    reloading, other = split_by_reload(faulted, record)
    section.details += [
        _latency_table(
            {"without faults": quiet, "during faults": faulted},
            {
                "during faults, in a reload window": reloading,
                "during faults, outside reload windows": other,
            },
        ),
        _record_table(record, faulted),
    ]
    section.method += _method(service, quiet_seconds, fault_seconds)
    return section


def measure_model_cost(known: KnownModel, rows: list[list[float]]) -> ModelCost:
    """Time the model's own work for one request, ``MODEL_CALLS`` times.

    The service calls ``predict`` and then ``predict_proba`` for every request.
    Both are timed here, outside the service, with one BLAS and OpenMP thread,
    as the service runs them.
    """
    assert known.path is not None
    model = joblib.load(known.path)
    features = np.asarray(rows, dtype=np.float64)
    times = []
    with threadpool_limits(limits=1):
        for _ in range(MODEL_CALLS + 1):
            started = time.perf_counter()
            model.predict(features)
            model.predict_proba(features)
            times.append((time.perf_counter() - started) * 1000)
    # The first call pays one-time costs that a serving process has paid.
    return ModelCost(statistics.median(times[1:]), min(times[1:]))


def predict_loop(
    service: LiveService, rows: list[list[float]], seconds: float
) -> list[Response]:
    """Send ``POST /predict`` for ``MODEL`` back to back for ``seconds``."""
    session = requests.Session()
    session.trust_env = False
    body = {"model": MODEL, "instances": rows}
    url = f"{service.url}/predict"
    try:
        for _ in range(WARMUP_REQUESTS):
            session.post(url, json=body, timeout=5.0)

        responses = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            responses.append(_send(session, url, body))
        return responses
    finally:
        session.close()


def _send(session: requests.Session, url: str, body: dict[str, Any]) -> Response:
    started = time.monotonic()
    clock = time.perf_counter()
    try:
        reply = session.post(url, json=body, timeout=5.0)
    except requests.RequestException:
        return Response(started, (time.perf_counter() - clock) * 1000, None, None)
    latency = (time.perf_counter() - clock) * 1000
    tier = None
    if reply.status_code == 200:
        tier = reply.json().get("tier")
    return Response(started, latency, reply.status_code, tier)


def _during_faults(
    service: LiveService, rows: list[list[float]], seconds: float, seed: int
) -> tuple[list[Response], list[dict[str, Any]]]:
    """Run the fault loop in a spawned process and measure while it runs."""
    record_path = service.work_dir / "fault-loop.jsonl"
    config = FaultLoopConfig(
        url=service.url,
        model_dir=service.model_dir,
        key=service.key,
        model=MODEL,
        versions={v: service.model_set.get(MODEL, v) for v in ("v1", "v2")},
        canary_inputs=service.model_set.canary_inputs[MODEL],
        seed=seed,
        record_path=record_path,
    )

    # spawn, not fork: this process has threads (the requests pools) and
    # scikit-learn's thread pools may have started, which fork does not copy
    # safely.
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    loop = context.Process(
        target=run_fault_loop, args=(config, stop), name="fault loop", daemon=True
    )
    loop.start()

    try:
        _wait_for_start(record_path, loop)
        responses = predict_loop(service, rows, seconds)
    finally:
        stop.set()
        loop.join(LOOP_STOP_TIMEOUT)
        if loop.is_alive():
            loop.kill()
            loop.join()
    return responses, read_record(record_path)


def _wait_for_start(
    record_path: Path, loop: multiprocessing.process.BaseProcess
) -> None:
    deadline = time.monotonic() + LOOP_START_TIMEOUT
    while not read_record(record_path):
        if not loop.is_alive():
            raise RuntimeError(
                f"the fault loop exited with status {loop.exitcode} before it started"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the fault loop did not start within {LOOP_START_TIMEOUT:.0f} s"
            )
        time.sleep(0.05)


def _p(responses: list[Response], q: float) -> float:
    return percentile([r.latency_ms for r in responses], q)


def _latency_table(
    series: dict[str, list[Response]], subsets: dict[str, list[Response]]
) -> str:
    """Tabulate each series of requests; a subset of a series gets no rate."""
    rows = []
    chosen = [(label, r, True) for label, r in series.items()]
    chosen += [(label, r, False) for label, r in subsets.items() if r]
    for label, responses, with_rate in chosen:
        seconds = responses[-1].t - responses[0].t if len(responses) > 1 else 0.0
        failed = sum(1 for r in responses if r.status != 200)
        tiers = Counter(r.tier for r in responses if r.tier)
        rows.append(
            [
                label,
                str(len(responses)),
                f"{len(responses) / seconds:.0f}" if with_rate and seconds else "-",
                format_value(_p(responses, 50), "ms"),
                format_value(_p(responses, 90), "ms"),
                format_value(_p(responses, 99), "ms"),
                format_value(max(r.latency_ms for r in responses), "ms"),
                str(failed),
                ", ".join(f"{tier} {count}" for tier, count in tiers.most_common()),
            ]
        )
    header = [
        "condition",
        "requests",
        "requests/s",
        "p50",
        "p90",
        "p99",
        "max",
        "not 200",
        "tiers returned",
    ]
    return markdown_table(header, rows)


def _in_window(
    record: list[dict[str, Any]], responses: list[Response]
) -> list[dict[str, Any]]:
    """Return the actions of the fault loop that overlap the measurement."""
    if not responses:
        return []
    first, last = responses[0].t, responses[-1].t
    return [e for e in record if e["t_end"] >= first and e["t_start"] <= last]


def _record_table(record: list[dict[str, Any]], responses: list[Response]) -> str:
    actions = _in_window(record, responses)
    rows = []
    for kind in (*STEPS, "publish", "error"):
        chosen = [e for e in actions if e["kind"] == kind]
        if not chosen:
            continue
        if kind == "publish":
            healthy = sum(1 for e in chosen if e.get("healthy"))
            outcome = f"{healthy} reported healthy with the new version"
        elif kind == "error":
            outcome = "; ".join(sorted({str(e.get("message")) for e in chosen}))[:300]
        else:
            attempted = sum(1 for e in chosen if e.get("attempted"))
            outcome = f"{attempted} load attempts seen"
        rows.append([kind, str(len(chosen)), outcome])
    return "What the fault loop did while latency was measured:\n\n" + markdown_table(
        ["action", "count", "outcome"], rows
    )


def _reload_windows(actions: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """Return when each published file was being checked, validated and swapped in.

    A window runs from the end of ``publish()`` until the loop saw ``/health``
    report the new version.
    """
    return [(e["published_at"], e["t_end"]) for e in actions if e["kind"] == "publish"]


def split_by_reload(
    responses: list[Response], record: list[dict[str, Any]]
) -> tuple[list[Response], list[Response]]:
    """Split requests into those that started during a reload window and the rest."""
    windows = _reload_windows(_in_window(record, responses))
    inside, outside = [], []
    for response in responses:
        if any(start <= response.t <= end for start, end in windows):
            inside.append(response)
        else:
            outside.append(response)
    return inside, outside


def _miss_reason(
    quiet: list[Response],
    faulted: list[Response],
    record: list[dict[str, Any]],
    cost: ModelCost,
    known: KnownModel,
) -> str:
    reasons = []
    if cost.min_ms > TARGET_P99_MS / 2:
        reasons.append(
            f"the model alone takes at least {cost.min_ms:.0f} ms per request "
            f"(median {cost.median_ms:.0f} ms) for {_class_name(known)} "
            "`predict` plus `predict_proba`, which the service calls one after "
            f"the other on {len(known.probabilities)} rows. Even without faults, "
            f"p99 is {_p(quiet, 99):.0f} ms"
        )

    windows = _reload_windows(_in_window(record, faulted))
    span = faulted[-1].t - faulted[0].t
    share = 100 * sum(end - start for start, end in windows) / span if span else 0
    reloading, other = split_by_reload(faulted, record)
    rise = f"p50 rose from {_p(quiet, 50):.0f} to {_p(faulted, 50):.0f} ms"
    reasons.append(f"during faults {rise}" if not reasons else f"During faults {rise}")
    if reloading and other:
        reasons.append(
            f"Requests that started in a reload window ({share:.0f} % of the "
            f"time) had p99 {_p(reloading, 99):.0f} ms, the others "
            f"{_p(other, 99):.0f} ms"
        )
    reasons.append(
        "The service forks a validation process and unpickles each new model "
        "while it serves, and the fault loop unpickles every file it publishes, "
        f"on {multiprocessing.cpu_count()} CPUs shared with this client"
    )
    return ". ".join(reasons)


def _class_name(known: KnownModel) -> str:
    return (known.model_class or "model").rsplit(".", 1)[-1]


def _method(service: LiveService, quiet: float, faults: float) -> list[str]:
    rows = len(service.model_set.canary_inputs[MODEL])
    return [
        f"A plain `requests` loop on one keep-alive connection sends `POST /predict` "
        f"for `{MODEL}` with its {rows} canary rows, back to back, for {quiet:.0f} s "
        f"without faults and then {faults:.0f} s during faults, after "
        f"{WARMUP_REQUESTS} unmeasured requests. Latency is measured in the "
        "client around each request.",
        f"During faults a separate process damages `{MODEL}.pkl` in turn. It "
        "makes a torn write of the other version, held half-written until the "
        f"service attempted a load. It flips {FLIPPED_BITS} bits, truncates the "
        "file at a random offset, and flips 1 bit under a correctly signed "
        "manifest. That last damage passes "
        "the hash check, so the service validates the damaged file in a child "
        "process. After each fault the loop waits for the service's load "
        "attempt, publishes the other valid version (v1 or v2) with "
        "`target_service.publish.publish`, and waits for `/health` to report "
        f"it. It polls `/health` every {HEALTH_POLL * 1000:.0f} ms.",
        "A reload window runs from the return of a valid `publish()` until the "
        "fault loop saw `/health` report the new version. In that window the "
        "service checks the manifest, validates the file in a forked process "
        "and unpickles it into the serving process.",
    ]
