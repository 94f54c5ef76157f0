"""The versioned-object framework: fingerprints, primitives, backports."""

from __future__ import annotations

import datetime as dt
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokensvc.errors import UnsupportedVersion, ValidationFailed
from tokensvc.objects import CLOSE_REASONS, CONSOLE_TYPES, ConsoleConnection, ConsoleLease, Instance
from tokensvc.objects.base import fingerprint, registered_objects
from tokensvc.objects.fields import IntegerField

# Changing a field changes its fingerprint: bump VERSION (with a changelog line
# and a backport in obj_make_compatible), then update the hash here.
EXPECTED_FINGERPRINTS = {
    "ConsoleConnection": "1.2-05582c089e078ce07f61fff151108290",
    "ConsoleLease": "1.0-e404bbf8dd8e2dd9565963f82d428b7f",
    "Instance": "1.0-30b54ed661acb77b94e4d30b817f6c01",
}


def test_fingerprints_match_versions():
    actual = {name: cls.obj_fingerprint() for name, cls in registered_objects().items()}
    assert actual == EXPECTED_FINGERPRINTS


def test_fingerprint_changes_with_a_field():
    before = ConsoleConnection.obj_fingerprint()
    version = ConsoleConnection.VERSION
    assert fingerprint(version, ConsoleConnection.fields) == before
    fewer = {k: v for k, v in ConsoleConnection.fields.items() if k != "options"}
    wider = ConsoleConnection.fields | {"port": IntegerField(minimum=0, maximum=65535)}
    assert len({before, fingerprint(version, fewer), fingerprint(version, wider)}) == 3


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
    host=hosts,
    port=st.integers(1, 65535),
    token_hash=st.one_of(st.none(), st.text("0123456789abcdef", min_size=64, max_size=64)),
    access_url=st.one_of(st.none(), st.text(min_size=1, max_size=255)),
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
