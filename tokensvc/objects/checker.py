"""Object version checks in the manner of oslo.versionedobjects' ObjectVersionChecker.

Tests compare ``fingerprints()`` with a table of expected values and require
``child_version_problems()`` to be empty; base.py's docstring has the rules.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from typing import Any

from tokensvc.objects.base import ObjectField, VersionedObject, registered_objects


def fingerprint(cls: type[VersionedObject]) -> str:
    """``VERSION-md5`` of what a version promises: fields, methods, children."""
    relevant = (
        sorted((name, field.describe()) for name, field in cls.fields.items()),
        method_signatures(cls),
        sorted(cls.obj_relationships.items()),
    )
    digest = hashlib.md5(repr(relevant).encode(), usedforsecurity=False).hexdigest()
    return f"{cls.VERSION}-{digest}"


def fingerprints() -> dict[str, str]:
    return {name: fingerprint(cls) for name, cls in sorted(registered_objects().items())}


def method_signatures(cls: type[VersionedObject]) -> list[tuple[str, str]]:
    """The object's own public methods (the framework's are the same for all).

    Parameter names, kinds and defaults only: annotations name types that may
    move without changing what a caller passes.
    """
    signatures = []
    for name in sorted(set(dir(cls)) - set(dir(VersionedObject))):
        method = _function(inspect.getattr_static(cls, name))
        if name.startswith("_") or method is None:
            continue
        signature = inspect.signature(method)
        bare = [param.replace(annotation=param.empty) for param in signature.parameters.values()]
        signatures.append(
            (name, str(signature.replace(parameters=bare, return_annotation=signature.empty)))
        )
    return signatures


def _function(attribute: Any) -> Callable[..., Any] | None:
    if isinstance(attribute, classmethod | staticmethod):
        attribute = attribute.__func__
    return attribute if inspect.isfunction(attribute) else None


def child_version_problems() -> list[str]:
    """Nested objects whose versions the parent's relationships do not match.

    A child bump fails here until the parent is bumped with a new relationship.
    """
    registry = registered_objects()
    return [
        problem
        for name, cls in sorted(registry.items())
        for field in sorted(cls.obj_relationships)
        for problem in _relationship_problems(cls, field, registry)
    ]


def _relationship_problems(
    cls: type[VersionedObject], field: str, registry: dict[str, type[VersionedObject]]
) -> list[str]:
    where = f"{cls.obj_name()}.{field}"
    declared = cls.fields[field]
    assert isinstance(declared, ObjectField)  # _check_declaration made sure
    child = registry.get(declared.object_name)
    if child is None:
        return [f"{where}: no object {declared.object_name}"]
    problems = [
        f"{where}: {child.obj_name()} has no version {version} (pair for {cls.obj_name()} {ours})"
        for ours, version in cls.obj_relationships[field]
        if version not in child.VERSIONS
    ]
    carried = cls.obj_child_version(field, cls.VERSION)
    if carried != child.VERSION:
        problems.append(
            f"{where}: {cls.obj_name()} {cls.VERSION} carries {child.obj_name()} {carried}, "
            f"but {child.obj_name()} is {child.VERSION}: bump {cls.obj_name()} and add "
            f"(its new version, {child.VERSION!r}) to obj_relationships[{field!r}]"
        )
    return problems
