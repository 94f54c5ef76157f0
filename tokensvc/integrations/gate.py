"""The proxy's front door: a connection gets a thread only once its request has arrived.

`tokensvc proxy` runs a thread per connection, which a client that opens sockets
and sends their request headers a byte at a time could exhaust. So one gate thread
holds every new connection in a selector, without a thread of its own, through the
TLS handshake and the request headers, and drops it when they are not complete
within the handshake deadline (counted from accept, whatever the client keeps
sending). A connection whose headers arrived in time goes on to a thread of its
own, with those headers read. Nothing past the blank line that ends the headers
is read here: the websocket frames that follow are the handler's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("tokensvc.proxy")

MAX_HEAD = 65536  # bytes of request line and headers (http.server's line limit)
TICK = 0.25  # seconds between deadline checks
_END = b"\r\n\r\n"
_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n"


@dataclasses.dataclass
class Admitted:
    """A connection whose request headers (``head``, up to the blank line) have arrived."""

    sock: socket.socket
    head: bytes


@dataclasses.dataclass
class _Waiting:
    sock: socket.socket
    address: Any
    deadline: float
    head: bytearray = dataclasses.field(default_factory=bytearray)
    shaken: bool = True  # False until the TLS handshake is done


class Gate(threading.Thread):
    """Holds connections until their headers arrive: ``admitted`` then, ``dropped`` if not."""

    def __init__(
        self,
        tls: ssl.SSLContext | None,
        timeout: float,
        admitted: Callable[[Admitted, Any], None],
        dropped: Callable[[], None],
    ) -> None:
        super().__init__(name="gate", daemon=True)
        self.tls, self.timeout = tls, timeout
        self._admitted, self._dropped = admitted, dropped
        self._selector = selectors.DefaultSelector()
        self._waiting: dict[int, _Waiting] = {}
        self._inbox: list[_Waiting] = []
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._stopping = False

    def admit(self, sock: socket.socket, address: Any) -> None:
        """From the accepting thread: start the deadline now, wait in the gate."""
        sock.setblocking(False)
        waiting = _Waiting(sock, address, time.monotonic() + self.timeout)
        if self.tls is not None:
            waiting.sock = self.tls.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
            waiting.shaken = False
        with self._lock:
            self._inbox.append(waiting)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def stop(self) -> None:
        """Drop every waiting connection and end the thread."""
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")
        self.join(5)

    def run(self) -> None:
        while not self._stopping:
            for key, _ in self._selector.select(TICK):
                if key.fileobj is self._wake_r:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                else:
                    self._step(self._waiting[key.fd])
            self._take_inbox()
            self._expire()
        for waiting in list(self._waiting.values()):
            self._drop(waiting, "proxy shutting down")

    def _take_inbox(self) -> None:
        with self._lock:
            arrived, self._inbox = self._inbox, []
        for waiting in arrived:
            self._waiting[waiting.sock.fileno()] = waiting
            self._selector.register(waiting.sock, selectors.EVENT_READ)
            self._step(waiting)  # a request sent with the connection may be there already

    def _expire(self) -> None:
        now = time.monotonic()
        for waiting in [w for w in self._waiting.values() if w.deadline <= now]:
            self._drop(waiting, f"handshake not completed within {self.timeout:g} s")

    def _step(self, waiting: _Waiting) -> None:
        try:
            if not waiting.shaken:
                self._handshake(waiting)
            done = self._read(waiting)
        except (ssl.SSLWantReadError, BlockingIOError):
            self._selector.modify(waiting.sock, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._selector.modify(waiting.sock, selectors.EVENT_WRITE)
            return
        except OSError as exc:  # ssl.SSLError included
            self._drop(waiting, f"connection failed ({type(exc).__name__})")
            return
        if done:
            self._pass_on(waiting)

    def _handshake(self, waiting: _Waiting) -> None:
        assert isinstance(waiting.sock, ssl.SSLSocket)
        waiting.sock.do_handshake()
        waiting.shaken = True
        self._selector.modify(waiting.sock, selectors.EVENT_READ)

    def _read(self, waiting: _Waiting) -> bool:
        """Read what has arrived, never past the headers' end; True once they are all in."""
        sock, head = waiting.sock, waiting.head
        while True:
            data = sock.recv(_next_read(sock, head))
            if not data:
                raise ConnectionResetError("closed before its request was complete")
            head += data
            if head.endswith(_END):
                return True
            if len(head) > MAX_HEAD:
                with contextlib.suppress(OSError):
                    sock.send(_TOO_LARGE)
                raise ConnectionAbortedError("request headers too large")
            if not isinstance(sock, ssl.SSLSocket) or not sock.pending():
                return False

    def _pass_on(self, waiting: _Waiting) -> None:
        self._forget(waiting)
        waiting.sock.setblocking(True)
        self._admitted(Admitted(waiting.sock, bytes(waiting.head)), waiting.address)

    def _drop(self, waiting: _Waiting, why: str) -> None:
        log.info("%s: dropped: %s", waiting.address[0], why)
        self._forget(waiting)
        with contextlib.suppress(OSError):
            waiting.sock.close()
        self._dropped()

    def _forget(self, waiting: _Waiting) -> None:
        self._waiting.pop(waiting.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(waiting.sock)


def _next_read(sock: socket.socket, head: bytearray) -> int:
    """How many bytes may be read without reading past the blank line ending the headers."""
    if not isinstance(sock, ssl.SSLSocket):
        # A peek shows what has arrived; take it up to the end of the headers, if there.
        seen = bytes(head[-3:]) + sock.recv(MAX_HEAD, socket.MSG_PEEK)
        end = seen.find(_END)
        return max(1, len(seen) - len(head[-3:]) if end < 0 else end + 4 - len(head[-3:]))
    # TLS cannot peek: read no more than could complete the blank line.
    for count, tail in ((1, b"\r\n\r"), (2, b"\r\n"), (3, b"\r")):
        if head.endswith(tail):
            return count
    return 4
