"""Python client of the tokensvc HTTP API, raising the service's own typed exceptions.

    with Client("https://tokens.example:8080", key) as compute:
        compute.put_instance(instance_uuid, "compute-1")
        registration = compute.register_console(instance_uuid, "10.0.0.5", 5900, "novnc")
    with Client.from_key_file("https://tokens.example:8080", "/etc/tokensvc/proxy.key") as proxy:
        connection = proxy.validate(registration.token, "novnc")  # InvalidToken if not live

A problem+json answer raises ``error_for_slug(slug)`` with the problem's detail, the problem
as ``.problem`` and, for validation errors, ``.errors`` as ``{field: detail}``; other HTTP
errors raise ``TokensvcError``, an unreachable or too slow service ``BackendUnavailable``.
Tokens go only in request bodies, never in a URL, an exception message or a log line.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote, urlencode

import requests
from requests.exceptions import ChunkedEncodingError

from tokensvc.errors import BackendUnavailable, TokensvcError, ValidationFailed, error_for_slug
from tokensvc.objects.console import ConsoleConnection
from tokensvc.objects.fields import DateTimeField
from tokensvc.objects.instance import Instance
from tokensvc.objects.lease import ConsoleLease
from tokensvc.stores.base import PurgeResult

PROBLEM_TYPE = "application/problem+json"
VERSION_HEADER = "X-Object-Version"
_DATETIME = DateTimeField()
_UNREACHABLE = (requests.ConnectionError, requests.Timeout, ChunkedEncodingError)


@dataclasses.dataclass(frozen=True)
class Registration:
    """A registered console. The token (and the access URL, which embeds it) stay out of repr."""

    token: str = dataclasses.field(repr=False)
    access_url: str | None = dataclasses.field(repr=False)
    expires_at: dt.datetime
    connection: ConsoleConnection


class _BearerAuth(requests.auth.AuthBase):
    """Sets ``Authorization: Bearer``; as explicit auth it also keeps ``~/.netrc`` out."""

    def __init__(self, key: str) -> None:
        self._key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._key}"
        return request


class Client:
    """One service key against one tokensvc; use as a context manager or call ``close()``."""

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        timeout: float = 5.0,
        session: requests.Session | None = None,
        object_version: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.object_version = object_version
        self._auth = _BearerAuth(key)
        self._owns_session = session is None
        self.session = requests.Session() if session is None else session

    @classmethod
    def from_key_file(cls, base_url: str, path: str | Path, **kw: Any) -> Self:
        """A client whose key is the content of ``path`` (surrounding whitespace ignored)."""
        key = Path(path).read_text(encoding="utf-8").strip()
        if not key:
            raise ValueError(f"the key file {path} is empty")
        return cls(base_url, key, **kw)

    def close(self) -> None:
        """Close the session's connections (a session passed in is left to its owner)."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- instances and consoles (compute or admin keys) -------------------------------
    def put_instance(self, uuid: str, host: str) -> Instance:
        """Create or move an instance (a move, admin-only, revokes its consoles)."""
        answer = self._request("PUT", f"/v1/instances/{_seg(uuid)}", body={"host": host})
        return Instance.from_primitive(answer)

    def delete_instance(self, uuid: str) -> None:
        self._request("DELETE", f"/v1/instances/{_seg(uuid)}")

    def register_console(
        self,
        instance_uuid: str,
        host: str,
        port: int | None,
        console_type: str,
        *,
        ports: Sequence[int] | None = None,
        access_url: str | None = None,
        options: dict[str, Any] | None = None,
        ttl: int | None = None,
        force: bool | None = None,
    ) -> Registration:
        """Register a console on ``port``, or on the next free one of ``ports``.

        The same instance, host and port again rotates its token.
        """
        body = _given(instance_uuid=instance_uuid, host=host, port=port, console_type=console_type)
        body |= _given(ports=None if ports is None else list(ports), force=force)
        body |= _given(access_url=access_url, options=options, ttl=ttl)
        answer = self._request("POST", "/v1/consoles", body=body)
        return Registration(
            token=answer["token"],
            access_url=answer["access_url"],
            expires_at=_DATETIME.from_primitive(answer["expires_at"]),
            connection=ConsoleConnection.from_primitive(answer["connection"]),
        )

    # -- sessions (proxies) ---------------------------------------------------------------
    def connect(
        self, token: str, proxy_id: str, client: str | None = None
    ) -> tuple[ConsoleConnection, ConsoleLease]:
        """Take the console's lease for a user (AlreadyConnected when it has one)."""
        body = _given(token=token, proxy_id=proxy_id, client=client)
        answer = self._request("POST", "/v1/tokens/connect", body=body)
        connection = ConsoleConnection.from_primitive(answer["connection"])
        return connection, ConsoleLease.from_primitive(answer["lease"])

    def disconnect(self, lease_id: str) -> None:
        self._request("POST", f"/v1/leases/{_seg(lease_id)}/disconnect")

    def heartbeat(self, proxy_id: str) -> dict[str, Any]:
        """``{"renewed": N, "close": [{"lease_id", "reason"}]}``."""
        return self._request("POST", f"/v1/proxies/{_seg(proxy_id)}/heartbeat")

    def close_feed(
        self, proxy_id: str, cursor: str | None = None, wait: float = 0.0
    ) -> dict[str, Any]:
        """``{"close": [...], "cursor", "busy"}``: once the closes differ from ``cursor``.

        The call waits up to ``wait`` seconds (the service caps it); give the client a
        ``timeout`` above that. ``busy``: the service could not wait, pause before asking.
        """
        query = urlencode(_given(cursor=cursor, wait=f"{wait:g}"))
        return self._request("GET", f"/v1/proxies/{_seg(proxy_id)}/closes?{query}")

    def reset_proxy(self, proxy_id: str) -> None:
        self._request("DELETE", f"/v1/proxies/{_seg(proxy_id)}/leases")

    def force_disconnect(self, lease_id: str) -> None:
        self._request("DELETE", f"/v1/leases/{_seg(lease_id)}")

    def list_leases(self, **filters: str) -> list[dict[str, Any]]:
        """Live sessions (``proxy_id=`` / ``compute_host=`` filter them)."""
        query = urlencode(filters)
        answer = self._request("GET", "/v1/leases" + (f"?{query}" if query else ""))
        leases: list[dict[str, Any]] = answer["leases"]
        return leases

    def revoke_token(self, token: str) -> None:
        self._request("POST", "/v1/tokens/revoke", body={"token": token})

    def list_consoles(self, instance_uuid: str) -> list[ConsoleConnection]:
        answer = self._request("GET", f"/v1/instances/{_seg(instance_uuid)}/consoles")
        return [ConsoleConnection.from_primitive(item) for item in answer["connections"]]

    def revoke_all(self, instance_uuid: str) -> None:
        self._request("DELETE", f"/v1/instances/{_seg(instance_uuid)}/consoles")

    def purge_expired(self, host: str) -> PurgeResult:
        """Delete the expired consoles of compute host ``host`` now."""
        answer = self._request("DELETE", f"/v1/hosts/{_seg(host)}/consoles/expired")
        return PurgeResult(deleted=int(answer["deleted"]), batches=int(answer["batches"]))

    # -- proxies -------------------------------------------------------------------------
    def validate(self, token: str, console_type: str | None = None) -> ConsoleConnection:
        """The console ``token`` opens; InvalidToken if unknown, expired or of another type."""
        body = _given(token=token, console_type=console_type)
        answer = self._request("POST", "/v1/tokens/validate", body=body)
        return ConsoleConnection.from_primitive(answer["connection"])

    # -- operations (no key needed) ----------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self._request("GET", "/healthz")

    def readiness(self) -> dict[str, Any]:
        """``{"database": ..., "redis": ...}``, also when it answers 503 (database down)."""
        return self._request("GET", "/readyz", also_ok=(503,))

    # -- the one place that talks HTTP -------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        also_ok: tuple[int, ...] = (),
    ) -> dict[str, Any]:
        headers = {"Accept": f"application/json, {PROBLEM_TYPE}"}
        if self.object_version is not None:
            headers[VERSION_HEADER] = self.object_version
        try:
            # No redirects: a 307 would replay the body, token included, to wherever it points.
            response = self.session.request(
                method,
                self.base_url + path,
                json=body,
                headers=headers,
                auth=self._auth,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except _UNREACHABLE as exc:
            raise BackendUnavailable(
                f"{method} {path}: tokensvc unreachable ({type(exc).__name__})"
            ) from exc
        except requests.RequestException as exc:
            raise TokensvcError(f"{method} {path}: request failed ({type(exc).__name__})") from exc
        is_problem = response.headers.get("Content-Type", "").startswith(PROBLEM_TYPE)
        if is_problem and response.status_code >= 400:
            secret = body.get("token") if body else None
            raise _problem_error(_json(response, method, path), secret)
        if response.status_code >= 300 and response.status_code not in also_ok:
            raise TokensvcError(f"{method} {path}: HTTP {response.status_code}")
        if response.status_code == 204:
            return {}
        return _json(response, method, path)


def _given(**fields: Any) -> dict[str, Any]:
    """The fields that are not None (the API wants optional fields left out, not null)."""
    return {name: value for name, value in fields.items() if value is not None}


def _seg(value: str) -> str:
    """``value`` as one path segment (a ``/`` or ``?`` in it cannot reach another route)."""
    return quote(value, safe="")


def _json(response: requests.Response, method: str, path: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise TokensvcError(f"{method} {path}: HTTP {response.status_code}, not a JSON object")
    return data


def _problem_error(problem: dict[str, Any], secret: str | None) -> TokensvcError:
    """The typed exception of a problem+json body; ``secret`` is blanked wherever it shows."""
    if secret:
        problem = _scrub(problem, secret)
    slug = str(problem.get("type", "")).rstrip("/").rpartition("/")[2]
    kind = error_for_slug(slug)
    detail = problem.get("detail")
    error: TokensvcError
    if issubclass(kind, ValidationFailed):
        listed = problem.get("errors")
        items = listed if isinstance(listed, list) else []
        fields = {
            str(item.get("field")): str(item.get("detail"))
            for item in items
            if isinstance(item, dict)
        }
        error = kind(fields or {"": str(detail or kind.title)})
    else:
        error = kind(None if detail is None else str(detail))
    error.problem = problem
    return error


def _scrub(value: Any, secret: str) -> Any:
    if isinstance(value, str):
        return value.replace(secret, "<token>")
    if isinstance(value, list):
        return [_scrub(item, secret) for item in value]
    if isinstance(value, dict):
        return {name: _scrub(item, secret) for name, item in value.items()}
    return value
