"""The database store on real SQLite and MariaDB, through the methods the API calls."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from tokensvc import tokens
from tokensvc.errors import NotFound, ValidationFailed
from tokensvc.objects import ConsoleConnection, Instance
from tokensvc.stores.database import DatabaseStore
from tokensvc.stores.rows import consoles, instances


@pytest.fixture
def store(engine: Engine) -> DatabaseStore:
    return DatabaseStore(engine)


def make_instance(store: DatabaseStore, compute_host: str = "compute-1") -> Instance:
    instance = Instance(uuid=str(uuid.uuid4()), host=compute_host)
    assert store.put_instance(instance).created is True
    return instance


def register(
    store: DatabaseStore, instance: Instance, port: int = 5900, ttl: int = 600, **fields: object
) -> tuple[ConsoleConnection, str]:
    # The console address (10.0.0.x) is never the compute host name.
    connection = ConsoleConnection(
        instance_uuid=instance.uuid,
        host=fields.pop("host", "10.0.0.5"),
        port=port,
        console_type=fields.pop("console_type", "novnc"),
        **fields,
    )
    return connection, connection.create(store, ttl=ttl)


def validated(store: DatabaseStore, token: str) -> ConsoleConnection | None:
    """The console validate finds for ``token``: the store's lookup of its hash."""
    found = store.lookup(tokens.hash_token(token))
    if found is None:
        return None
    return ConsoleConnection.from_primitive(json.loads(found.connection_json))


def count_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(consoles)).scalar_one()


def test_create_returns_token_once_and_stores_only_its_hash(store, engine):
    instance = make_instance(store)
    connection, token = register(store, instance, options={"usetls": True})
    assert tokens.is_well_formed(token)
    with engine.connect() as conn:
        row = conn.execute(sa.select(consoles)).one()
    assert row.token_hash == tokens.hash_token(token) == connection.token_hash
    assert token not in repr(tuple(row))
    assert row.compute_host == "compute-1" and row.host == "10.0.0.5"


def test_lookup_returns_the_stored_console(store):
    instance = make_instance(store)
    connection, token = register(store, instance, access_url="https://c.example/vnc.html")
    found = validated(store, token)
    assert found is not None
    expected = connection.to_primitive(exclude=("token_hash", "connected", "lease"))
    assert found.to_primitive() == expected
    assert found.options == {}
    assert found.expires is not None and found.expires > dt.datetime.now(dt.UTC)
    assert store.get_by_token_hash(tokens.hash_token(token)) == connection


def test_lookup_of_an_unissued_token_finds_nothing(store):
    register(store, make_instance(store))
    assert validated(store, tokens.generate_token()) is None


def test_expired_token_does_not_validate(store, engine):
    instance = make_instance(store)
    _, token = register(store, instance)
    with engine.begin() as conn:
        conn.execute(consoles.update().values(expires=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)))
    assert validated(store, token) is None


def test_registering_the_same_port_again_replaces_the_token(store, engine):
    instance = make_instance(store)
    _, first = register(store, instance)
    _, second = register(store, instance, console_type="serial")
    assert count_rows(engine) == 1
    assert validated(store, first) is None
    found = validated(store, second)
    assert found is not None and found.console_type == "serial"


def test_revoke_token_revokes_once(store):
    instance = make_instance(store)
    connection, token = register(store, instance)
    assert connection.token_hash is not None
    assert store.revoke_token(connection.token_hash) is True
    assert validated(store, token) is None
    assert store.revoke_token(connection.token_hash) is False


def test_list_by_instance_orders_and_scopes(store):
    first, other = make_instance(store), make_instance(store)
    for port in (5902, 5900, 5901):
        register(store, first, port=port)
    register(store, other)
    listed = store.list_by_instance(first.uuid)
    assert [c.port for c in listed] == [5900, 5901, 5902]
    with pytest.raises(NotFound):
        store.list_by_instance(str(uuid.uuid4()))


def test_foreign_key_cascades_on_instance_delete(store, engine):
    instance = make_instance(store)
    register(store, instance)
    # Delete through SQL alone: the schema's ON DELETE CASCADE must remove the consoles.
    with engine.begin() as conn:
        conn.execute(instances.delete().where(instances.c.uuid == instance.uuid))
    assert count_rows(engine) == 0


