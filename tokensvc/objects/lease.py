"""The ConsoleLease object: who holds a console port, and whether they must go."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from tokensvc.objects.base import VersionedObject
from tokensvc.objects.fields import DateTimeField, EnumField, Field, HexField
from tokensvc.objects.text import name_field

# Why a proxy must close a session; every reason but "expired" is close code 4010.
CLOSE_REASONS = ("revoked", "rotated", "instance-deleted", "instance-moved", "forced", "expired")


class ConsoleLease(VersionedObject):
    # Version 1.0: id, proxy_id, client, since, expires, close_reason
    VERSION = "1.0"
    VERSIONS: ClassVar[tuple[str, ...]] = ("1.0",)

    fields: ClassVar[dict[str, Field]] = {
        "id": HexField(length=32),
        "proxy_id": name_field(),
        "client": name_field(nullable=True),
        "since": DateTimeField(),
        "expires": DateTimeField(),
        "close_reason": EnumField(CLOSE_REASONS, nullable=True),
    }

    id: str
    proxy_id: str
    client: str | None
    since: dt.datetime
    expires: dt.datetime
    close_reason: str | None
