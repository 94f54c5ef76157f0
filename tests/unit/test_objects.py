"""The versioned-object framework: fingerprints, primitives, backports."""

from __future__ import annotations

import datetime as dt
import string
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.provisional import domains

from tokensvc import objects
from tokensvc.errors import UnsupportedVersion, ValidationFailed
from tokensvc.objects import (
    CLOSE_REASONS,
    CONSOLE_TYPES,
    ConsoleConnection,
    ConsoleLease,
    Instance,
    base,
    checker,
)
from tokensvc.objects.base import Relationships, registered_objects, version_tuple
from tokensvc.objects.fields import Field, HexField, IntegerField, StringField

# When this table fails, an object's fields, public method signatures or nested
# object versions changed. For each object that changed: bump its VERSION (and
# VERSIONS) with a changelog comment, backport the change in its
# obj_make_compatible (a child bump: a new obj_relationships pair instead),
# then put the new fingerprint here. A new hash beside an old version is wrong,
# with one exception, named here each time: a change that only narrows what
# input a field accepts, with the same JSON type and wire form, so that every
# primitive the new code writes is one the old code wrote too (nothing to
# backport, obj_make_compatible would be a no-op).
# - Issue 11: ConsoleConnection.host an IP address or RFC 1123 host name,
#   access_url http(s) only; Instance.host, ConsoleLease.proxy_id and client
#   without control characters; no string field takes a lone surrogate (which
#   no database could store, so no stored primitive had one).
# - Issue 12: ConsoleConnection lost get_by_token, rotate, destroy, list_by_instance
#   and purge_expired, which no production path called (the API reads, revokes, lists
#   and purges through the stores). Methods only: no field, no primitive and no
#   caller over the wire changes (these objects are not remotable), so 1.2 stays.
EXPECTED_FINGERPRINTS = {
    "ConsoleConnection": "1.2-9e4440db39850cc9fc8a4c929ccd1afc",
    "ConsoleLease": "1.0-8d50f41f84da0af27c9638178dbfb525",
    "Instance": "1.0-3c84d77c83c3531099db537845138973",
}


def test_fingerprints_match_versions():
    assert checker.fingerprints() == EXPECTED_FINGERPRINTS


def test_nested_objects_are_the_versions_their_parents_carry():
    assert checker.child_version_problems() == []


@pytest.fixture
def registry(monkeypatch):
    """Objects a test declares stand in for the shipped ones during that test only."""
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))


def test_fingerprint_covers_fields_methods_and_children(registry):
    class Fewer(ConsoleConnection):
        fields: ClassVar[dict[str, Field]] = {
            k: v for k, v in ConsoleConnection.fields.items() if k != "options"
        }

    class Wider(ConsoleConnection):
        fields: ClassVar[dict[str, Field]] = ConsoleConnection.fields | {
            "port": IntegerField(minimum=0, maximum=65535)
        }

    class LongerHash(ConsoleConnection):
        fields: ClassVar[dict[str, Field]] = ConsoleConnection.fields | {
            "token_hash": HexField(length=40, nullable=True)
        }

    class NewArgument(ConsoleConnection):
        def is_expired(self, now=None, grace=0):
            return False

    class NewMethod(ConsoleConnection):
        def touch(self, store):
            pass

    class EarlierLease(ConsoleConnection):
        obj_relationships: ClassVar[Relationships] = {"lease": (("1.1", "1.0"),)}

    changed = (Fewer, Wider, LongerHash, NewArgument, NewMethod, EarlierLease)
    prints = {checker.fingerprint(cls) for cls in (ConsoleConnection, *changed)}
    assert len(prints) == 1 + len(changed)


def test_fingerprint_ignores_annotations_and_private_methods(registry):
    class Retyped(ConsoleConnection):
        def is_expired(self, now: object = None) -> bool:
            return False

        def _helper(self, anything):
            pass

    assert checker.fingerprint(Retyped) == checker.fingerprint(ConsoleConnection)


