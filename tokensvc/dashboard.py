"""The RQ dashboard (docs/api.md): rq-dashboard's own Flask app, for admin keys only.

rq-dashboard keeps module-level state (here: every job it loads is JSON, as all jobs
of tokensvc are), so it runs as an app of its own, which ``create_app`` mounts under ``/rq``.
A small WSGI layer in front lets in admins only: HTTP Basic whose password is an admin
service key (the user name is ignored), or ``Authorization: Bearer <admin key>``.
"""

from __future__ import annotations

import json
import logging
import uuid
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import rq_dashboard  # type: ignore[import-untyped]
from flask import Flask
from rq import Worker
from rq.serializers import JSONSerializer
from rq_dashboard import web
from werkzeug.datastructures import Authorization
from werkzeug.wrappers import Response

from tokensvc.auth import KeyAuthenticator, bearer_key
from tokensvc.errors import BackendUnavailable, Forbidden, TokensvcError, Unauthorized, problem
from workers.queues import JSONJob, JSONQueue

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("tokensvc.dashboard")


def make_dashboard(queue_redis_url: str, authenticator: KeyAuthenticator) -> WSGIApplication:
    """rq-dashboard on the queue Redis, behind the admin-key check."""
    return AdminOnly(_rq_dashboard_app(queue_redis_url), authenticator)


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


def _cross_site(environ: WSGIEnvironment) -> bool:
    """A request another site made a browser send (following a link, a GET, is fine)."""
    link = environ.get("HTTP_SEC_FETCH_MODE") == "navigate" and environ["REQUEST_METHOD"] == "GET"
    return environ.get("HTTP_SEC_FETCH_SITE") == "cross-site" and not link


class AdminOnly:
    """WSGI middleware: 401 without a usable key, 403 for other roles, 503 if undecidable."""

    def __init__(self, app: WSGIApplication, authenticator: KeyAuthenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            if _cross_site(environ):
                # Browsers resend Basic credentials on their own: no forged jobs actions.
                raise Forbidden("the RQ dashboard refuses cross-site requests other than links")
            key = self.authenticator.authenticate(_presented_key(environ.get("HTTP_AUTHORIZATION")))
            if key.role != "admin":
                raise Forbidden(f"the RQ dashboard needs the admin role, not {key.role}")
        except TokensvcError as error:
            return _refusal(error, environ)(environ, start_response)
        return self.app(environ, start_response)


def _refusal(error: TokensvcError, environ: WSGIEnvironment) -> Response:
    request_id = uuid.uuid4().hex
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    log.info("rq dashboard refused (%s, request %s)", error.slug, request_id)
    body = problem(error, instance=path, request_id=request_id)
    response = Response(json.dumps(body), error.status, mimetype="application/problem+json")
    response.headers.update({"X-Request-Id": request_id, "Cache-Control": "no-store"})
    if isinstance(error, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Basic realm="tokensvc"'
    if isinstance(error, BackendUnavailable):
        response.headers["Retry-After"] = str(error.retry_after)
    return response
