"""A small versioned-object framework in the manner of oslo.versionedobjects.

Each object class declares ``fields``, a ``VERSION`` with a changelog comment
per version, the ``VERSIONS`` it can produce, and ``obj_make_compatible`` to
backport a primitive. The wire form is
``{"object": NAME, "version": "X.Y", "data": {...}}``; unset fields are left
out of ``data``.

Versioning rules (``tokensvc.objects.checker`` and tests/unit/test_objects.py
enforce what a machine can see):

* The fingerprint of an object is ``VERSION-md5`` of its fields (names, types
  and their parameters), the signatures of its public methods and its
  ``obj_relationships``. Whenever it changes, bump the minor ``VERSION``, add
  it to ``VERSIONS`` with a changelog comment, backport the change in
  ``obj_make_compatible`` (drop a new field, convert a changed one), and
  update the expected fingerprint in the test.
* An object that nests another (an ``ObjectField``) lists in
  ``obj_relationships`` which child version each of its versions carries,
  from the version that added the field: ``{"lease": (("1.2", "1.0"),)}``.
  A child bump is a parent bump too: add ``(new parent version, new child
  version)``. ``to_primitive`` then encodes the child at the version the
  target parent version shipped with, and leaves the field out of versions
  older than its first pair.
* A removed field or an incompatible change needs a new major version, which
  readers of the old major refuse.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Self

from tokensvc.errors import UnsupportedVersion, ValidationFailed
from tokensvc.objects.fields import Field

_REGISTRY: dict[str, type[VersionedObject]] = {}
# Per nested field: (parent version, child version it carries) pairs, oldest first.
Relationships = Mapping[str, tuple[tuple[str, str], ...]]


def version_tuple(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise UnsupportedVersion(f"object version {version!r} is not of the form X.Y")
    return int(major), int(minor)


class VersionedObject:
    VERSION: ClassVar[str]
    VERSIONS: ClassVar[tuple[str, ...]]
    fields: ClassVar[dict[str, Field]]
    obj_relationships: ClassVar[Relationships] = {}
    _values: dict[str, Any]
    _changed: set[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_declaration(cls)
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

    @classmethod
    def obj_load(cls, **values: Any) -> Self:
        """The object as read back from the service's own storage.

        What is stored was checked when it was written, perhaps under looser rules than
        today's (a row written before an id or URL got its shape): shaped text is not
        checked again (``Field.load``), so a stricter release still reads it.
        """
        loaded = cls.__new__(cls)
        object.__setattr__(loaded, "_values", {})
        object.__setattr__(loaded, "_changed", set())
        loaded.obj_set(values, stored=True)
        loaded.obj_reset_changes()
        return loaded

    def obj_set(
        self, values: Mapping[str, Any], *, wire: bool = False, stored: bool = False
    ) -> None:
        """Coerce and set several fields; every bad one is reported together."""
        errors: dict[str, str] = {}
        coerced: dict[str, Any] = {}
        for name, value in values.items():
            field = type(self).fields.get(name)
            if field is None:
                errors[name] = "unknown field"
                continue
            try:
                if stored:
                    coerced[name] = field.load(value)
                else:
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
        data = {}
        for name, value in self._values.items():
            if name in skip:
                continue
            if name not in self.obj_relationships:
                data[name] = type(self).fields[name].to_primitive(value)
            elif (child_version := self.obj_child_version(name, target)) is not None:
                data[name] = None if value is None else value.to_primitive(child_version)
        if target != self.VERSION:
            self.obj_make_compatible(data, target)
        return {"object": self.obj_name(), "version": target, "data": data}

    def obj_make_compatible(self, primitive: dict[str, Any], target_version: str) -> None:
        """Backport ``primitive`` (the ``data`` dict) in place; override per version.

        Nested objects arrive already backported (see ``obj_relationships``).
        """

    @classmethod
    def obj_child_version(cls, name: str, version: str) -> str | None:
        """The version of the object in field ``name`` that our ``version`` carries.

        None when ``version`` predates the field.
        """
        carried = None
        for parent_version, child_version in cls.obj_relationships[name]:
            if version_tuple(parent_version) <= version_tuple(version):
                carried = child_version
        return carried

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


class ObjectField(Field):
    """A nested versioned object, named so the registry resolves it lazily.

    (Here rather than in fields.py: it reads objects, and fields must not import them.)

    The parent encodes it, at the version its ``obj_relationships`` name.
    """

    def __init__(self, object_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.object_name = object_name

    def _coerce(self, value: Any) -> Any:
        if not isinstance(value, VersionedObject) or value.obj_name() != self.object_name:
            raise ValueError(f"must be a {self.object_name}")
        return value

    def from_primitive(self, value: Any) -> Any:
        if value is None:
            return self.coerce(None)
        return self.coerce(VersionedObject.obj_from_primitive(value))

    def describe(self) -> str:
        return f"{super().describe()}<{self.object_name}>"

    def _json_schema(self) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{self.object_name}"}


def _check_declaration(cls: type[VersionedObject]) -> None:
    """What one class can get wrong on its own; the checker compares classes."""
    name = cls.__name__
    if cls.VERSIONS[-1] != cls.VERSION:
        raise TypeError(f"{name}: VERSION must be the newest of VERSIONS")
    nested = {n for n, field in cls.fields.items() if isinstance(field, ObjectField)}
    if nested != set(cls.obj_relationships):
        raise TypeError(f"{name}: obj_relationships must name exactly its nested objects")
    for field, pairs in cls.obj_relationships.items():
        if not pairs or any(parent not in cls.VERSIONS for parent, _ in pairs):
            raise TypeError(f"{name}.{field}: relationships must pair versions of VERSIONS")
        parents = [version_tuple(parent) for parent, _ in pairs]
        children = [version_tuple(child) for _, child in pairs]
        if parents != sorted(set(parents)) or children != sorted(children):
            raise TypeError(f"{name}.{field}: relationships must be oldest first")


def registered_objects() -> dict[str, type[VersionedObject]]:
    return dict(_REGISTRY)
