"""Typed fields of versioned objects.

A field coerces a Python value (raising ``ValueError`` with a short reason),
and converts to and from the JSON wire form. Coercion is strict: the API feeds
request bodies straight into objects, so ``"5900"`` is not a port and ``True``
is not an integer.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from typing import Any

JSONScalar = str | int | float | bool | None
_UUID_SHAPE = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


class Field:
    """Base field: nullability and read-only flag; subclasses coerce."""

    def __init__(self, *, nullable: bool = False, read_only: bool = False) -> None:
        self.nullable = nullable
        self.read_only = read_only

    def coerce(self, value: Any) -> Any:
        if value is None:
            if not self.nullable:
                raise ValueError("must not be null")
            return None
        return self._coerce(value)

    def _coerce(self, value: Any) -> Any:
        raise NotImplementedError

    def to_primitive(self, value: Any) -> Any:
        return value

    def from_primitive(self, value: Any) -> Any:
        return self.coerce(value)

    def load(self, value: Any) -> Any:
        """A value read back from storage (``VersionedObject.obj_load``)."""
        return self.coerce(value)

    def describe(self) -> str:
        """Stable text of what the field accepts, for the object fingerprint."""
        return f"{type(self).__name__}(nullable={self.nullable}, read_only={self.read_only})"

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema (2020-12, as OpenAPI 3.1 uses) of the wire form."""
        schema = self._json_schema()
        if self.nullable:
            schema = {"anyOf": [schema, {"type": "null"}]}
        if self.read_only:
            schema["readOnly"] = True
        return schema

    def _json_schema(self) -> dict[str, Any]:
        raise NotImplementedError


class UUIDField(Field):
    def _json_schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "uuid"}

    def _coerce(self, value: Any) -> str:
        if not isinstance(value, str) or not _UUID_SHAPE.fullmatch(value):
            raise ValueError("must be a UUID like 123e4567-e89b-12d3-a456-426614174000")
        return value.lower()


