"""Connection tracking through the API, on real MariaDB and Redis."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
import uuid

import pytest
import sqlalchemy as sa

from tests.support import Keys, put_instance, register_console
from tokensvc.stores.leases import leases
from tokensvc.stores.rows import consoles

SERIAL_PORTS = [4555, 4556, 4557]


@pytest.fixture
def admin(keys):
    return keys.headers("admin")


@pytest.fixture
def proxy(keys):
    return keys.headers("proxy")


@pytest.fixture
def api(app):
    return app.test_client()


@pytest.fixture
def instance(api, admin):
    return put_instance(api, admin)


def register(api, admin, instance, **fields):
    """A serial console at 10.3.0.4:4555 (no port unless given when ``ports`` is)."""
    port = fields.pop("port", None if "ports" in fields else 4555)
    fields.setdefault("console_type", "serial")
    return register_console(api, admin, instance, port, host="10.3.0.4", **fields)


def connect(api, proxy, token, proxy_id="proxy-a", client="198.51.100.7"):
    body = {"token": token, "proxy_id": proxy_id, "client": client}
    return api.post("/v1/tokens/connect", json=body, headers=proxy)


def heartbeat(api, proxy, proxy_id="proxy-a"):
    answer = api.post(f"/v1/proxies/{proxy_id}/heartbeat", headers=proxy)
    assert answer.status_code == 200
    return answer.json


def test_second_connect_on_a_held_port_is_409(api, admin, proxy, instance):
    token = register(api, admin, instance).json["token"]
    first = connect(api, proxy, token)
    assert first.status_code == 200
    lease = first.json["lease"]["data"]
    assert (lease["proxy_id"], lease["client"], lease["close_reason"]) == (
        "proxy-a",
        "198.51.100.7",
        None,
    )
    data = first.json["connection"]["data"]
    assert data["connected"] is True and data["lease"]["data"]["id"] == lease["id"]
    assert "token_hash" not in data
    second = connect(api, proxy, token, proxy_id="proxy-b")
    assert second.status_code == 409 and second.json["type"] == "/problems/already-connected"


def test_disconnect_frees_and_a_late_disconnect_never_frees_a_newer_holder(
    api, admin, proxy, instance
):
    token = register(api, admin, instance).json["token"]
    old = connect(api, proxy, token).json["lease"]["data"]["id"]
    assert api.post(f"/v1/leases/{old}/disconnect", headers=proxy).status_code == 204
    new = connect(api, proxy, token, proxy_id="proxy-b").json["lease"]["data"]["id"]
    assert new != old
    assert api.post(f"/v1/leases/{old}/disconnect", headers=proxy).status_code == 204
    assert connect(api, proxy, token).status_code == 409  # the newer holder still holds it
    assert api.post(f"/v1/leases/{uuid.uuid4().hex}/disconnect", headers=proxy).status_code == 204


def test_a_lapsed_lease_is_free_at_connect_time(app, api, admin, proxy, instance):
    token = register(api, admin, instance).json["token"]
    connect(api, proxy, token)
    with app.extensions["tokensvc"].engine.begin() as conn:  # the proxy stopped heartbeating
        conn.execute(leases.update().values(expires=dt.datetime(2000, 1, 1)))
    taken = connect(api, proxy, token, proxy_id="proxy-b")
    assert taken.status_code == 200 and taken.json["lease"]["data"]["proxy_id"] == "proxy-b"


def test_heartbeat_renews_and_listing_shows_the_session(api, admin, proxy, instance):
    token = register(api, admin, instance).json["token"]
    lease = connect(api, proxy, token).json["lease"]["data"]
    assert heartbeat(api, proxy) == {"renewed": 1, "close": []}
    assert heartbeat(api, proxy, "proxy-other") == {"renewed": 0, "close": []}
    listed = api.get(f"/v1/instances/{instance}/consoles", headers=admin).json["connections"]
    assert listed[0]["data"]["connected"] is True
    assert listed[0]["data"]["lease"]["data"]["client"] == "198.51.100.7"
    sessions = api.get("/v1/leases?proxy_id=proxy-a", headers=admin).json["leases"]
    assert [s["data"]["id"] for s in sessions] == [lease["id"]]
    assert sessions[0]["console"] == {"instance_uuid": instance, "host": "10.3.0.4", "port": 4555}
    assert api.get("/v1/leases?compute_host=compute-1", headers=admin).json["leases"] != []
    assert api.get("/v1/leases?compute_host=compute-9", headers=admin).json["leases"] == []
    old = api.get(
        f"/v1/instances/{instance}/consoles", headers={**admin, "X-Object-Version": "1.1"}
    )
    assert "lease" not in old.json["connections"][0]["data"]


CLOSERS = {
    "revoked": lambda api, admin, instance, token, lease: api.post(
        "/v1/tokens/revoke", json={"token": token}, headers=admin
    ),
    "rotated": lambda api, admin, instance, token, lease: register(
        api, admin, instance, force=True
    ),
    "instance-deleted": lambda api, admin, instance, token, lease: api.delete(
        f"/v1/instances/{instance}", headers=admin
    ),
    "instance-moved": lambda api, admin, instance, token, lease: api.put(
        f"/v1/instances/{instance}", json={"host": "compute-2"}, headers=admin
    ),
    "forced": lambda api, admin, instance, token, lease: api.delete(
        f"/v1/leases/{lease}", headers=admin
    ),
}


@pytest.mark.parametrize("reason", list(CLOSERS))
def test_heartbeat_names_the_sessions_to_close(api, admin, proxy, instance, reason):
    token = register(api, admin, instance).json["token"]
    lease = connect(api, proxy, token).json["lease"]["data"]["id"]
    assert CLOSERS[reason](api, admin, instance, token, lease).status_code < 300
    answer = heartbeat(api, proxy)
    assert answer["close"] == [{"lease_id": lease, "reason": reason}]
    # A closing lease still holds the port until the proxy has disconnected it.
    assert answer["renewed"] == 1
    assert api.post(f"/v1/leases/{lease}/disconnect", headers=proxy).status_code == 204
    assert heartbeat(api, proxy) == {"renewed": 0, "close": []}


def test_expiry_closes_sessions_only_when_enforced(make_app, mariadb_url, redis_url):
    for enforce, expected in ((False, []), (True, ["expired"])):
        app = make_app(
            database_url=mariadb_url, redis_url=redis_url, enforce_session_timeout=enforce
        )
        keys = Keys(app)
        api, admin, proxy = app.test_client(), keys.headers("admin"), keys.headers("proxy")
        instance = str(uuid.uuid4())
        api.put(f"/v1/instances/{instance}", json={"host": "compute-1"}, headers=admin)
        token = register(api, admin, instance).json["token"]
        connect(api, proxy, token)
        with app.extensions["tokensvc"].engine.begin() as conn:
            conn.execute(consoles.update().values(expires=dt.datetime(2000, 1, 1)))
        assert [c["reason"] for c in heartbeat(api, proxy)["close"]] == expected
        api.delete("/v1/proxies/proxy-a/leases", headers=proxy)


def test_force_disconnect_scope(api, admin, proxy, keys, instance):
    token = register(api, admin, instance).json["token"]
    lease = connect(api, proxy, token).json["lease"]["data"]["id"]
    other = keys.headers("compute", "compute-2")
    foreign = api.delete(f"/v1/leases/{lease}", headers=other)
    missing = api.delete(f"/v1/leases/{uuid.uuid4().hex}", headers=other)
    # Another host's lease is answered as a missing one: a compute key cannot probe.
    assert foreign.status_code == missing.status_code == 404
    assert {k: v for k, v in foreign.json.items() if k not in ("instance", "request_id")} == {
        k: v for k, v in missing.json.items() if k not in ("instance", "request_id")
    }
    assert (
        api.delete(f"/v1/leases/{lease}", headers=keys.headers("compute", "compute-1")).status_code
        == 202
    )
    assert api.delete(f"/v1/leases/{uuid.uuid4().hex}", headers=admin).status_code == 404


def test_proxy_bound_keys_act_only_as_their_proxy(api, admin, keys, instance):
    token = register(api, admin, instance).json["token"]
    bound = {"Authorization": f"Bearer {keys.mint('proxy', proxy_id='proxy-a')}"}
    assert connect(api, bound, token, proxy_id="proxy-b").status_code == 403
    assert api.post("/v1/proxies/proxy-b/heartbeat", headers=bound).status_code == 403
    assert api.delete("/v1/proxies/proxy-b/leases", headers=bound).status_code == 403
    assert connect(api, bound, token, proxy_id="proxy-a").status_code == 200


def test_reset_proxy_drops_its_leases(api, admin, proxy, instance):
    token = register(api, admin, instance).json["token"]
    connect(api, proxy, token)
    assert api.delete("/v1/proxies/proxy-a/leases", headers=proxy).status_code == 204
    assert connect(api, proxy, token, proxy_id="proxy-b").status_code == 200


def test_next_free_port_hands_out_each_port_once(api, admin, proxy, instance):
    taken = []
    for _ in SERIAL_PORTS:
        answer = register(api, admin, instance, ports=SERIAL_PORTS)
        assert answer.status_code == 201
        taken.append(answer.json["connection"]["data"]["port"])
        assert connect(api, proxy, answer.json["token"]).status_code == 200
    assert sorted(taken) == SERIAL_PORTS
    fourth = register(api, admin, instance, ports=SERIAL_PORTS)
    assert fourth.status_code == 409 and fourth.json["type"] == "/problems/ports-exhausted"
    assert "no more ports available" in fourth.json["detail"]
    lease = api.get("/v1/leases?proxy_id=proxy-a", headers=admin).json["leases"][1]
    api.post(f"/v1/leases/{lease['data']['id']}/disconnect", headers=proxy)
    again = register(api, admin, instance, ports=SERIAL_PORTS)
    assert again.status_code == 201
    assert again.json["connection"]["data"]["port"] == lease["console"]["port"]


def test_when_no_port_is_unused_the_unheld_oldest_token_is_rotated(
    app, api, admin, proxy, instance
):
    issued = [register(api, admin, instance, ports=SERIAL_PORTS).json for _ in SERIAL_PORTS]
    by_port = {i["connection"]["data"]["port"]: i["token"] for i in issued}
    assert sorted(by_port) == SERIAL_PORTS
    connect(api, proxy, by_port[4555])  # held: never picked
    with app.extensions["tokensvc"].engine.begin() as conn:
        for port, year in ((4555, 1999), (4556, 2001), (4557, 2003)):
            old = consoles.update().where(consoles.c.port == port)
            conn.execute(old.values(updated_at=dt.datetime(year, 1, 1)))
    fourth = register(api, admin, instance, ports=SERIAL_PORTS).json
    assert fourth["connection"]["data"]["port"] == 4556

    def validate(token):
        return api.post("/v1/tokens/validate", json={"token": token}, headers=proxy).status_code

    assert validate(by_port[4556]) == 404  # rotated
    assert validate(fourth["token"]) == validate(by_port[4557]) == validate(by_port[4555]) == 200


def test_explicit_held_port_is_409_unless_an_admin_forces(api, admin, proxy, keys, instance):
    token = register(api, admin, instance).json["token"]
    connect(api, proxy, token)
    busy = register(api, admin, instance)
    assert busy.status_code == 409 and busy.json["type"] == "/problems/already-connected"
    compute = keys.headers("compute", "compute-1")
    assert register(api, compute, instance, force=True).status_code == 403
    assert register(api, admin, instance, force=True).status_code == 201


def test_concurrent_registrations_get_different_ports(api, admin, instance):
    ports = list(range(5000, 5010))

    def one(_):
        return register(api, admin, instance, ports=ports)

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(one, range(10)))
    assert [a.status_code for a in answers] == [201] * 10
    assert sorted(a.json["connection"]["data"]["port"] for a in answers) == ports


def test_port_and_ports_together_or_neither_is_422(api, admin, instance):
    both = register(api, admin, instance, port=1, ports=[2])
    assert both.status_code == 422 and both.json["errors"][0]["field"] == "port"
    assert register(api, admin, instance, ports=[1, 1]).status_code == 422
    assert register(api, admin, instance, ports=[]).status_code == 422


def test_session_events_are_logged_without_tokens(api, admin, proxy, instance, caplog):
    token = register(api, admin, instance).json["token"]
    with caplog.at_level(logging.INFO, logger="tokensvc.sessions"):
        lease = connect(api, proxy, token).json["lease"]["data"]["id"]
        api.delete(f"/v1/leases/{lease}", headers=admin)
        api.post(f"/v1/leases/{lease}/disconnect", headers=proxy)
    events = [r for r in caplog.records if r.getMessage().startswith("session ")]
    assert [e.event for e in events] == ["connect", "forced", "disconnect"]
    assert all(e.lease_id == lease and e.proxy_id == "proxy-a" for e in events)
    assert token not in caplog.text


def test_purge_never_touches_leases(app, api, admin, proxy, instance):
    token = register(api, admin, instance).json["token"]
    connect(api, proxy, token)
    with app.extensions["tokensvc"].engine.begin() as conn:
        conn.execute(consoles.update().values(expires=dt.datetime(2000, 1, 1)))
    purged = api.delete("/v1/hosts/compute-1/consoles/expired", headers=admin).json
    assert purged["deleted"] == 1
    with app.extensions["tokensvc"].engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(leases)).scalar_one() == 1
