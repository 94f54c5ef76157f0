"""Loopback network fakes for outage tests: a TCP forwarder that can be cut, and a
server that accepts connections and never answers.

Everything listens on 127.0.0.1 only, runs in daemon threads, is bounded in the
number of connections it serves, and polls with short socket timeouts so that
``close()`` returns promptly. Use them as context managers or close them in a
fixture's teardown.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections.abc import Callable
from types import TracebackType

_POLL = 0.05  # seconds: how often blocked threads look at their stop flag
_CHUNK = 65536
_JOIN_TIMEOUT = 2.0


def _reset(sock: socket.socket) -> None:
    """Close abortively: the peer gets a RST rather than a FIN, so it fails at once."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class Listener:
    """A loopback listener on a free port with an accept thread; subclasses handle clients."""

    def __init__(self, *, max_connections: int, name: str) -> None:
        """``max_connections``: how many of them a subclass's ``_handle`` serves at once."""
        self.max_connections = max_connections
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(_POLL)
        self.port: int = self._sock.getsockname()[1]
        self.accepted = 0  # every connection accepted, including the ones refused at once
        self._acceptor = threading.Thread(target=self._accept_loop, name=name, daemon=True)
        self._acceptor.start()

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            with self._lock:
                self.accepted += 1
            conn.settimeout(_POLL)
            if self._stop.is_set():
                _reset(conn)
                return
            self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _spawn(self, target: Callable[..., None], *args: object, name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _close_connections(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop accepting, drop every connection, and wait (bounded) for the threads."""
        self._stop.set()
        self._acceptor.join(_JOIN_TIMEOUT)
        with contextlib.suppress(OSError):
            self._sock.close()
        self._close_connections()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(_JOIN_TIMEOUT)

    def __enter__(self) -> Listener:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Pair:
    """One proxied connection: the client's socket and the one to the target."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._released = 0

    def cut(self) -> None:
        """Wake both pumps; they see the flag and close (the client side by RST)."""
        self.closed.set()
        _shutdown(self.client)
        _shutdown(self.upstream)

    def release(self) -> None:
        """Called by each pump when it ends; the last one closes the sockets."""
        self.cut()
        with self._lock:
            self._released += 1
            last = self._released == 2
        if last:
            _reset(self.client)
            _reset(self.upstream)


class TcpProxy(Listener):
    """Forwards 127.0.0.1:``port`` to ``target_host:target_port`` until cut.

    ``cut()`` resets every live connection and every new one until ``restore()``
    (the clients see "connection reset"/"lost connection" at once rather than
    hanging until a timeout); the listening port stays the same throughout.
    ``blackhole()`` instead keeps every connection open but silently drops what
    either side sends, like a frozen server or a partition that loses packets.
    ``restore()`` resets the connections a blackhole damaged, then forwards again.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        max_connections: int = 64,
        connect_timeout: float = 2.0,
    ) -> None:
        self.target = (target_host, target_port)
        self.connect_timeout = connect_timeout
        self._cut = False
        self._blackhole = False
        self._pairs: set[_Pair] = set()
        super().__init__(max_connections=max_connections, name=f"tcpproxy->{target_port}")

    @property
    def is_cut(self) -> bool:
        return self._cut

    @property
    def live_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            pairs = list(self._pairs)
        for pair in pairs:
            pair.cut()

    def blackhole(self) -> None:
        with self._lock:
            self._blackhole = True

    def restore(self) -> None:
        with self._lock:  # held throughout: no new connection slips in still blackholed
            if self._blackhole:
                for pair in self._pairs:
                    pair.cut()
            self._cut = self._blackhole = False

    def _close_connections(self) -> None:
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.cut()

    def _handle(self, conn: socket.socket) -> None:
        with self._lock:
            refuse = self._cut or len(self._pairs) >= self.max_connections
        if refuse:
            _reset(conn)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=self.connect_timeout)
        except OSError:
            _reset(conn)
            return
        # Blocking sockets: the pumps wait in select() and cut() wakes a blocked send.
        conn.settimeout(None)
        upstream.settimeout(None)
        pair = _Pair(conn, upstream)
        with self._lock:
            if self._cut or self._stop.is_set():
                refuse = True
            else:
                self._pairs.add(pair)
        if refuse:
            _reset(conn)
            _reset(upstream)
            return
        self._spawn(self._pump, pair, conn, upstream, name="tcpproxy-up")
        self._spawn(self._pump, pair, upstream, conn, name="tcpproxy-down")

    def _pump(self, pair: _Pair, source: socket.socket, sink: socket.socket) -> None:
        try:
            while not pair.closed.is_set():
                readable, _, _ = select.select([source], [], [], _POLL)
                if not readable:
                    continue
                data = source.recv(_CHUNK)
                if not data or pair.closed.is_set():
                    break
                if not self._blackhole:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._pairs.discard(pair)
            pair.release()


class HangingServer(Listener):
    """Accepts connections, reads and discards what they send, and never answers."""

    def __init__(self, *, max_connections: int = 64) -> None:
        self._conns: set[socket.socket] = set()
        super().__init__(max_connections=max_connections, name="hanging-server")

    def _handle(self, conn: socket.socket) -> None:
        with self._lock:
            full = len(self._conns) >= self.max_connections
            if not full:
                self._conns.add(conn)
        if full:
            _reset(conn)
            return
        self._spawn(self._drain, conn, name="hanging-server-conn")

    def _drain(self, conn: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                try:
                    if not conn.recv(_CHUNK):
                        break
                except TimeoutError:
                    continue
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            _reset(conn)

    def _close_connections(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            _shutdown(conn)
