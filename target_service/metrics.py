"""Prometheus metrics of one service instance, in a registry of its own.

A registry per app, rather than the global one, lets several apps live in one
process (tests do) without their metric names clashing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from target_service.slots import Tier

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServiceMetrics:
    """Load attempts and failures, the served tier and request latency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.load_attempts = Counter(
            "target_service_load_attempts",
            "Attempts to load a model file, including ones rejected before unpickling",
            ["model"],
            registry=self.registry,
        )
        self.load_failures = Counter(
            "target_service_load_failures",
            "Rejected model files by reason",
            ["model", "reason"],
            registry=self.registry,
        )
        self.predict_failures = Counter(
            "target_service_predict_failures",
            "Predictions that failed with status 500",
            ["model"],
            registry=self.registry,
        )
        self.tier = Gauge(
            "target_service_model_tier",
            "1 for the tier each model is served from, 0 for the other tiers",
            ["model", "tier"],
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "target_service_request_duration_seconds",
            "Time from request to response, in seconds",
            ["endpoint"],
            registry=self.registry,
        )

    def set_tier(self, model: str, tier: Tier) -> None:
        for candidate in Tier:
            self.tier.labels(model=model, tier=str(candidate)).set(
                1 if candidate is tier else 0
            )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class LatencyMiddleware:
    """ASGI middleware that records the latency of each request by endpoint.

    Paths outside ``endpoints`` are counted as ``other`` so that a client
    sending random paths cannot create unbounded label values.
    """

    def __init__(
        self, app: ASGIApp, metrics: ServiceMetrics, endpoints: Iterable[str]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.endpoints = frozenset(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            path = scope.get("path", "")
            endpoint = path if path in self.endpoints else "other"
            self.metrics.request_latency.labels(endpoint=endpoint).observe(
                time.perf_counter() - started
            )