def bumped_lease():
    """ConsoleLease as a 1.1 with a new field would be declared."""

    class ConsoleLease(objects.ConsoleLease):
        # Version 1.0: id, proxy_id, client, since, expires, close_reason
        # Version 1.1: added note
        VERSION = "1.1"
        VERSIONS = ("1.0", "1.1")
        fields: ClassVar[dict[str, Field]] = objects.ConsoleLease.fields | {
            "note": StringField(nullable=True)
        }

        def obj_make_compatible(self, primitive, target_version):
            if version_tuple(target_version) < (1, 1):
                primitive.pop("note", None)

    return ConsoleLease


def bumped_connection():
    """ConsoleConnection bumped for the ConsoleLease 1.1 of ``bumped_lease``."""

    class ConsoleConnection(objects.ConsoleConnection):
        # Version 1.3: carries ConsoleLease 1.1
        VERSION = "1.3"
        VERSIONS = (*objects.ConsoleConnection.VERSIONS, "1.3")
        obj_relationships: ClassVar[Relationships] = {"lease": (("1.2", "1.0"), ("1.3", "1.1"))}

    return ConsoleConnection


def test_a_child_bump_fails_until_the_parent_is_bumped(registry):
    bumped_lease()
    assert checker.child_version_problems() == [
        "ConsoleConnection.lease: ConsoleConnection 1.2 carries ConsoleLease 1.0, but "
        "ConsoleLease is 1.1: bump ConsoleConnection and add (its new version, '1.1') "
        "to obj_relationships['lease']"
    ]
    assert checker.fingerprints()["ConsoleLease"] != EXPECTED_FINGERPRINTS["ConsoleLease"]
    bumped_connection()
    assert checker.child_version_problems() == []
    assert checker.fingerprints()["ConsoleConnection"].startswith("1.3-")


def test_a_relationship_naming_a_missing_child_version_is_reported(registry):
    class ConsoleConnection(objects.ConsoleConnection):
        obj_relationships: ClassVar[Relationships] = {"lease": (("1.1", "0.9"), ("1.2", "1.0"))}

    assert checker.child_version_problems() == [
        "ConsoleConnection.lease: ConsoleLease has no version 0.9 (pair for ConsoleConnection 1.1)"
    ]


LEASE = {
    "id": "0123456789abcdef" * 2,
    "proxy_id": "proxy-1",
    "client": "198.51.100.7",
    "since": dt.datetime(2026, 11, 25, 10, tzinfo=dt.UTC),
    "expires": dt.datetime(2026, 11, 25, 10, 5, tzinfo=dt.UTC),
    "close_reason": None,
}


def test_a_parent_backport_carries_the_child_its_version_shipped_with(registry):
    lease_cls, connection_cls = bumped_lease(), bumped_connection()
    connection = connection_cls(host="10.0.0.5", port=5900, lease=lease_cls(**LEASE, note="n"))

    newest = connection.to_primitive()["data"]["lease"]
    assert (newest["version"], newest["data"]["note"]) == ("1.1", "n")
    shipped = connection.to_primitive("1.2")
    assert shipped["data"]["lease"] == ConsoleLease(**LEASE).to_primitive()
    assert shipped["data"]["lease"]["version"] == "1.0"
    assert "lease" not in connection.to_primitive("1.1")["data"]

    back = connection_cls.from_primitive(shipped)
    assert back.lease == lease_cls(**LEASE) and not back.lease.obj_attr_is_set("note")


def test_every_object_produces_every_version():
    for cls in registered_objects().values():
        for version in cls.VERSIONS:
            assert cls().to_primitive(version)["version"] == version


