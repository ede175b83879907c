"""Time from publishing a valid model file to ``/health`` reporting it."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from benchmarks.figures import Figure, Section, at_most, markdown_table
from benchmarks.service import LiveService, healthy_with, other_version
from target_service.publish import publish

TARGET_SECONDS = 1.0

MODEL = "global_model"

# Seconds between two looks at /health after a publish: the resolution of the
# measured times.
POLL = 0.01

# Seconds to wait for /health to report a published version before giving up.
RELOAD_TIMEOUT = 15.0


@dataclass(frozen=True)
class Reload:
    """One publish and how long the service took to serve it, in seconds."""

    version: str
    publish_seconds: float
    seconds_after_files: float | None

    @property
    def seconds_after_call(self) -> float | None:
        if self.seconds_after_files is None:
            return None
        return self.publish_seconds + self.seconds_after_files


def measure_reloads(service: LiveService, count: int) -> Section:
    """Publish v1 and v2 in turn ``count`` times and time each hot reload."""
    section = Section(4, "Publish to healthy")
    reloads = [_publish_and_wait(service) for _ in range(count)]
    done = [r.seconds_after_files for r in reloads if r.seconds_after_files is not None]
    missing = len(reloads) - len(done)
    note = f"{len(done)} publishes"
    if missing:
        note += f"; {missing} not reported within {RELOAD_TIMEOUT:.0f} s"

    median = Figure(
        "median, after publish() returned",
        statistics.median(done) if done else None,
        "s",
        at_most(TARGET_SECONDS),
        note=note,
    )
    longest = Figure(
        "max, after publish() returned",
        max(done) if done else None,
        "s",
        at_most(TARGET_SECONDS),
    )
    for figure in (median, longest):
        if figure.met is False:
            figure.miss_reason = _miss_reason(service)
    section.figures += [median, longest]

    section.details.append(_table(reloads))
    section.method += [
        f"Against a quiet hardened service, `target_service.publish.publish` "
        f"writes `{MODEL}` v1 and v2 in turn (each the version not served), with "
        "its signed manifest and canary rows. Then `/health` is polled every "
        f"{POLL * 1000:.0f} ms until it reports `healthy` with the new sha256.",
        "The figures count from the moment `publish()` returned, when file and "
        "manifest are both in place. `publish()` itself also unpickles the model "
        "and records its canary outputs; the table gives its duration and the "
        "total from the call.",
    ]
    return section


def _publish_and_wait(service: LiveService) -> Reload:
    version = other_version(service.served_version(MODEL))
    known = service.model_set.get(MODEL, version)
    assert known.path is not None and known.sha256 is not None

    started = time.monotonic()
    publish(
        service.model_dir,
        MODEL,
        known.path,
        key=service.key,
        canary_inputs=service.model_set.canary_inputs[MODEL],
    )
    published = time.monotonic()
    body = service.wait_for_health(
        healthy_with(MODEL, known.sha256), RELOAD_TIMEOUT, interval=POLL
    )
    healthy = time.monotonic()
    return Reload(
        version=version,
        publish_seconds=published - started,
        seconds_after_files=healthy - published if body is not None else None,
    )


def _table(reloads: list[Reload]) -> str:
    rows = []
    for index, reload in enumerate(reloads, 1):
        after_files = reload.seconds_after_files
        after_call = reload.seconds_after_call
        rows.append(
            [
                str(index),
                reload.version,
                f"{reload.publish_seconds:.3f} s",
                f"{after_files:.3f} s" if after_files is not None else "not reported",
                f"{after_call:.3f} s" if after_call is not None else "-",
            ]
        )
    header = ["#", "version", "publish()", "after publish()", "from the call"]
    return markdown_table(header, rows)


def _miss_reason(service: LiveService) -> str:
    poll = service.target.config.poll_interval
    timeout = service.target.config.validate_timeout
    return (
        f"the service looks for changed files every {poll:.1f} s, then checks the "
        "manifest, validates the file in a forked child process (bounded by "
        f"{timeout:.0f} s) and unpickles it again in the serving process"
    )
