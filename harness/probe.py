"""The availability probe: polls the target's ``/health`` and ``/predict``.

The probe runs in a background thread and appends one
:class:`~harness.timeline.Sample` per request to the scenario's timeline, so
that the checks can judge afterwards what the target returned while faults hit
it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

import requests
import urllib3.exceptions

from harness.errors import HarnessError
from harness.models import ModelSet
from harness.timeline import Sample, Timeline, now

logger = logging.getLogger(__name__)

CONNECTION_REFUSED = "connection_refused"
TIMEOUT = "timeout"
CONNECTION_ERROR = "connection_error"
# A sample whose error starts with this prefix records a bug in the probe itself
# (for example in matching the predictions), not a failure of the target.
PROBE_ERROR = "probe_error"

_MAX_REASON_LENGTH = 200


class Probe:
    """Polls the target at a fixed rate from background threads.

    One thread sends ``GET /health`` and one thread per name in
    ``model_set.names`` sends ``POST /predict`` with that model's canary
    inputs, each over its own keep-alive session. Separate threads keep a slow
    or hung predict from delaying the health requests. ``interval`` is the
    time in seconds between the starts of two requests of one thread. When a
    request takes longer, the next one starts at once. ``timeout`` bounds in
    seconds both the connect and the read of each request.
    """

    def __init__(
        self,
        url: str,
        timeline: Timeline,
        model_set: ModelSet,
        *,
        interval: float = 0.05,
        timeout: float = 5.0,
    ) -> None:
        if interval <= 0:
            raise HarnessError(f"probe interval must be positive, got {interval!r}")
        if timeout <= 0:
            raise HarnessError(f"probe timeout must be positive, got {timeout!r}")

        self.url = url.rstrip("/")
        self.timeline = timeline
        self.model_set = model_set
        self.interval = interval
        self.timeout = timeout

        self._stop_requested = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sessions: list[requests.Session] = []
        # Guards _samples and wakes wait_for() callers when a sample arrives.
        self._new_sample = threading.Condition()
        self._samples: list[Sample] = []
        self._started_at: float | None = None
        self._stopped_at: float | None = None
        self._outcomes: dict[tuple[str, str | None], tuple[str, int]] = {}
        self._logged_probe_errors: set[str] = set()

    # Life cycle.

    def start(self) -> Probe:
        """Start the polling threads and return the probe.

        Raises HarnessError when the probe was started before, because a
        stopped probe's sessions are closed.
        """
        if self._threads:
            raise HarnessError(
                f"the probe of {self.url} was already started; create a new Probe"
            )

        self._started_at = now()
        lanes = [("health", None)] + [("predict", n) for n in self.model_set.names]
        for endpoint, model in lanes:
            session = requests.Session()
            # The target is reached directly: proxy variables and .netrc from
            # the environment must not reroute or alter the probe's requests.
            session.trust_env = False
            self._sessions.append(session)
            label = endpoint if model is None else f"{endpoint} {model}"
            thread = threading.Thread(
                target=self._run,
                args=(endpoint, model, session),
                name=f"probe {label} {self.url}",
                daemon=True,
            )
            self._threads.append(thread)
        for thread in self._threads:
            thread.start()
        logger.info(
            "probe started: %s every %.3f s, models %s",
            self.url,
            self.interval,
            ", ".join(self.model_set.names),
        )
        return self

    def stop(self) -> None:
        """Stop the polling threads and wait for them to end; idempotent.

        Requests in flight finish first, so this can take up to ``timeout``.
        """
        if not self._threads or self._stopped_at is not None:
            return

        self._stop_requested.set()
        deadline = now() + self.timeout + 5.0
        for thread in self._threads:
            if thread.ident is None:
                continue  # Ctrl-C or SIGTERM came while start() started threads
            thread.join(max(deadline - now(), 0.0))
            if thread.is_alive():
                logger.error(
                    "%s did not stop within %.1f s; its thread is left behind",
                    thread.name,
                    self.timeout + 5.0,
                )
        self._stopped_at = now()
        for session in self._sessions:
            session.close()
        with self._new_sample:
            self._new_sample.notify_all()
        logger.info(
            "probe stopped: %s, %d samples, %.1f samples/s",
            self.url,
            len(self._samples),
            self.samples_per_second,
        )

    @property
    def running(self) -> bool:
        """True while every polling thread runs and no stop was requested."""
        return (
            bool(self._threads)
            and all(thread.is_alive() for thread in self._threads)
            and not self._stop_requested.is_set()
        )

    def __enter__(self) -> Probe:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # What the probe recorded.

    @property
    def samples(self) -> list[Sample]:
        """A copy of the samples this probe recorded, oldest first."""
        with self._new_sample:
            return list(self._samples)

    @property
    def samples_per_second(self) -> float:
        """Samples recorded per second from start to stop (or to now while running)."""
        if self._started_at is None:
            return 0.0
        end = self._stopped_at if self._stopped_at is not None else now()
        elapsed = end - self._started_at
        if elapsed <= 0:
            return 0.0
        return len(self._samples) / elapsed

    def wait_for(
        self, predicate: Callable[[Sample], bool], timeout: float
    ) -> Sample | None:
        """Wait until a sample recorded after this call satisfies ``predicate``.

        Returns that sample, or ``None`` when ``timeout`` seconds pass first or
        the probe stops. Raises HarnessError when the probe was never started.
        ``predicate`` runs on the caller's thread and must be quick, because the
        probe cannot record while it runs.
        """
        if not self._threads:
            raise HarnessError(
                f"wait_for() needs a running probe; call start() on the probe "
                f"of {self.url} first"
            )

        deadline = now() + timeout
        with self._new_sample:
            checked = len(self._samples)
            while True:
                for sample in self._samples[checked:]:
                    if predicate(sample):
                        return sample
                checked = len(self._samples)

                remaining = deadline - now()
                if remaining <= 0 or not self.running:
                    return None
                self._new_sample.wait(remaining)

    # The polling threads.

    def _run(self, endpoint: str, model: str | None, session: requests.Session) -> None:
        next_request = now()
        while not self._stop_requested.is_set():
            try:
                self._record(endpoint, model, session)
            except Exception:
                # _record already turns every request's exception into a sample;
                # this keeps an unexpected bug between requests from ending the
                # thread without a trace.
                logger.exception("probe of %s: %s request failed", self.url, endpoint)

            next_request += self.interval
            delay = next_request - now()
            if delay < 0:
                # Behind schedule: send the next request now instead of a burst
                # of requests to catch up.
                next_request = now()
                delay = 0.0
            self._stop_requested.wait(delay)

    def _record(
        self, endpoint: str, model: str | None, session: requests.Session
    ) -> None:
        started = now()
        try:
            sample = self._send(endpoint, model, started, session)
        except Exception as err:
            reason = _describe_exception(err)
            sample = Sample(
                t=started,
                endpoint=endpoint,
                latency=now() - started,
                model=model,
                error=f"{PROBE_ERROR}: {reason}",
            )
            if reason not in self._logged_probe_errors:
                self._logged_probe_errors.add(reason)
                logger.exception(
                    "probe of %s: recording the %s request for model %s raised",
                    self.url,
                    endpoint,
                    model,
                )

        self._log_outcome(sample)
        self.timeline.add_sample(sample)
        with self._new_sample:
            self._samples.append(sample)
            self._new_sample.notify_all()

    def _send(
        self,
        endpoint: str,
        model: str | None,
        started: float,
        session: requests.Session,
    ) -> Sample:
        try:
            if endpoint == "health":
                response = session.get(f"{self.url}/health", timeout=self.timeout)
            else:
                assert model is not None
                body = {
                    "model": model,
                    "instances": self.model_set.canary_inputs[model],
                }
                response = session.post(
                    f"{self.url}/predict", json=body, timeout=self.timeout
                )
        except requests.RequestException as err:
            return Sample(
                t=started,
                endpoint=endpoint,
                latency=now() - started,
                model=model,
                error=classify_request_error(err),
            )

        latency = now() - started
        payload = _json_body(response)
        if endpoint == "health":
            fields = _health_fields(payload)
        else:
            assert model is not None
            fields = self._predict_fields(model, payload)
        return Sample(
            t=started,
            endpoint=endpoint,
            latency=latency,
            http_status=response.status_code,
            model=model,
            **fields,
        )

    def _predict_fields(self, model: str, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            return {}

        fields: dict[str, Any] = {
            "tiers": {model: payload.get("tier")},
            "versions": {model: payload.get("version")},
        }
        probabilities = payload.get("probabilities")
        if probabilities is not None:
            try:
                fields["matches"] = tuple(self.model_set.identify(model, probabilities))
            except (TypeError, ValueError) as err:
                # Probabilities of the wrong shape or type match no known model;
                # no_silent_corruption then reports the response.
                logger.debug("probe: predictions of %s not comparable: %s", model, err)
        return fields

    def _log_outcome(self, sample: Sample) -> None:
        """Log when a request's outcome changes; repeats are only counted."""
        key = (sample.endpoint, sample.model)
        outcome = "ok" if sample.ok else sample.error or f"HTTP {sample.http_status}"
        previous, count = self._outcomes.get(key, ("ok", 0))
        if outcome == previous:
            self._outcomes[key] = (previous, count + 1)
            return

        self._outcomes[key] = (outcome, 1)
        request = sample.endpoint if sample.model is None else f"predict {sample.model}"
        if outcome == "ok":
            logger.info(
                "probe of %s: %s succeeds again after %d failed requests",
                self.url,
                request,
                count,
            )
        else:
            # A failed request is the target's behaviour, recorded on the
            # timeline for the checks to judge; it is not the harness's problem.
            logger.info("probe of %s: %s failed: %s", self.url, request, outcome)