@pytest.mark.parametrize(
    ("relationships", "reason"),
    [
        ({}, "exactly its nested objects"),
        ({"lease": (("1.2", "1.0"),), "port": (("1.2", "1.0"),)}, "exactly its nested objects"),
        ({"lease": ()}, "pair versions of VERSIONS"),
        ({"lease": (("1.3", "1.0"),)}, "pair versions of VERSIONS"),
        ({"lease": (("1.2", "1.0"), ("1.1", "1.0"))}, "oldest first"),
        ({"lease": (("1.1", "1.1"), ("1.2", "1.0"))}, "oldest first"),
    ],
)
def test_declarations_with_wrong_relationships_are_refused(registry, relationships, reason):
    with pytest.raises(TypeError, match=reason):

        class Declared(ConsoleConnection):
            obj_relationships: ClassVar[Relationships] = relationships


def test_a_version_that_is_not_the_newest_is_refused(registry):
    with pytest.raises(TypeError, match="VERSION must be the newest"):

        class Declared(Instance):
            VERSION = "1.0"
            VERSIONS = ("1.0", "1.1")


@pytest.mark.parametrize(
    ("length", "value"),
    [
        (16, "0123456789abcdef" * 2),
        (16, "0123456789abcde"),
        (32, "0123456789ABCDEF" * 2),
        (32, "0123456789abcdeg" * 2),
        (32, "0123456789abcdef" * 2 + "\n"),
        (32, " " + "0123456789abcdef" * 2),
        (64, "0123456789abcdef" * 2),
        (64, 64),
    ],
)
def test_hex_field_takes_only_its_length_in_lowercase_hex(length, value):
    with pytest.raises(ValueError):
        HexField(length=length).coerce(value)


@pytest.mark.parametrize("length", [1, 16, 32, 64])
def test_hex_field_accepts_its_length(length):
    value = ("0123456789abcdef" * 4)[:length]
    assert HexField(length=length).coerce(value) == value


def test_hex_field_needs_a_positive_length():
    with pytest.raises(ValueError):
        HexField(length=0)


def test_object_hex_fields_refuse_wrong_lengths():
    with pytest.raises(ValidationFailed):
        ConsoleLease(id="0123456789abcdef")
    with pytest.raises(ValidationFailed):
        ConsoleConnection(token_hash="0123456789abcdef" * 2)


datetimes = st.datetimes(
    min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
).map(lambda value: value.replace(microsecond=0))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.text(max_size=20),
    st.floats(allow_nan=False, allow_infinity=False),
)
hosts = st.text(string.ascii_letters + string.digits + ".-:", min_size=1, max_size=255)
console_hosts = st.one_of(st.ip_addresses().map(str), domains())
access_urls = st.builds(
    "{}://{}/{}".format,
    st.sampled_from(["http", "https"]),
    domains(max_length=100),
    st.text(string.ascii_letters + string.digits + "/?#=&%{}-._~", max_size=100),
)

leases = st.builds(
    ConsoleLease,
    id=st.text("0123456789abcdef", min_size=32, max_size=32),
    proxy_id=hosts,
    client=st.one_of(st.none(), hosts),
    since=datetimes,
    expires=datetimes,
    close_reason=st.one_of(st.none(), st.sampled_from(CLOSE_REASONS)),
)
connections = st.builds(
    ConsoleConnection,
    instance_uuid=st.uuids().map(str),
    host=console_hosts,
    port=st.integers(1, 65535),
    token_hash=st.one_of(st.none(), st.text("0123456789abcdef", min_size=64, max_size=64)),
    access_url=st.one_of(st.none(), access_urls),
    options=st.dictionaries(st.text(max_size=10), scalars, max_size=8),
    expires=st.one_of(st.none(), datetimes),
    console_type=st.sampled_from(CONSOLE_TYPES),
    connected=st.booleans(),
    lease=st.one_of(st.none(), leases),
)
# What each backport drops.
DROPPED = {"1.0": {"console_type", "connected", "lease"}, "1.1": {"lease"}, "1.2": set()}
instances = st.builds(Instance, uuid=st.uuids().map(str), host=hosts, created_at=datetimes)


