"""The HTTP API: /predict, /health and /metrics on FastAPI."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

import anyio.to_thread
import numpy as np
import sklearn
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat

from target_service.config import DEFAULT_MODEL, ServiceConfig
from target_service.failures import describe_exception
from target_service.forking import shutdown_forkserver
from target_service.loaders import Loader, create_loader
from target_service.metrics import CONTENT_TYPE, LatencyMiddleware, ServiceMetrics
from target_service.slots import ModelSlot, ServedModel, Tier

logger = logging.getLogger(__name__)

ENDPOINTS = ("/predict", "/health", "/metrics")


class PredictRequest(BaseModel):
    """Body of ``POST /predict``: a model name and rows of feature values."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = DEFAULT_MODEL
    instances: list[list[FiniteFloat]] = Field(min_length=1)


def create_app(config: ServiceConfig) -> FastAPI:
    """Build the service for ``config``; models load when the app starts up."""
    metrics = ServiceMetrics()
    loader = create_loader(config, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info(
            "starting with the %s loader on %s, models %s",
            loader.name,
            config.model_dir,
            ", ".join(config.models),
        )
        await anyio.to_thread.run_sync(loader.start)
        logger.info("ready: %s", _summary(loader))
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(loader.close)
            shutdown_forkserver()
            logger.info("stopped")

    app = FastAPI(title="model-chaos reference service", lifespan=lifespan)
    app.state.loader = loader
    app.state.metrics = metrics
    app.add_middleware(LatencyMiddleware, metrics=metrics, endpoints=ENDPOINTS)
    app.add_exception_handler(RequestValidationError, _invalid_request)

    # A plain def runs in a worker thread, so a model stuck in predict blocks
    # that thread and not the event loop that serves /health.
    @app.post("/predict")
    def predict(request: PredictRequest) -> JSONResponse:
        slot = _slot(loader, request.model)
        served = slot.served
        features = _features(request.instances, served)
        try:
            return _predict(request.model, served, features)
        except Exception as err:
            metrics.predict_failures.labels(model=request.model).inc()
            logger.error(
                "%s: prediction failed with the model from %s (tier %s): %s",
                request.model,
                served.source,
                served.tier,
                describe_exception(err),
            )
            raise HTTPException(
                status_code=500,
                detail=(
                    f"prediction with model {request.model!r} failed: "
                    f"{describe_exception(err)}"
                ),
            ) from err

    @app.get("/health")
    async def health() -> dict[str, Any]:
        statuses = {name: slot.status() for name, slot in loader.slots.items()}
        healthy = all(status.tier == Tier.PRIMARY for status in statuses.values())
        return {
            "status": "healthy" if healthy else "degraded",
            "integrity": loader.integrity,
            "loader": loader.name,
            "sklearn_version": sklearn.__version__,
            "models": {name: asdict(status) for name, status in statuses.items()},
        }

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(content=metrics.render(), media_type=CONTENT_TYPE)

    return app


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI's default handler echoes the input back, and an input holding NaN
    # cannot be rendered as JSON, which turned a 422 into a 500.
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422)


def _slot(loader: Loader, model: str) -> ModelSlot:
    slot = loader.slots.get(model)
    if slot is None:
        raise HTTPException(
            status_code=404,
            detail=(
                f"unknown model {model!r}: this service serves "
                f"{', '.join(loader.slots)}"
            ),
        )
    return slot


def _features(instances: list[list[float]], served: ServedModel) -> np.ndarray:
    widths = {len(row) for row in instances}
    if len(widths) != 1 or 0 in widths:
        raise HTTPException(
            status_code=422,
            detail=(
                "instances must be non-empty rows of equal length, got rows of "
                f"lengths {sorted(widths)}"
            ),
        )
    expected = getattr(served.model, "n_features_in_", None)
    (width,) = widths
    if isinstance(expected, int) and width != expected:
        raise HTTPException(
            status_code=422,
            detail=f"the model expects {expected} features per row, got {width}",
        )
    return np.asarray(instances, dtype=np.float64)


def _predict(model: str, served: ServedModel, features: np.ndarray) -> JSONResponse:
    if served.model is None:
        raise RuntimeError(f"no model was loaded from {served.source}")
    predictions = served.model.predict(features).tolist()
    probabilities = np.asarray(served.model.predict_proba(features)).tolist()
    # JSONResponse renders here and rejects NaN, which a damaged model can return.
    return JSONResponse(
        {
            "model": model,
            "tier": str(served.tier),
            "version": served.version,
            "predictions": predictions,
            "probabilities": probabilities,
        }
    )


def _summary(loader: Loader) -> str:
    parts = []
    for name, slot in loader.slots.items():
        status = slot.status()
        parts.append(f"{name} on {status.tier}")
    return ", ".join(parts)