class StringField(Field):
    """Text that can be stored: never a lone surrogate (JSON's ``"\\ud800"``).

    ``pattern`` (with the ``reason`` it reports) is a regular expression that
    Python's ``re`` and JSON Schema (ECMA 262) read alike; the whole value must
    match it, and ``/openapi.json`` publishes it anchored.
    """

    def __init__(
        self,
        *,
        max_length: int = 255,
        min_length: int = 1,
        pattern: str | None = None,
        reason: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_length = max_length
        self.min_length = min_length
        self.pattern = pattern
        self.reason = reason
        self._shape = None if pattern is None else re.compile(pattern)

    def _coerce(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if not self.min_length <= len(value) <= self.max_length:
            raise ValueError(f"must be {self.min_length} to {self.max_length} characters long")
        if not is_encodable(value):
            raise ValueError("must be valid Unicode text (no lone surrogates)")
        if self._shape is not None and not self._shape.fullmatch(value):
            raise ValueError(self.reason or f"must match {self.pattern}")
        return value

    def load(self, value: Any) -> Any:
        # Text only: its shape (and a HostField's rules) held, or not, when it was written.
        if value is not None and not isinstance(value, str):
            raise ValueError("must be a string")
        return super().coerce(value) if value is None else value

    def describe(self) -> str:
        shape = "" if self.pattern is None else f"~{self.pattern}"
        return f"{super().describe()}[{self.min_length}..{self.max_length}]{shape}"

    def _json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "string",
            "minLength": self.min_length,
            "maxLength": self.max_length,
        }
        if self.pattern is not None:
            schema["pattern"] = f"^(?:{self.pattern})$"
            length = f"{self.min_length} to {self.max_length} characters"
            schema["description"] = f"{length}; {self.reason}"
        return schema


def is_encodable(text: str) -> bool:
    """False for text with lone surrogates, which no database, log or socket takes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class IntegerField(Field):
    def __init__(self, *, minimum: int, maximum: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.minimum = minimum
        self.maximum = maximum

    def _coerce(self, value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON Schema's integer: 5900.0 is one (and JSON has one number)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be an integer")
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"must be between {self.minimum} and {self.maximum}")
        return value

    def describe(self) -> str:
        return f"{super().describe()}[{self.minimum}..{self.maximum}]"

    def _json_schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}


class BooleanField(Field):
    def _json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}

    def _coerce(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value


class EnumField(Field):
    def __init__(self, choices: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.choices = tuple(choices)

    def _coerce(self, value: Any) -> str:
        if value not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}")
        return str(value)

    def describe(self) -> str:
        return f"{super().describe()}{list(self.choices)}"

    def _json_schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.choices)}


class HexField(Field):
    """Lowercase hex of a fixed length: SHA-256 hashes and lease ids."""

    def __init__(self, *, length: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if length < 1:
            raise ValueError(f"HexField length must be positive, got {length}")
        self.shape = re.compile(f"[0-9a-f]{{{length}}}")
        self.length = length

    def _coerce(self, value: Any) -> str:
        if not isinstance(value, str) or not self.shape.fullmatch(value):
            raise ValueError(f"must be {self.length} lowercase hex digits")
        return value

    def describe(self) -> str:
        return f"{super().describe()}[{self.length}]"

    def _json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": f"^[0-9a-f]{{{self.length}}}$"}


class DateTimeField(Field):
    """Aware UTC datetimes at whole seconds; RFC 3339 ``...Z`` strings on the wire."""

    def _coerce(self, value: Any) -> dt.datetime:
        if isinstance(value, str):
            value = parse_rfc3339(value)
        if not isinstance(value, dt.datetime):
            raise ValueError("must be an RFC 3339 date-time")
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).replace(microsecond=0)

    def to_primitive(self, value: Any) -> Any:
        return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")

    def _json_schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "date-time"}


def parse_rfc3339(text: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError("must be an RFC 3339 date-time") from None
    if parsed.tzinfo is None:
        raise ValueError("must carry a UTC offset (e.g. Z)")
    return parsed


class ScalarDictField(Field):
    """``dict[str, JSON scalar]`` whose JSON form fits in ``max_bytes``."""

    def __init__(self, *, max_bytes: int = 4096, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_bytes = max_bytes

    def _coerce(self, value: Any) -> dict[str, JSONScalar]:
        if not isinstance(value, dict):
            raise ValueError("must be an object")
        for key, item in value.items():
            if not isinstance(key, str) or not is_encodable(key):
                raise ValueError("keys must be strings of valid Unicode text")
            if isinstance(item, str) and not is_encodable(item):
                raise ValueError(f"value of {key!r} must be valid Unicode text")
            if item is not None and not isinstance(item, str | int | float | bool):
                raise ValueError(f"value of {key!r} must be a string, number, boolean or null")
            if isinstance(item, float) and item != item:  # NaN is not JSON
                raise ValueError(f"value of {key!r} must be a finite number")
        size = len(json.dumps(value, separators=(",", ":"), allow_nan=False).encode())
        if size > self.max_bytes:
            raise ValueError(f"must be at most {self.max_bytes} bytes as JSON, got {size}")
        return dict(value)

    def to_primitive(self, value: Any) -> Any:
        return None if value is None else dict(value)

    def describe(self) -> str:
        return f"{super().describe()}[{self.max_bytes}]"

    def _json_schema(self) -> dict[str, Any]:
        scalar = {"type": ["string", "number", "boolean", "null"]}
        limit = f"at most {self.max_bytes} bytes as JSON"
        return {"type": "object", "additionalProperties": scalar, "description": limit}


class ListField(Field):
    """A JSON array of ``item`` values, ``1..max_items`` long, without repeats."""

    def __init__(self, item: Field, *, max_items: int = 64, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.item = item
        self.max_items = max_items

    def _coerce(self, value: Any) -> list[Any]:
        if not isinstance(value, list) or not 1 <= len(value) <= self.max_items:
            raise ValueError(f"must be a list of 1 to {self.max_items} items")
        items = []
        for index, item in enumerate(value):
            try:
                items.append(self.item.coerce(item))
            except ValueError as exc:
                raise ValueError(f"item {index} {exc}") from None
        if len(set(items)) != len(items):
            raise ValueError("must not repeat an item")
        return items

    def describe(self) -> str:
        return f"{super().describe()}[{self.item.describe()}x{self.max_items}]"

    def _json_schema(self) -> dict[str, Any]:
        return {
            "type": "array",
            "items": self.item.json_schema(),
            "minItems": 1,
            "maxItems": self.max_items,
            "uniqueItems": True,
        }
