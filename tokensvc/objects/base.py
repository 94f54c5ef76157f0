"""A small versioned-object framework in the manner of oslo.versionedobjects.

Each object class declares ``fields``, a ``VERSION`` with a changelog comment
per version, the ``VERSIONS`` it can produce, and ``obj_make_compatible`` to
backport a primitive. The wire form is
``{"object": NAME, "version": "X.Y", "data": {...}}``; unset fields are left
out of ``data``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Self

from tokensvc.errors import UnsupportedVersion, ValidationFailed
from tokensvc.objects.fields import Field

_REGISTRY: dict[str, type[VersionedObject]] = {}


def version_tuple(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise UnsupportedVersion(f"object version {version!r} is not of the form X.Y")
    return int(major), int(minor)


class VersionedObject:
    VERSION: ClassVar[str]
    VERSIONS: ClassVar[tuple[str, ...]]
    fields: ClassVar[dict[str, Field]]
    _values: dict[str, Any]
    _changed: set[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        assert cls.VERSIONS[-1] == cls.VERSION, f"{cls.__name__}: VERSION must be the newest"
        _REGISTRY[cls.obj_name()] = cls

    def __init__(self, **values: Any) -> None:
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_changed", set())
        self.obj_set(values)

    @classmethod
    def obj_name(cls) -> str:
        return cls.__name__

    # -- attribute access -------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name in type(self).fields:
            try:
                return self._values[name]
            except KeyError:
                raise AttributeError(f"{self.obj_name()}.{name} is not set") from None
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in type(self).fields:
            raise AttributeError(f"{self.obj_name()} has no field {name!r}")
        self.obj_set({name: value})

    def obj_set(self, values: Mapping[str, Any], *, wire: bool = False) -> None:
        """Coerce and set several fields; every bad one is reported together."""
        errors: dict[str, str] = {}
        coerced: dict[str, Any] = {}
        for name, value in values.items():
            field = type(self).fields.get(name)
            if field is None:
                errors[name] = "unknown field"
                continue
            try:
                coerced[name] = field.from_primitive(value) if wire else field.coerce(value)
            except ValueError as exc:
                errors[name] = str(exc)
        if errors:
            raise ValidationFailed(errors)
        self._values.update(coerced)
        self._changed.update(coerced)

    def obj_attr_is_set(self, name: str) -> bool:
        return name in self._values

    def obj_require(self, names: Iterable[str]) -> None:
        missing = {name: "is required" for name in names if name not in self._values}
        if missing:
            raise ValidationFailed(missing)

    def obj_what_changed(self) -> set[str]:
        return set(self._changed)

    def obj_reset_changes(self) -> None:
        self._changed.clear()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VersionedObject) or type(other) is not type(self):
            return NotImplemented
        return self._values == other._values

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in sorted(self._values.items()))
        return f"{self.obj_name()}({shown})"

    # -- primitives ------------------------------------------------------------
    def to_primitive(
        self, target_version: str | None = None, *, exclude: Iterable[str] = ()
    ) -> dict[str, Any]:
        target = self.VERSION if target_version is None else target_version
        if target not in self.VERSIONS:
            raise UnsupportedVersion(
                f"{self.obj_name()} version {target} is not one of {', '.join(self.VERSIONS)}"
            )
        skip = set(exclude)
        data = {
            name: type(self).fields[name].to_primitive(value)
            for name, value in self._values.items()
            if name not in skip
        }
        if target != self.VERSION:
            self.obj_make_compatible(data, target)
        return {"object": self.obj_name(), "version": target, "data": data}

    def obj_make_compatible(self, primitive: dict[str, Any], target_version: str) -> None:
        """Backport ``primitive`` (the ``data`` dict) in place; override per version."""

    @classmethod
    def from_primitive(cls, primitive: Mapping[str, Any]) -> Self:
        obj = VersionedObject.obj_from_primitive(primitive)
        if not isinstance(obj, cls):
            raise ValidationFailed({"object": f"expected {cls.obj_name()}"})
        return obj

    @staticmethod
    def obj_from_primitive(primitive: Mapping[str, Any]) -> VersionedObject:
        if not isinstance(primitive, Mapping):
            raise ValidationFailed({"object": "a primitive must be an object"})
        name, version, data = (primitive.get(k) for k in ("object", "version", "data"))
        cls = _REGISTRY.get(name) if isinstance(name, str) else None
        if cls is None:
            raise ValidationFailed({"object": f"unknown object {name!r}"})
        if not isinstance(version, str) or not isinstance(data, Mapping):
            raise ValidationFailed({"version": "primitive needs a version string and data"})
        theirs, ours = version_tuple(version), version_tuple(cls.VERSION)
        if theirs[0] != ours[0] or theirs > ours:
            raise UnsupportedVersion(
                f"cannot read {name} {version} (this service has {cls.VERSION})"
            )
        obj = cls.__new__(cls)
        object.__setattr__(obj, "_values", {})
        object.__setattr__(obj, "_changed", set())
        obj.obj_set(data, wire=True)
        obj.obj_reset_changes()
        return obj

    @classmethod
    def obj_fingerprint(cls) -> str:
        return fingerprint(cls.VERSION, cls.fields)


def fingerprint(version: str, fields: Mapping[str, Field]) -> str:
    """``VERSION-md5`` of the field definitions: changes when fields change."""
    described = repr(sorted((name, field.describe()) for name, field in fields.items()))
    digest = hashlib.md5(described.encode(), usedforsecurity=False).hexdigest()
    return f"{version}-{digest}"


def registered_objects() -> dict[str, type[VersionedObject]]:
    return dict(_REGISTRY)
