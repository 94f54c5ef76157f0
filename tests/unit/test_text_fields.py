"""Shaped text fields (ids, console hosts, access URLs) and the console address rule."""

from __future__ import annotations

import re

import pytest

from tokensvc.drivers.static import static_connection
from tokensvc.errors import ValidationFailed
from tokensvc.networks import host_refusal, parse_networks
from tokensvc.objects import ConsoleConnection, ConsoleLease, Instance
from tokensvc.objects.fields import IntegerField, ScalarDictField, StringField
from tokensvc.objects.text import HostField, name_field, url_field

UUID = "123e4567-e89b-12d3-a456-426614174000"
CONTROLS = ["\x00", "\x01", "\t", "\n", "\x1b", "\x7f", "\x85", "\x9f"]


@pytest.mark.parametrize("field", [StringField(), name_field(), url_field(), HostField()])
def test_no_string_field_takes_a_lone_surrogate(field):
    with pytest.raises(ValueError, match="lone surrogates"):
        field.coerce("http://a\ud800")


@pytest.mark.parametrize("value", [{"k": "\udfff"}, {"\ud800": 1}])
def test_options_take_no_lone_surrogate(value):
    with pytest.raises(ValueError, match="Unicode"):
        ScalarDictField().coerce(value)


@pytest.mark.parametrize("control", CONTROLS)
def test_ids_take_no_control_character(control):
    for field in (Instance.fields["host"], ConsoleLease.fields["proxy_id"]):
        with pytest.raises(ValueError, match="control characters"):
            field.coerce(f"compute{control}1")
    assert Instance.fields["host"].coerce("Compute 1 (rack é)") == "Compute 1 (rack é)"


@pytest.mark.parametrize(
    "host",
    ["192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1", "fe80::1%eth0", "a", "a-b.c-d.example",
     "EXAMPLE.org.", "1a.example", "x" * 63 + ".example",
     ".".join(["a" * 63] * 3) + "." + "a" * 61],
)  # fmt: skip
def test_console_host_accepts_ip_addresses_and_rfc_1123_names(host):
    assert HostField().coerce(host) == host


@pytest.mark.parametrize(
    "host",
    ["", " a", "a b", "a_b", "-a", "a-", "a..b", ".a", "x" * 64, "é.example", "[::1]",
     "a:80", "127.1", "0x7f.1", "0177.0.0.1", "2130706433", "1", "fe80::1%", "fe80::1%a b",
     ".".join(["a" * 63] * 4), *(f"a{c}b" for c in CONTROLS)],
)  # fmt: skip
def test_console_host_refuses_everything_else(host):
    with pytest.raises(ValueError):
        HostField().coerce(host)


@pytest.mark.parametrize(
    "url",
    ["https://c.example/vnc.html?path=websockify%3Ftoken%3D{token}", "http://192.0.2.1:6080/",
     "HTTPS://[2001:db8::1]:6080/spice_auto.html", "https://c.example"],
)  # fmt: skip
def test_access_url_accepts_absolute_http_urls(url):
    assert ConsoleConnection.fields["access_url"].coerce(url) == url


@pytest.mark.parametrize(
    "url",
    ["ws://c.example/", "//c.example/", "/vnc.html", "https:/c.example", "https://",
     "https:///path", "https://a b/", "https://c.example/\x00", "https://c.example/ x",
     "javascript:alert(1)"],
)  # fmt: skip
def test_access_url_refuses_anything_else(url):
    with pytest.raises(ValueError, match="http"):
        ConsoleConnection.fields["access_url"].coerce(url)


def test_patterns_are_published_as_python_checks_them():
    for field in (name_field(), url_field()):
        schema = field.json_schema()
        published = re.compile(schema["pattern"])
        assert field.pattern is not None and schema["pattern"] == f"^(?:{field.pattern})$"
        for sample in ("https://c.example/x", "a\x00b", "a\nb", "plain"):
            assert bool(published.search(sample)) == bool(re.fullmatch(field.pattern, sample))


@pytest.mark.parametrize(
    ("host", "allowed", "refused"),
    [("127.0.0.1", "", True), ("::ffff:127.0.0.1", "", True), ("169.254.169.254", "", True),
     ("fe80::1%eth0", "", True), ("0.0.0.0", "", True), ("ff02::1", "", True),
     ("localhost", "", True), ("Console.LOCALHOST.", "", True), ("localhost", "::1", False),
     ("localhost", "127.0.0.0/8", False), ("localhost", "10.0.0.0/8", True),
     ("127.0.0.1", "127.0.0.0/8", False), ("10.0.0.1", "", False), ("console.example", "", False),
     ("localhost.example", "", False)],
)  # fmt: skip
def test_host_refusal(host, allowed, refused):
    reason = host_refusal(host, parse_networks([allowed]))
    assert (reason is not None) == refused
    if reason:
        assert host.removeprefix("::ffff:") in reason


def test_the_static_driver_refuses_bad_console_fields():
    with pytest.raises(ValidationFailed) as caught:
        static_connection(
            instance_uuid=UUID, host="a\x00b", port=5900, console_type="novnc", access_url="x"
        )
    assert set(caught.value.errors) == {"host", "access_url"}


@pytest.mark.parametrize(("value", "expected"), [(5900, 5900), (5900.0, 5900)])
def test_integers_are_json_schema_integers(value, expected):
    """JSON Schema counts 5900.0 as an integer, so a schema-driven client may send it."""
    coerced = IntegerField(minimum=1, maximum=65535).coerce(value)
    assert coerced == expected and type(coerced) is int


@pytest.mark.parametrize("value", [5900.5, True, "5900", float("inf"), float("nan")])
def test_integers_refuse_what_is_no_integer(value):
    with pytest.raises(ValueError, match="must be an integer"):
        IntegerField(minimum=1, maximum=65535).coerce(value)
