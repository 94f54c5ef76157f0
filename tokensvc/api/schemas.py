"""Request bodies: declared once from typed fields, validated here, and published
in ``/openapi.json`` from the same declarations.

Console fields reuse the ConsoleConnection object's own field definitions, so the
API, the objects and the documentation cannot disagree on what a port is.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from tokensvc.errors import ValidationFailed
from tokensvc.objects.console import ConsoleConnection
from tokensvc.objects.fields import BooleanField, Field, IntegerField, ListField, StringField
from tokensvc.objects.instance import Instance
from tokensvc.objects.lease import ConsoleLease


class Body:
    """A JSON object body: typed fields, which are required, nothing else allowed."""

    def __init__(
        self,
        name: str,
        fields: Mapping[str, Field],
        required: tuple[str, ...],
        *,
        one_of: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.fields = dict(fields)
        self.required = required
        self.one_of = one_of  # exactly one of these fields must be given

    def parse(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Every bad, missing or unknown field is reported in one ValidationFailed."""
        errors = {name: "is required" for name in self.required if name not in data}
        parsed: dict[str, Any] = {}
        for name, value in data.items():
            field = self.fields.get(name)
            if field is None:
                errors[name] = "unknown field"
                continue
            try:
                parsed[name] = field.coerce(value)
            except ValueError as exc:
                errors[name] = str(exc)
        if self.one_of and sum(name in data for name in self.one_of) != 1:
            errors.setdefault(self.one_of[0], f"give exactly one of {' or '.join(self.one_of)}")
        if errors:
            raise ValidationFailed(errors)
        return parsed

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {name: field.json_schema() for name, field in self.fields.items()},
            "required": list(self.required),
            "additionalProperties": False,
        }
        if self.one_of:
            schema["oneOf"] = [{"required": [name]} for name in self.one_of]
        return schema


def _console_fields(*names: str) -> dict[str, Field]:
    return {name: ConsoleConnection.fields[name] for name in names}


class OpaqueString(StringField):
    """Any string, lone surrogates included: the view decides what it is."""

    def _coerce(self, value: Any) -> str:
        if not isinstance(value, str) or len(value) > self.max_length:
            raise ValueError(f"must be a string of at most {self.max_length} characters")
        return value


# Malformed tokens are answered as invalid-token (404), never as a 422 that
# would tell a prober which strings are well-formed: accept any string here.
# Tokens are 43 characters; 256 even JSON-escaped (12 bytes a character) keeps
# every body the schema allows under the 16 KiB body limit.
_TOKEN = OpaqueString(min_length=0, max_length=256)

INSTANCE = Body("InstancePut", {"host": Instance.fields["host"]}, ("host",))
TOKEN = Body("TokenBody", {"token": _TOKEN}, ("token",))
VALIDATE = Body("ValidateBody", {"token": _TOKEN} | _console_fields("console_type"), ("token",))


@functools.lru_cache(maxsize=4)
def register_body(max_ttl: int) -> Body:
    fields = _console_fields(
        "instance_uuid", "host", "port", "console_type", "access_url", "options"
    )
    fields["ports"] = ListField(fields["port"])
    fields["ttl"] = IntegerField(minimum=1, maximum=max_ttl)
    fields["force"] = BooleanField()
    required = ("instance_uuid", "host", "console_type")
    return Body("RegisterConsole", fields, required, one_of=("port", "ports"))


CONNECT = Body(
    "ConnectBody",
    {"token": _TOKEN, "proxy_id": ConsoleLease.fields["proxy_id"]}
    | {"client": ConsoleLease.fields["client"]},
    ("token", "proxy_id"),
)
