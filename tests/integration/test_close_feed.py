"""The close feed route and its Redis wake-up, on real MariaDB/SQLite and Redis."""

from __future__ import annotations

import concurrent.futures
import threading
import time
import uuid

import pytest

from tests.support import Keys, RedisProcess, free_port
from tokensvc.closefeed import ClosePublisher, CloseSubscriber
from tokensvc.stores.cache import make_client


def _setup(app):
    keys = Keys(app)
    admin = {"Authorization": f"Bearer {keys.mint('admin')}"}
    proxy = {"Authorization": f"Bearer {keys.mint('proxy')}"}
    return app.test_client(), admin, proxy, keys


def _session(api, admin, proxy, proxy_id="proxy-f", port=5900):
    """A registered console with a lease of ``proxy_id``: (token, lease id)."""
    instance = str(uuid.uuid4())
    assert (
        api.put(f"/v1/instances/{instance}", json={"host": "c-1"}, headers=admin).status_code == 201
    )
    body = {"instance_uuid": instance, "host": "10.3.0.4", "port": port, "console_type": "novnc"}
    token = api.post("/v1/consoles", json=body, headers=admin).json["token"]
    connected = api.post(
        "/v1/tokens/connect", json={"token": token, "proxy_id": proxy_id}, headers=proxy
    )
    assert connected.status_code == 200, connected.json
    return token, connected.json["lease"]["data"]["id"]


def _feed(api, proxy, proxy_id="proxy-f", **query):
    answer = api.get(f"/v1/proxies/{proxy_id}/closes", query_string=query, headers=proxy)
    assert answer.status_code == 200, answer.json
    return answer.json


@pytest.fixture(params=["redis", "database-only"])
def feed_app(request, make_app, mariadb_url):
    """MariaDB with Redis (publish + subscriber), and SQLite alone (polling)."""
    if request.param == "redis":
        return make_app(database_url=mariadb_url, redis_url=request.getfixturevalue("redis_url"))
    return make_app()


def test_cursor_answers_each_change_once(feed_app):
    api, admin, proxy, _ = _setup(feed_app)
    token, lease_id = _session(api, admin, proxy)
    first = _feed(api, proxy, wait=5)  # no cursor: the current state, at once
    assert first["close"] == [] and first["busy"] is False
    unchanged = _feed(api, proxy, cursor=first["cursor"], wait=0.5)
    assert unchanged == first  # waited, nothing new
    assert api.post("/v1/tokens/revoke", json={"token": token}, headers=admin).status_code == 204
    closed = _feed(api, proxy, cursor=first["cursor"], wait=5)
    assert closed["close"] == [{"lease_id": lease_id, "reason": "revoked"}]
    started = time.monotonic()
    again = _feed(api, proxy, cursor=closed["cursor"], wait=0.5)
    # The lease keeps its reason until disconnected, yet the cursor stops a repeat.
    assert again["cursor"] == closed["cursor"] and time.monotonic() - started >= 0.4


def test_a_waiting_call_answers_when_a_lease_is_closed(feed_app):
    api, admin, proxy, _ = _setup(feed_app)
    _token, lease_id = _session(api, admin, proxy)
    cursor = _feed(api, proxy)["cursor"]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(_feed, feed_app.test_client(), proxy, cursor=cursor, wait=15)
        time.sleep(0.5)
        assert not waiting.done()
        assert api.delete(f"/v1/leases/{lease_id}", headers=admin).status_code == 202
        answered = waiting.result(timeout=5)  # long before the 15 s wait
    assert answered["close"] == [{"lease_id": lease_id, "reason": "forced"}]


def test_only_the_proxys_own_closes(feed_app):
    api, admin, proxy, _ = _setup(feed_app)
    token, _ = _session(api, admin, proxy, proxy_id="proxy-other")
    cursor = _feed(api, proxy)["cursor"]
    assert api.post("/v1/tokens/revoke", json={"token": token}, headers=admin).status_code == 204
    assert _feed(api, proxy, cursor=cursor, wait=0.3)["close"] == []


def test_the_wait_is_capped(make_app):
    app = make_app(close_feed_wait=0.5)
    api, _admin, proxy, _ = _setup(app)
    cursor = _feed(api, proxy)["cursor"]
    started = time.monotonic()
    _feed(api, proxy, cursor=cursor, wait=30)
    assert time.monotonic() - started < 5


def test_waiters_above_the_cap_are_answered_at_once(make_app):
    app = make_app(threads=4)  # two may wait
    api, _admin, proxy, _ = _setup(app)
    cursor = _feed(api, proxy)["cursor"]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        held = [
            pool.submit(_feed, app.test_client(), proxy, cursor=cursor, wait=3) for _ in range(2)
        ]
        time.sleep(0.5)
        assert not any(f.done() for f in held)
        busy = _feed(api, proxy, cursor=cursor, wait=3)
        assert busy["busy"] is True and busy["cursor"] == cursor
        assert all(not f.result()["busy"] for f in held)