def classify_request_error(err: requests.RequestException) -> str:
    """Return the ``Sample.error`` text for a request that got no HTTP response."""
    chain = list(_exception_chain(err))
    if any(isinstance(item, ConnectionRefusedError) for item in chain):
        return CONNECTION_REFUSED

    # requests raises ConnectionError, not Timeout, when the read of the body
    # times out, so the chain is searched for urllib3's or the socket's timeout.
    timeouts = (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)
    if any(isinstance(item, timeouts) for item in chain):
        return TIMEOUT
    return f"{CONNECTION_ERROR}: {_describe_exception(chain[-1])}"


def _exception_chain(err: BaseException) -> Iterator[BaseException]:
    """Yield ``err`` and every exception it wraps, breadth first.

    requests and urllib3 wrap the OS error in ``args``, ``reason`` or
    ``__cause__`` depending on where the connection failed.
    """
    queue: list[BaseException] = [err]
    seen: set[int] = set()
    while queue:
        item = queue.pop(0)
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item

        wrapped = [item.__cause__, item.__context__, getattr(item, "reason", None)]
        wrapped += list(item.args)
        queue += [inner for inner in wrapped if isinstance(inner, BaseException)]


def _describe_exception(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}"
    if len(text) > _MAX_REASON_LENGTH:
        text = text[: _MAX_REASON_LENGTH - 1] + "…"
    return text


def _json_body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        # A body that is not JSON leaves status, tiers and matches empty, which
        # the checks report as a response they could not verify.
        return None


def _health_fields(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        return {}

    status = payload.get("status")
    tiers: dict[str, Any] = {}
    versions: dict[str, Any] = {}
    models: dict[str, dict[str, Any]] = {}
    reported = payload.get("models")
    if isinstance(reported, dict):
        for name, info in reported.items():
            if not isinstance(info, dict):
                continue
            tiers[name] = info.get("tier")
            versions[name] = info.get("version")
            models[name] = {
                key: value
                for key, value in info.items()
                if key not in ("tier", "version")
            }
    return {
        "status": status if isinstance(status, str) else None,
        "tiers": tiers,
        "versions": versions,
        "models": models,
    }
