"""The app factory: settings, services, blueprints, problem+json errors."""

from __future__ import annotations

import logging
import time
import uuid

from flask import Flask, Response, g, jsonify, request
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from tokensvc.api import consoles, hosts, instances, leases, ops, tokens
from tokensvc.api.hotpath import ValidateHotPath
from tokensvc.api.routing import MAX_BODY
from tokensvc.config import Settings
from tokensvc.dashboard import make_dashboard
from tokensvc.errors import (
    BackendUnavailable,
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    TokensvcError,
    UnsupportedMediaType,
    problem,
)
from tokensvc.metrics import UNMATCHED_ROUTE, method_label, status_label
from tokensvc.services import Services

log = logging.getLogger("tokensvc.api")

# RFC 9745 / RFC 8594: deprecated since this release, gone with the next.
DEPRECATION_HEADERS = {
    "Deprecation": "@1795564800",  # 2026-11-25
    "Sunset": "Tue, 01 Jun 2027 00:00:00 GMT",
}
BLUEPRINTS = (instances.bp, consoles.bp, tokens.bp, leases.bp, hosts.bp, ops.bp)
_HTTP_ERRORS: dict[int, type[TokensvcError]] = {
    400: BadRequest,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def create_app(config: Settings | None = None) -> Flask:
    settings = config if config is not None else Settings.from_env()
    app = Flask("tokensvc")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False  # type: ignore[attr-defined]
    services = Services.build(settings)
    app.extensions["tokensvc"] = services
    if services.memcached_backend:
        log.warning(
            "CONSOLE_TOKENS_BACKEND=memcached is deprecated and goes away in the next release: "
            "memcached may evict tokens before they expire. Switch to database (see the README)."
        )
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    _register_error_handlers(app)
    _register_request_hooks(app, services)
    if settings.queue_redis_url is not None:
        # rq-dashboard keeps module-level state: it is an app of its own, mounted here.
        dashboard = make_dashboard(
            settings.queue_redis_url, services.authenticator, services.limiter
        )
        app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/rq": dashboard})  # type: ignore[method-assign]
    if not services.memcached_backend:  # (whose answers carry deprecation headers)
        app.wsgi_app = ValidateHotPath(app.wsgi_app, services)  # type: ignore[method-assign]
    return app


def problem_response(error: TokensvcError) -> Response:
    request_id = getattr(g, "request_id", None) or uuid.uuid4().hex
    response = jsonify(problem(error, instance=request.path, request_id=request_id))
    response.status_code = error.status
    response.mimetype = "application/problem+json"
    retry_after = getattr(error, "retry_after", None)  # 503 and 429 say when to come back
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(TokensvcError)
    def service_error(error: TokensvcError) -> Response:
        return problem_response(error)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def database_down(error: Exception) -> Response:
        log.warning("database unavailable: %s", type(error).__name__)
        return problem_response(BackendUnavailable("the database is unavailable, retry later"))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        kind = _HTTP_ERRORS.get(error.code or 500, TokensvcError)
        response = problem_response(kind(error.description if kind is BadRequest else None))
        allow = dict(error.get_headers()).get("Allow")
        if allow:
            response.headers["Allow"] = allow
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        # Logged with its traceback under the request id; the caller sees neither trace nor text.
        log.exception("unexpected error (request %s)", g.get("request_id"))
        return problem_response(TokensvcError("unexpected error; quote the request_id"))


def _register_request_hooks(app: Flask, services: Services) -> None:
    latency = services.metrics.request_latency

    @app.before_request
    def start() -> None:
        g.request_id = uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def finish(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
        elapsed = time.perf_counter() - g.started
        labels = (route, method_label(request.method), status_label(response.status_code))
        latency.labels(*labels).observe(elapsed)
        response.headers["X-Request-Id"] = g.request_id
        if services.memcached_backend:
            response.headers.update(DEPRECATION_HEADERS)
        return response