@given(connections)
def test_console_round_trips_through_every_version(connection):
    for version in ConsoleConnection.VERSIONS:
        primitive = connection.to_primitive(version)
        assert primitive["object"] == "ConsoleConnection" and primitive["version"] == version
        back = ConsoleConnection.from_primitive(primitive)
        for name in ConsoleConnection.fields:
            if name in DROPPED[version]:
                assert not back.obj_attr_is_set(name)
            else:
                assert getattr(back, name) == getattr(connection, name)
        assert back.to_primitive(version) == primitive


@given(instances)
def test_instance_round_trips(instance):
    assert Instance.from_primitive(instance.to_primitive()) == instance


def sample() -> ConsoleConnection:
    return ConsoleConnection(
        instance_uuid="123E4567-E89B-12D3-A456-426614174000",
        host="10.0.0.5",
        port=5900,
        token_hash=None,
        access_url=None,
        options={"usetls": True},
        expires=dt.datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=dt.UTC),
        console_type="novnc",
        connected=False,
    )


def test_wire_form_is_the_spec_one():
    assert sample().to_primitive("1.0") == {
        "object": "ConsoleConnection",
        "version": "1.0",
        "data": {
            "instance_uuid": "123e4567-e89b-12d3-a456-426614174000",
            "host": "10.0.0.5",
            "port": 5900,
            "token_hash": None,
            "access_url": None,
            "options": {"usetls": True},
            "expires": "2026-11-25T10:00:00Z",
        },
    }


def test_unset_fields_are_left_out_and_excluded_fields_too():
    primitive = ConsoleConnection(host="h", port=1).to_primitive()
    assert primitive["data"] == {"host": "h", "port": 1}
    assert "token_hash" not in sample().to_primitive(exclude=["token_hash"])["data"]


@pytest.mark.parametrize("version", ["0.9", "1.9", "2.0", "latest", ""])
def test_unknown_target_versions_are_refused(version):
    with pytest.raises(UnsupportedVersion):
        sample().to_primitive(version)


@pytest.mark.parametrize("version", ["1.9", "2.0", "x"])
def test_newer_or_other_major_primitives_are_refused(version):
    primitive = sample().to_primitive() | {"version": version}
    with pytest.raises(UnsupportedVersion):
        ConsoleConnection.from_primitive(primitive)


def test_older_primitive_is_read():
    old = sample().to_primitive("1.0")
    back = ConsoleConnection.from_primitive(old)
    assert back.port == 5900 and not back.obj_attr_is_set("console_type")


@pytest.mark.parametrize(
    "primitive",
    [
        {"object": "Nope", "version": "1.0", "data": {}},
        {"object": "Instance", "version": "1.0", "data": {}},
        {"object": "ConsoleConnection", "version": "1.0", "data": {"bogus": 1}},
        {"object": "ConsoleConnection", "version": "1.0", "data": {"expires": "yesterday"}},
        {"object": "ConsoleConnection", "version": "1.0"},
        "not a dict",
    ],
)
def test_bad_primitives_are_validation_errors(primitive):
    with pytest.raises(ValidationFailed):
        ConsoleConnection.from_primitive(primitive)


def test_change_tracking():
    connection = ConsoleConnection.from_primitive(sample().to_primitive())
    assert connection.obj_what_changed() == set()
    connection.port = 5901
    assert connection.obj_what_changed() == {"port"}
    connection.obj_reset_changes()
    assert connection.obj_what_changed() == set()


def test_datetimes_are_utc_whole_seconds():
    naive = ConsoleConnection(expires=dt.datetime(2026, 1, 1, 12, 0, 0, 999))
    offset = ConsoleConnection(expires="2026-01-01T13:00:00+01:00")
    assert naive.expires == offset.expires == dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    with pytest.raises(ValidationFailed):
        ConsoleConnection(expires="2026-01-01T13:00:00")  # no zone on the wire


def test_unknown_attribute_and_unset_field():
    connection = ConsoleConnection()
    with pytest.raises(AttributeError):
        setattr(connection, "nope", 1)  # noqa: B010
    with pytest.raises(AttributeError):
        _ = connection.port
