"""The RQ dashboard (docs/api.md): rq-dashboard's own Flask app, for admin keys only.

rq-dashboard keeps module-level state (here: every job it loads is JSON, as all jobs
of tokensvc are), so it runs as an app of its own, which ``create_app`` mounts under ``/rq``.
A small WSGI layer in front lets in admins only: HTTP Basic whose password is an admin
service key (the user name is ignored), or ``Authorization: Bearer <admin key>``.

Browsers resend Basic credentials on their own, to any site's requests: so the layer
also lets state change (requeue, empty, delete, compact: rq-dashboard's POST routes,
which its own buttons call with ``$.post``) only by a POST from the dashboard's origin.
"""

from __future__ import annotations

import json
import logging
import uuid
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import rq_dashboard  # type: ignore[import-untyped]
from flask import Flask
from rq import Worker
from rq.serializers import JSONSerializer
from rq_dashboard import web
from werkzeug.datastructures import Authorization
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from tokensvc.auth import KeyAuthenticator, bearer_key
from tokensvc.errors import (
    Forbidden,
    MethodNotAllowed,
    TokensvcError,
    Unauthorized,
    problem,
)
from workers.queues import JSONJob, JSONQueue

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from tokensvc.ratelimit import RateLimiter

log = logging.getLogger("tokensvc.dashboard")


def make_dashboard(
    queue_redis_url: str, authenticator: KeyAuthenticator, limiter: RateLimiter
) -> WSGIApplication:
    """rq-dashboard on the queue Redis, behind the admin-key check."""
    return AdminOnly(_rq_dashboard_app(queue_redis_url), authenticator, limiter)


# Methods that change nothing; anything else must come from the dashboard's own pages.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _json_only() -> None:
    """Module state of rq_dashboard: every job it loads is JSON, never pickle (its serializer
    setting alone leaves the job page, delete, requeue and workers list on pickle)."""
    web.config.serializer = JSONSerializer
    web.Job = JSONJob
    web.requeue_job = lambda job_id, connection: JSONJob.fetch(job_id, connection).requeue()
    web.Worker = SimpleNamespace(
        all=partial(Worker.all, job_class=JSONJob, queue_class=JSONQueue, serializer=JSONSerializer)
    )


def _rq_dashboard_app(queue_redis_url: str) -> Flask:
    _json_only()
    # Its templates link the app's "static" endpoint too: serve the package's static folder.
    app = Flask(__name__, static_folder=str(Path(rq_dashboard.__file__).parent / "static"))
    app.config.update(
        RQ_DASHBOARD_REDIS_URL=queue_redis_url,
        # Lists show the description stored at enqueue time (function and arguments), so
        # one job that is not JSON fails its own view, not the whole list.
        RQ_DASHBOARD_SHOW_FULL_ARGS=False,
        RQ_DASHBOARD_POLL_INTERVAL=2500,
    )
    web.setup_rq_connection(app)
    app.register_blueprint(rq_dashboard.blueprint)
    return app


def _presented_key(authorization: str | None) -> str:
    """The key of a Basic (its password) or Bearer header, shape-checked before any I/O."""
    credentials = Authorization.from_header(authorization)
    if credentials is not None and credentials.type == "basic":
        authorization = f"Bearer {credentials.password or ''}"
    return bearer_key(authorization)


def _refuse_other_sites(environ: WSGIEnvironment) -> None:
    """403 for what another site made a browser send; following a link (a GET) is fine."""
    if environ["REQUEST_METHOD"] not in SAFE_METHODS:
        if not _same_origin(environ):
            raise Forbidden("the RQ dashboard changes state only on requests from its own pages")
        return
    link = environ.get("HTTP_SEC_FETCH_MODE") == "navigate" and environ["REQUEST_METHOD"] == "GET"
    if environ.get("HTTP_SEC_FETCH_SITE") == "cross-site" and not link:
        raise Forbidden("the RQ dashboard refuses cross-site requests other than links")


def _same_origin(environ: WSGIEnvironment) -> bool:
    """The browser says so (Sec-Fetch-Site), or, if it sends none, its Origin is this host."""
    site: str | None = environ.get("HTTP_SEC_FETCH_SITE")
    if site is not None:
        return site == "same-origin"
    origin = urlsplit(environ.get("HTTP_ORIGIN", ""))
    host: str = environ.get("HTTP_HOST", "").lower()
    return origin.scheme in ("http", "https") and bool(host) and origin.netloc.lower() == host


class AdminOnly:
    """WSGI middleware: 401 without a usable key, 403 for other roles or other sites'
    requests, 405 for a GET to a route that changes state, 503 if undecidable."""

    def __init__(self, app: Flask, authenticator: KeyAuthenticator, limiter: RateLimiter) -> None:
        self.app = app
        self.authenticator = authenticator
        self.limiter = limiter  # failed key checks count as on the API (429 over the limit)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            _refuse_other_sites(environ)
            key = self.limiter.authenticate(
                self.authenticator,
                lambda: _presented_key(environ.get("HTTP_AUTHORIZATION")),
                environ.get("REMOTE_ADDR") or "",
            )
            if key.role != "admin":
                raise Forbidden(f"the RQ dashboard needs the admin role, not {key.role}")
            if environ["REQUEST_METHOD"] in SAFE_METHODS and self._changes_state(environ):
                # rq-dashboard requeues on a GET too: a link or an <img> must not.
                raise MethodNotAllowed("this RQ dashboard action needs a POST from its own page")
        except TokensvcError as error:
            return _refusal(error, environ)(environ, start_response)
        return self.app(environ, start_response)

    def _changes_state(self, environ: WSGIEnvironment) -> bool:
        """Whether the path is one of rq-dashboard's actions: the routes it answers POST on."""
        try:
            self.app.url_map.bind_to_environ(environ).match(method="POST")
        except HTTPException:  # not found, GET only, or a redirect (RequestRedirect)
            return False
        return True


def _refusal(error: TokensvcError, environ: WSGIEnvironment) -> Response:
    request_id = uuid.uuid4().hex
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    log.info("rq dashboard refused (%s, request %s)", error.slug, request_id)
    body = problem(error, instance=path, request_id=request_id)
    response = Response(json.dumps(body), error.status, mimetype="application/problem+json")
    response.headers.update({"X-Request-Id": request_id, "Cache-Control": "no-store"})
    if isinstance(error, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Basic realm="tokensvc"'
    retry_after = getattr(error, "retry_after", None)  # 503 and 429 say when to come back
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    if isinstance(error, MethodNotAllowed):
        response.headers["Allow"] = "POST"
    return response
