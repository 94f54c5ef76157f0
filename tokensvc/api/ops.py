"""Operations: liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST

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
    state = {"database": "ok" if call.services.database.is_reachable() else "down"}
    cached = call.services.cached
    if cached is None:
        state["redis"] = "disabled"
    else:
        state["redis"] = "ok" if cached.is_cache_reachable() else "down"
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
