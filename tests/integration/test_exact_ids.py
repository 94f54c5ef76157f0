"""Host names and proxy ids compare exactly (case, trailing spaces), on SQLite and MariaDB.

MariaDB's default collation ignores both: a proxy key bound to ``PROXY-Q`` heartbeated
and deleted ``proxy-q``'s leases, a compute key for ``COMPUTE-B`` purged ``compute-b``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask

from tests.support import AppFactory, Keys, put_instance, registered_token
from tokensvc.stores.rows import consoles

LOOKALIKES = ["PROXY-Q", "Proxy-Q", "proxy-q ", "proxy-q  "]
HOST_LOOKALIKES = ["COMPUTE-B", "Compute-b", "compute-b ", "COMPUTE-B "]


@pytest.fixture(params=["sqlite", "mariadb"])
def app(request: pytest.FixtureRequest, make_app: AppFactory, tmp_path: Path) -> Flask:
    if request.param == "sqlite":
        return make_app(database_url=f"sqlite:///{tmp_path / 'ids.db'}")
    return make_app(database_url=request.getfixturevalue("mariadb_url"))


class World:
    """compute-b's instance with a console that proxy-q holds."""

    def __init__(self, app: Flask) -> None:
        self.app, self.client, self.keys = app, app.test_client(), Keys(app)
        self.admin = self.bearer(self.keys.mint("admin"))
        self.instance = put_instance(self.client, self.admin, compute_host="compute-b")
        self.token = registered_token(self.client, self.admin, self.instance, host="10.9.0.1")
        connected = self.client.post(
            "/v1/tokens/connect",
            json={"token": self.token, "proxy_id": "proxy-q"},
            headers=self.proxy("proxy-q"),
        )
        assert connected.status_code == 200
        self.lease_id = connected.json["lease"]["data"]["id"]

    @staticmethod
    def bearer(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def proxy(self, proxy_id: str) -> dict[str, str]:
        return self.bearer(self.keys.mint("proxy", proxy_id=proxy_id))

    def compute(self, host: str) -> dict[str, str]:
        return self.bearer(self.keys.mint("compute", host=host))

    def leases_of(self, proxy_id: str) -> Any:
        answer = self.client.get(
            "/v1/leases", query_string={"proxy_id": proxy_id}, headers=self.admin
        )
        assert answer.status_code == 200
        return answer.json["leases"]

    def heartbeat(self, proxy_id: str) -> Any:
        answer = self.client.post(
            f"/v1/proxies/{quote(proxy_id)}/heartbeat", headers=self.proxy(proxy_id)
        )
        assert answer.status_code == 200
        return answer.json

    def expire_consoles(self) -> None:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        with self.app.extensions["tokensvc"].engine.begin() as conn:
            conn.execute(consoles.update().values(expires=past))

    def purge(self, host: str) -> Any:
        answer = self.client.delete(
            f"/v1/hosts/{quote(host)}/consoles/expired", headers=self.compute(host)
        )
        assert answer.status_code == 200
        return answer.json


@pytest.fixture
def world(app: Flask) -> World:
    return World(app)


@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_a_lookalike_proxy_id_cannot_touch_the_leases(world: World, lookalike: str) -> None:
    assert world.heartbeat(lookalike) == {"renewed": 0, "close": []}
    assert world.leases_of(lookalike) == []
    headers = world.proxy(lookalike)
    path = f"/v1/proxies/{quote(lookalike)}/leases"
    assert world.client.delete(path, headers=headers).status_code == 204
    disconnect = f"/v1/leases/{world.lease_id}/disconnect"
    assert world.client.post(disconnect, headers=headers).status_code == 204
    # proxy-q's lease is untouched: still held, still renewed by proxy-q alone.
    [held] = world.leases_of("proxy-q")
    assert held["data"]["id"] == world.lease_id
    assert world.heartbeat("proxy-q") == {"renewed": 1, "close": []}


@pytest.mark.parametrize("lookalike", HOST_LOOKALIKES)
def test_a_lookalike_compute_host_cannot_purge(world: World, lookalike: str) -> None:
    world.expire_consoles()
    assert world.purge(lookalike) == {"deleted": 0, "batches": 0}
    leases = world.client.get(
        "/v1/leases", query_string={"compute_host": lookalike}, headers=world.admin
    )
    assert leases.json == {"leases": []}
    assert world.purge("compute-b") == {"deleted": 1, "batches": 1}