def test_delete_instance_removes_its_consoles(store, engine):
    instance, kept = make_instance(store), make_instance(store)
    _, token = register(store, instance)
    register(store, kept)
    store.delete_instance(instance.uuid)
    assert count_rows(engine) == 1
    assert validated(store, token) is None
    with pytest.raises(NotFound):
        store.delete_instance(instance.uuid)


def test_moving_an_instance_revokes_its_consoles(store):
    instance = make_instance(store)
    _, token = register(store, instance)
    assert store.put_instance(Instance(uuid=instance.uuid, host="compute-2")).created is False
    assert store.get_instance(instance.uuid).host == "compute-2"
    assert validated(store, token) is None


def test_same_host_put_keeps_consoles(store):
    instance = make_instance(store)
    _, token = register(store, instance)
    assert store.put_instance(Instance(uuid=instance.uuid, host="compute-1")).revoked == []
    found = validated(store, token)
    assert found is not None and found.instance_uuid == instance.uuid


def test_register_for_unknown_instance_is_not_found(store, engine):
    ghost = Instance(uuid=str(uuid.uuid4()), host="compute-1")
    with pytest.raises(NotFound):
        register(store, ghost)
    assert count_rows(engine) == 0


def expire_all(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(consoles.update().values(expires=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)))


def test_purge_deletes_only_expired_rows_of_the_compute_host_in_batches(store, engine):
    target, other_host = make_instance(store, "compute-a"), make_instance(store, "compute-b")
    # Console addresses deliberately equal the *other* compute host's name.
    for port in range(1, 8):
        register(store, target, port=port, host="compute-b")
        register(store, other_host, port=port, host="compute-a")
    expire_all(engine)
    _, live = register(store, target, port=100, host="compute-b")

    result = store.purge_expired("compute-a", batch_size=3)

    assert result.deleted == 7 and result.batches == 3
    remaining = {(c.instance_uuid, c.port) for c in store.list_by_instance(target.uuid)}
    assert remaining == {(target.uuid, 100)}
    assert len(store.list_by_instance(other_host.uuid)) == 7
    found = validated(store, live)
    assert found is not None and found.port == 100


def test_purge_with_exact_batch_multiple_stops(store, engine):
    instance = make_instance(store)
    for port in range(1, 7):
        register(store, instance, port=port)
    expire_all(engine)
    result = store.purge_expired("compute-1", batch_size=3)
    assert result.deleted == 6 and result.batches == 2  # the empty look-up is not a batch
    assert store.purge_expired("compute-1", batch_size=3).deleted == 0


BAD_FIELDS = [
    ({"instance_uuid": "not-a-uuid"}, "instance_uuid"),
    ({"port": 0}, "port"),
    ({"port": 70000}, "port"),
    ({"port": "5900"}, "port"),
    ({"host": "h" * 256}, "host"),
    ({"options": ["usetls"]}, "options"),
    ({"options": {"blob": "x" * 5000}}, "options"),
    ({"options": {"nested": {"a": 1}}}, "options"),
    ({"console_type": "telnet"}, "console_type"),
]


@pytest.mark.parametrize(("bad", "field"), BAD_FIELDS)
def test_bad_input_names_the_field_and_writes_nothing(store, engine, bad, field):
    instance = make_instance(store)
    fields = {"instance_uuid": instance.uuid, "host": "10.0.0.5", "port": 5900}
    fields |= {"console_type": "novnc"} | bad
    with pytest.raises(ValidationFailed) as excinfo:
        ConsoleConnection(**fields).create(store, ttl=600)
    assert field in excinfo.value.errors
    assert count_rows(engine) == 0


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(ValidationFailed) as excinfo:
        ConsoleConnection(instance_uuid="x", port=0, console_type="telnet")
    assert set(excinfo.value.errors) == {"instance_uuid", "port", "console_type"}


def test_missing_required_fields_are_reported(store, engine):
    instance = make_instance(store)
    with pytest.raises(ValidationFailed) as excinfo:
        ConsoleConnection(instance_uuid=instance.uuid).create(store, ttl=600)
    assert set(excinfo.value.errors) == {"host", "port", "console_type"}
    assert count_rows(engine) == 0
