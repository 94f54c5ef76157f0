"""The Instance object: a virtual machine and the compute host that runs it."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from tokensvc.objects.base import VersionedObject
from tokensvc.objects.fields import DateTimeField, Field, UUIDField
from tokensvc.objects.text import name_field


class Instance(VersionedObject):
    # Version 1.0: uuid, host (the compute host), created_at
    VERSION = "1.0"
    VERSIONS: ClassVar[tuple[str, ...]] = ("1.0",)

    fields: ClassVar[dict[str, Field]] = {
        "uuid": UUIDField(),
        "host": name_field(),
        "created_at": DateTimeField(read_only=True),
    }

    uuid: str
    host: str
    created_at: dt.datetime