def test_one_thread_never_waits(make_app):
    app = make_app(threads=1)
    api, _, proxy, _ = _setup(app)
    cursor = _feed(api, proxy)["cursor"]
    assert _feed(api, proxy, cursor=cursor, wait=3)["busy"] is True


def test_roles_and_bound_proxy_ids(make_app):
    app = make_app()
    api, admin, _, keys = _setup(app)
    compute = {"Authorization": f"Bearer {keys.mint('compute', host='c-1')}"}
    bound = {"Authorization": f"Bearer {keys.mint('proxy', proxy_id='proxy-q')}"}
    for headers in (admin, compute):
        assert api.get("/v1/proxies/proxy-f/closes", headers=headers).status_code == 403
    assert api.get("/v1/proxies/proxy-f/closes").status_code == 401
    assert api.get("/v1/proxies/proxy-f/closes", headers=bound).status_code == 403
    assert api.get("/v1/proxies/proxy-q/closes", headers=bound).status_code == 200


@pytest.mark.parametrize(
    "query", [{"wait": "abc"}, {"wait": "-1"}, {"wait": "nan"}, {"cursor": ""}]
)
def test_bad_queries_are_422(make_app, query):
    api, _, proxy, _ = _setup(make_app())
    answer = api.get("/v1/proxies/proxy-f/closes", query_string=query, headers=proxy)
    assert answer.status_code == 422, answer.json


def test_expired_tokens_are_named_with_enforcement(make_app):
    app = make_app(enforce_session_timeout=True)
    api, admin, proxy, _ = _setup(app)
    instance = str(uuid.uuid4())
    api.put(f"/v1/instances/{instance}", json={"host": "c-1"}, headers=admin)
    body = {"instance_uuid": instance, "host": "10.3.0.4", "port": 5900, "console_type": "novnc"}
    # Long enough to connect on a loaded machine, short enough for the feed's wait.
    token = api.post("/v1/consoles", json=body | {"ttl": 3}, headers=admin).json["token"]
    lease = api.post(
        "/v1/tokens/connect", json={"token": token, "proxy_id": "proxy-f"}, headers=proxy
    )
    cursor = _feed(api, proxy)["cursor"]
    answer = _feed(api, proxy, cursor=cursor, wait=8)
    assert answer["close"] == [{"lease_id": lease.json["lease"]["data"]["id"], "reason": "expired"}]


# -- the subscriber and publisher on a real Redis ---------------------------------------
def _woken(event: threading.Event, within: float = 3.0) -> bool:
    return event.wait(within)


def test_subscriber_wakes_only_that_proxys_waiters(redis_url):
    subscriber = CloseSubscriber(redis_url, connect_timeout=1.0)
    publish = ClosePublisher(make_client(redis_url, 1.0))
    try:
        with subscriber.watch("proxy-a") as mine, subscriber.watch("proxy-b") as other:
            assert subscriber.listening.wait(5)
            mine.clear()  # (both set once when it started listening)
            other.clear()
            publish(["proxy-a"])
            assert _woken(mine) and not other.is_set()
    finally:
        subscriber.close()


def test_subscriber_reconnects_and_wakes_everyone(redis_process: RedisProcess):
    subscriber = CloseSubscriber(redis_process.url, connect_timeout=0.5)
    publish = ClosePublisher(make_client(redis_process.url, 0.5))
    try:
        with subscriber.watch("proxy-a") as event:
            assert subscriber.listening.wait(5)
            redis_process.stop()
            publish(["proxy-a"])  # Redis down: logged, never raised
            assert not subscriber.listening.wait(0) or _eventually_clear(subscriber)
            event.clear()
            redis_process.start()
            assert subscriber.listening.wait(15) and _woken(event)  # woken on resubscribing
            event.clear()
            publish(["proxy-a"])
            assert _woken(event)
    finally:
        subscriber.close()


def _eventually_clear(subscriber: CloseSubscriber) -> bool:
    deadline = time.monotonic() + 10
    while subscriber.listening.is_set():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_revoke_stands_when_publishing_fails():
    publish = ClosePublisher(make_client(f"redis://127.0.0.1:{free_port()}/0", 0.2))
    publish(["proxy-a"])  # nothing listens on that port: no exception


def test_a_revoke_succeeds_and_is_fed_with_redis_down(make_app, mariadb_url):
    app = make_app(database_url=mariadb_url, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    api, admin, proxy, _ = _setup(app)
    token, lease_id = _session(api, admin, proxy)
    cursor = _feed(api, proxy)["cursor"]
    assert api.post("/v1/tokens/revoke", json={"token": token}, headers=admin).status_code == 204
    answer = _feed(api, proxy, cursor=cursor, wait=5)  # the waiter's own polling
    assert answer["close"] == [{"lease_id": lease_id, "reason": "revoked"}]
