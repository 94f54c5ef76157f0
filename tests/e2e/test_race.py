"""Races through a two-worker `tokensvc serve` on MariaDB: the database decides."""

from __future__ import annotations

import concurrent.futures
import threading
import uuid

from tests.e2e.support import put_instance, register


def test_fifty_concurrent_connects_one_winner(production):
    server, admin, proxy = production
    token = register(server, admin, instance=str(uuid.uuid4()), host="10.4.0.2")
    start = threading.Barrier(50)

    def connect(n: int):
        start.wait(10)
        answer = server.post(
            "/v1/tokens/connect", proxy, {"token": token, "proxy_id": f"proxy-{n}"}
        )
        return answer.status_code

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(connect, range(50)))
    assert sorted(statuses) == [200] + [409] * 49


def test_ten_concurrent_registrations_get_ten_ports(production):
    server, admin, _ = production
    instance = put_instance(server, admin)
    ports = list(range(6100, 6110))
    body = {"instance_uuid": instance, "host": "10.4.0.2", "ports": ports, "console_type": "serial"}
    start = threading.Barrier(10)

    def register(_: int) -> int:
        start.wait(10)
        answer = server.post("/v1/consoles", admin, body)
        assert answer.status_code == 201, answer.text
        port: int = answer.json()["connection"]["data"]["port"]
        return port

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        assert sorted(pool.map(register, range(10))) == ports
