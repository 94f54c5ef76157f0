"""``/openapi.json``: generated from the declared operations, bodies and object fields."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask

from tokensvc import __version__
from tokensvc.api.routing import ApiBlueprint, Operation
from tokensvc.api.schemas import Body
from tokensvc.api.views import HIDDEN
from tokensvc.errors import PROBLEM_TYPES
from tokensvc.objects.base import registered_objects
from tokensvc.objects.instance import Instance
from tokensvc.services import Services

JSON = "application/json"
# Answers that are not JSON, by their response name.
_MEDIA_TYPES = {"Metrics": "text/plain"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _primitive_schema(name: str) -> dict[str, Any]:
    cls = registered_objects()[name]
    data = {n: f.json_schema() for n, f in cls.fields.items() if n not in HIDDEN}
    return {
        "type": "object",
        "description": f"{name} primitive; versions {', '.join(cls.VERSIONS)}",
        "properties": {
            "object": {"const": name},
            "version": {"enum": list(cls.VERSIONS)},
            "data": {"type": "object", "properties": data},
        },
        "required": ["object", "version", "data"],
    }


_CLOSES = {  # the sessions a proxy must close
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"lease_id": {"type": "string"}, "reason": {"type": "string"}},
    },
}
_RESPONSES: dict[str, dict[str, Any]] = {
    "Registered": {
        "type": "object",
        "properties": {
            "token": {"type": "string", "description": "shown once"},
            "access_url": {"type": ["string", "null"]},
            "expires_at": {"type": "string", "format": "date-time"},
            "connection": _ref("ConsoleConnection"),
        },
    },
    "Validated": {"type": "object", "properties": {"connection": _ref("ConsoleConnection")}},
    "Connected": {
        "type": "object",
        "properties": {"connection": _ref("ConsoleConnection"), "lease": _ref("ConsoleLease")},
    },
    "LeaseList": {
        "type": "object",
        "properties": {"leases": {"type": "array", "items": _ref("ConsoleLease")}},
    },
    "Heartbeat": {
        "type": "object",
        "properties": {
            "renewed": {"type": "integer"},
            "close": _CLOSES,
        },
    },
    "CloseFeed": {
        "type": "object",
        "properties": {
            "close": _CLOSES,
            "cursor": {"type": "string", "description": "pass it to the next call"},
            "busy": {"type": "boolean", "description": "true: too many waiting, call again"},
        },
    },
    "ConnectionList": {
        "type": "object",
        "properties": {"connections": {"type": "array", "items": _ref("ConsoleConnection")}},
    },
    "PurgeResult": {
        "type": "object",
        "properties": {"deleted": {"type": "integer"}, "batches": {"type": "integer"}},
    },
    "Health": {"type": "object", "properties": {"status": {"const": "ok"}}},
    "Readiness": {
        "type": "object",
        "properties": {
            "database": {"enum": ["ok", "down"]},
            "redis": {"enum": ["ok", "down", "disabled"]},
        },
    },
    "Metrics": {"type": "string", "description": "Prometheus text format"},
    "OpenAPI": {"type": "object"},
    "Problem": {
        "type": "object",
        "properties": {
            "type": {"enum": sorted({f"/problems/{p.slug}" for p in PROBLEM_TYPES})},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "request_id": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "detail": {"type": "string"}},
                },
            },
        },
    },
}


def _operation(op: Operation, services: Services) -> dict[str, Any]:
    problem = {"application/problem+json": {"schema": _ref("Problem")}}
    responses: dict[str, Any] = {
        str(status): {"description": name or "No content"}
        | ({"content": {_MEDIA_TYPES.get(name, JSON): {"schema": _ref(name)}}} if name else {})
        for status, name in op.responses.items()
    }
    responses["default"] = {"description": "Problem (RFC 9457)", "content": problem}
    spec: dict[str, Any] = {"summary": op.summary, "responses": responses}
    if op.roles:
        # OpenAPI 3.1 lets a non-OAuth scheme's requirement list role names.
        spec["security"] = [{"serviceKey": list(op.roles)}]
        spec["description"] = f"Roles: {', '.join(op.roles)}"
    if op.needs is not None:
        spec["x-database-only"] = True  # 501 unsupported-in-backend in memcached mode
    if op.body is not None:
        body = op.body if isinstance(op.body, Body) else op.body(services)
        content = {"application/json": {"schema": _ref(body.name)}}
        spec["requestBody"] = {"required": bool(body.required), "content": content}
    parameters = [
        {"name": p, "in": "path", "required": True, "schema": _path_schema(p)}
        for p in re.findall(r"<(\w+)>", op.rule)
    ] + [{"name": n, "in": "query", "required": False, "schema": s} for n, s in op.query.items()]
    if parameters:
        spec["parameters"] = parameters
    return spec


def _path_schema(name: str) -> dict[str, Any]:
    """What the views check a path parameter against; others are any string."""
    checked = {"uuid": Instance.fields["uuid"], "host": Instance.fields["host"]}
    field = checked.get(name)
    return {"type": "string"} if field is None else field.json_schema()


def build_openapi(app: Flask, services: Services) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    bodies: dict[str, Any] = {}
    for blueprint in app.blueprints.values():
        if not isinstance(blueprint, ApiBlueprint):
            continue
        for op in blueprint.operations:
            path = re.sub(r"<(\w+)>", r"{\1}", op.rule)
            paths.setdefault(path, {})[op.method.lower()] = _operation(op, services)
            if op.body is not None:
                body = op.body if isinstance(op.body, Body) else op.body(services)
                bodies[body.name] = body.json_schema()
    schemas = {name: _primitive_schema(name) for name in registered_objects()}
    return {
        "openapi": "3.1.0",
        "info": {"title": "tokensvc", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas | _RESPONSES | bodies,
            "securitySchemes": {"serviceKey": {"type": "http", "scheme": "bearer"}},
        },
    }
