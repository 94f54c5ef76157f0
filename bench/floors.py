"""The floors: bare Flask endpoints that do the least the service's hot path could do.

- ``GET /hello``: the WSGI server and Flask alone (row a).
- ``POST /naive-cache``: parse the JSON body, hash the token, one Redis GET of the
  key the service fills, return the stored JSON (row b: the naive cache floor).
- ``POST /naive-db``: parse, hash, one PyMySQL point select on the unique token_hash
  index, one connection per worker thread (the naive database floor).

No auth, no metrics, no breaker, no validation: what is left is the floor itself.
Configured by ``BENCH_REDIS_URL`` and ``BENCH_MYSQL_URL`` (a SQLAlchemy-style URL).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from typing import Any

import pymysql
import redis
from flask import Flask, Response, abort, request
from sqlalchemy.engine import make_url

from tokensvc.stores import keys

_SELECT = (
    "SELECT instance_uuid, host, port, console_type, access_url, options, expires"
    " FROM console_connections WHERE token_hash = %s AND expires > UTC_TIMESTAMP()"
)


def _mysql_connector(url: str) -> Any:
    parsed = make_url(url)
    local = threading.local()

    def connection() -> pymysql.connections.Connection[Any]:
        if not hasattr(local, "connection"):
            local.connection = pymysql.connect(
                host=parsed.host or "127.0.0.1",
                port=parsed.port or 3306,
                user=parsed.username or "root",
                password=parsed.password or "",
                database=parsed.database,
                autocommit=True,
            )
        return local.connection  # type: ignore[no-any-return]

    return connection


def _token_hash() -> str:
    body = json.loads(request.get_data())
    return hashlib.sha256(body["token"].encode()).hexdigest()


def create_app() -> Flask:
    app = Flask(__name__)
    cache = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    connection = _mysql_connector(os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1/test"))

    @app.get("/hello")
    def hello() -> Response:
        return Response(b"hello", mimetype="text/plain")

    @app.post("/naive-cache")
    def naive_cache() -> Response:
        value = cache.get(keys.console_key(_token_hash()))
        if not isinstance(value, bytes) or value.count(b"\n") != 2:
            abort(404)
        # The service's compact entry: the envelope goes back around the data.
        _type, version, data = value.split(b"\n")
        body = b'{"connection":{"object":"ConsoleConnection","version":"%s","data":%s}}'
        return Response(body % (version, data), mimetype="application/json")

    @app.post("/naive-db")
    def naive_db() -> Response:
        with connection().cursor() as cursor:
            cursor.execute(_SELECT, (_token_hash(),))
            row = cursor.fetchone()
        if row is None:
            abort(404)
        names = ("instance_uuid", "host", "port", "console_type", "access_url", "options")
        found = dict(zip(names, row[:6], strict=True)) | {"expires": row[6].isoformat()}
        found["options"] = json.loads(found["options"])
        return Response(json.dumps({"connection": found}), mimetype="application/json")

    return app
