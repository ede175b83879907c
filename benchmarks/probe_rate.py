"""How many samples per second the probe records against a live service."""

from __future__ import annotations

import time

from benchmarks.figures import (
    Figure,
    Section,
    at_least,
    format_value,
    markdown_table,
    percentile,
)
from benchmarks.service import LiveService
from harness.probe import Probe
from harness.timeline import Sample, Timeline

TARGET_RATE = 200.0

# Seconds between the starts of two requests of one probe thread: far below a
# request's duration, so each thread sends its next request as soon as the last
# one returned.
INTERVAL = 0.001


def measure_probe(service: LiveService, seconds: float) -> Section:
    """Run the probe with a tiny interval for ``seconds`` and report its rate."""
    section = Section(2, "Probe sample rate")
    probe = Probe(service.url, Timeline(), service.model_set, interval=INTERVAL)
    probe.start()
    try:
        time.sleep(seconds)
    finally:
        probe.stop()

    samples = probe.samples
    latencies = [sample.latency * 1000 for sample in samples]
    rate = Figure(
        "samples per second",
        probe.samples_per_second,
        "samples/s",
        at_least(TARGET_RATE),
        note=f"{len(samples)} samples in {seconds:.0f} s",
    )
    section.figures += [
        rate,
        Figure("latency p50, all requests", percentile(latencies, 50), "ms"),
        Figure("latency p99, all requests", percentile(latencies, 99), "ms"),
    ]
    if rate.met is False:
        rate.miss_reason = _miss_reason(samples, len(service.model_set.names))

    section.details.append(_endpoint_table(samples))
    section.method += [
        f"`harness.probe.Probe` with `interval={INTERVAL}` against a live hardened "
        f"service serving {', '.join(service.model_set.names)}, for "
        f"{seconds:.0f} s. One thread sends `GET /health` and one thread per "
        "model sends `POST /predict` with its canary rows, each on its own "
        "keep-alive connection.",
        "The rate is the probe's own `samples_per_second` (samples from start "
        "to stop); latencies are the samples' `latency`, measured by the probe "
        "around each request, so they include the client's JSON encoding and "
        "decoding.",
    ]
    return section


def _endpoint_table(samples: list[Sample]) -> str:
    rows = []
    for key in sorted({(s.endpoint, s.model or "") for s in samples}):
        chosen = [s for s in samples if (s.endpoint, s.model or "") == key]
        latencies = [s.latency * 1000 for s in chosen]
        failed = sum(1 for s in chosen if not s.ok)
        rows.append(
            [
                f"{key[0]} {key[1]}".strip(),
                str(len(chosen)),
                format_value(percentile(latencies, 50), "ms"),
                format_value(percentile(latencies, 99), "ms"),
                str(failed),
            ]
        )
    return markdown_table(["request", "samples", "p50", "p99", "failed"], rows)


def _miss_reason(samples: list[Sample], models: int) -> str:
    mean = sum(s.latency for s in samples) / len(samples)
    slowest = max(
        {(s.endpoint, s.model) for s in samples},
        key=lambda key: _median_ms(samples, key),
    )
    name = " ".join(part for part in slowest if part)
    return (
        f"each of the probe's {1 + models} threads waits for its request to "
        f"return before it sends the next, and the threads share the service's "
        f"CPUs: the mean latency was {mean * 1000:.1f} ms per request. The "
        f"slowest request, {name}, has a median of "
        f"{_median_ms(samples, slowest):.1f} ms"
    )


def _median_ms(samples: list[Sample], key: tuple[str, str | None]) -> float:
    chosen = [s.latency * 1000 for s in samples if (s.endpoint, s.model) == key]
    return percentile(chosen, 50)
