"""The app factory: settings, services, blueprints, problem+json errors."""

from __future__ import annotations

import logging
import time
import uuid

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Response as BaseResponse

from tokensvc.api import consoles, hosts, instances, leases, ops, tokens
from tokensvc.api.hotpath import ValidateHotPath
from tokensvc.api.problems import problem_of, problem_response
from tokensvc.api.routing import MAX_BODY
from tokensvc.config import Settings
from tokensvc.dashboard import make_dashboard
from tokensvc.metrics import UNMATCHED_ROUTE, method_label, status_label
from tokensvc.services import Services

log = logging.getLogger("tokensvc.api")

# RFC 9745 / RFC 8594: deprecated since this release, gone with the next.
DEPRECATION_HEADERS = {
    "Deprecation": "@1795564800",  # 2026-11-25
    "Sunset": "Tue, 01 Jun 2027 00:00:00 GMT",
}
BLUEPRINTS = (instances.bp, consoles.bp, tokens.bp, leases.bp, hosts.bp, ops.bp)


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


def _register_error_handlers(app: Flask) -> None:
    # Every failure answers through tokensvc/api/problems.py, as on validate's hot path.
    @app.errorhandler(Exception)
    def any_error(error: Exception) -> BaseResponse:
        request_id = getattr(g, "request_id", None) or uuid.uuid4().hex
        answer = problem_of(error, request_id)
        response = problem_response(answer, instance=request.path, request_id=request_id)
        allow = dict(error.get_headers()).get("Allow") if isinstance(error, HTTPException) else None
        if allow:
            response.headers["Allow"] = allow
        return response


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
