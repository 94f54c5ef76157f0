"""Operations: liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import redis
import sqlalchemy as sa
from flask import Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError

from tokensvc.api.openapi import build_openapi
from tokensvc.api.routing import ApiBlueprint, Call

bp = ApiBlueprint("ops", __name__)


@bp.operation("/healthz", "GET", summary="Liveness", responses={200: "Health"})
def healthz(call: Call) -> dict[str, str]:
    return {"status": "ok"}


@bp.operation(
    "/readyz",
    "GET",
    summary="Readiness: 503 only when the database is down",
    responses={200: "Readiness", 503: "Readiness"},
)
def readyz(call: Call) -> tuple[dict[str, str], int]:
    state = {"database": "ok", "redis": "disabled"}
    try:
        with call.services.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except SQLAlchemyError:
        state["database"] = "down"
    if call.services.cached is not None:
        try:
            call.services.cached.cache.ping()
            state["redis"] = "ok"
        except redis.RedisError:
            state["redis"] = "down"
    return state, 503 if state["database"] == "down" else 200


@bp.operation(
    "/metrics",
    "GET",
    summary="Prometheus metrics of all worker processes",
    roles=("admin",),
    responses={200: "Metrics"},
)
def metrics(call: Call) -> Response:
    return Response(call.services.metrics.render(), content_type=CONTENT_TYPE_LATEST)


@bp.operation(
    "/openapi.json", "GET", summary="This API's OpenAPI 3.1 document", responses={200: "OpenAPI"}
)
def openapi(call: Call) -> dict[str, Any]:
    return build_openapi(current_app, call.services)
