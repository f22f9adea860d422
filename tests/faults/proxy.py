"""A fault-injecting HTTP proxy for an S3 endpoint (moto), stdlib only.

The proxy listens on ``127.0.0.1`` and understands just enough HTTP/1.1 to
find request boundaries on keep-alive connections: the request line, the
headers, then a ``Content-Length`` body or a ``Transfer-Encoding: chunked``
one (chunks and trailers, forwarded byte for byte). ``Expect: 100-continue``
is answered by the proxy itself, so clients never wait for it. Every whole
request gets one decision from the :class:`FaultSchedule`:

``pass``
    forwarded to the upstream unchanged.
``delay``
    forwarded after a sleep drawn from the schedule's delay range.
``drop``
    the connection is closed without a reply and the request is *not*
    forwarded: the server never saw it.
``lost``
    the request *is* forwarded, the server applies it, and the connection
    is closed before the reply: the client cannot know that it succeeded.
``500`` / ``503``
    answered by the proxy with an S3-style XML error body (``InternalError``
    / ``SlowDown``) and not forwarded.

Each forwarded request goes to the upstream over a new connection with
``Connection: close``; the reply is read whole and sent back with its own
framing (a reply delimited by the end of the connection is given a
``Content-Length``), so the client's connection stays usable.

The proxy serves from a process of its own, driven over a pipe by
:class:`FaultProxy`: deltalake may hold the GIL of the test process while it
waits on HTTP, which would stall a proxy thread in that process (the reason
the moto server runs in a process of its own too). So a schedule's filter is
data (:class:`Only`), not a function, and a test arms or disarms it by message.

How honest the schedule is: the decisions are a pure function of the seed
and of the order in which requests arrive (one ``random.Random(seed)`` drawn
under a lock, once per eligible request). Requests of one client thread
arrive in a fixed order, but deltalake, boto3 and the engine's heartbeat
thread may send requests concurrently, so *which* request gets the k-th
decision can vary between runs of one seed; the tests therefore assert only
what must hold whatever request a fault hits. A request whose
``(method, target)`` was already faulted ``max_faults_per_request`` times is
passed: faults are transient, and a client that retries at least that many
times must get through (the retry budgets of botocore, 4 retries, and
object_store, 10, are larger). ``only`` restricts faults to the requests it
accepts (for example those touching ``_delta_log/`` while the proxy is
armed); the others pass without drawing.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import unquote, urlsplit

FAULT_KINDS = ("delay", "drop", "lost", "500", "503")

_ERRORS = {
    "500": ("Internal Server Error", "InternalError", "We encountered an internal error."),
    "503": ("Service Unavailable", "SlowDown", "Please reduce your request rate."),
}
_NO_BODY_STATUS = {204, 304}


@dataclass(frozen=True)
class Request:
    """One whole HTTP request as the client sent it."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes  # raw, as framed on the wire (chunked bodies keep their chunks)

    @property
    def path(self) -> str:
        """The decoded path and query: ``/bucket/key?list-type=2&prefix=...``."""
        return unquote(self.target)

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)


@dataclass(frozen=True)
class Only:
    """Which requests a schedule may fault: all of ``methods`` (empty: any) whose decoded
    path and query hold ``contains``, and, with ``when_armed``, only while the proxy is armed.
    """

    methods: tuple[str, ...] = ()
    contains: str = ""
    when_armed: bool = False

    def accepts(self, request: Request, *, armed: bool) -> bool:
        return (
            (not self.when_armed or armed)
            and (not self.methods or request.method in self.methods)
            and self.contains in request.path
        )


DELTA_LOG = "_delta_log"
"""What every request that reads, lists or writes a Delta log has in its path."""


@dataclass
class FaultSchedule:
    """Seeded decisions, one per eligible request: ``rates`` maps a fault kind to its chance."""

    seed: int
    rates: dict[str, float]
    delay_range: tuple[float, float] = (0.2, 0.5)
    max_faults_per_request: int = 2
    only: Only | None = None
    _rng: random.Random = field(init=False, repr=False)
    _faulted: Counter[tuple[str, str]] = field(init=False, repr=False, default_factory=Counter)

    def __post_init__(self) -> None:
        unknown = set(self.rates) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}: use {FAULT_KINDS}")
        if sum(self.rates.values()) > 1:
            raise ValueError(f"fault rates add up to more than 1: {self.rates}")
        self._rng = random.Random(self.seed)

    def decide(self, request: Request, *, armed: bool = False) -> tuple[str, float]:
        """The fault for ``request`` (``"pass"`` for none) and, for a delay, its seconds.

        Not thread-safe on its own: the proxy calls it under its lock.
        """
        if self.only is not None and not self.only.accepts(request, armed=armed):
            return "pass", 0.0
        draw, seconds = self._rng.random(), self._rng.uniform(*self.delay_range)
        key = (request.method, request.target)
        if self._faulted[key] >= self.max_faults_per_request:
            return "pass", 0.0
        edge = 0.0
        for kind in FAULT_KINDS:
            edge += self.rates.get(kind, 0.0)
            if draw < edge:
                if kind != "delay":  # a delayed request still succeeds
                    self._faulted[key] += 1
                return kind, seconds if kind == "delay" else 0.0
        return "pass", 0.0


class FaultProxy:
    """A fault-injecting proxy in front of ``upstream`` (``http://host:port``), served by a
    process of its own that this object drives.

    >>> with FaultProxy("http://127.0.0.1:9", FaultSchedule(1, {"503": 0.1})) as proxy:
    ...     proxy.url.startswith("http://127.0.0.1:"), proxy.stats()
    (True, {'requests': 0, 'faults': {}})
    """

    def __init__(self, upstream: str, schedule: FaultSchedule | None = None) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._lock = threading.Lock()
        self._process = context.Process(
            target=_proxy_main,
            args=((parts.hostname, parts.port), schedule or FaultSchedule(0, {}), child),
            name="fault-proxy",
            daemon=True,
        )
        self._process.start()
        child.close()
        try:
            if not self._conn.poll(30):
                raise EOFError
            self.url: str = self._conn.recv()
        except EOFError:
            self._process.kill()
            raise RuntimeError(
                "the fault proxy process did not start (a script that starts one needs "
                "the if __name__ == '__main__' guard of multiprocessing's spawn)"
            ) from None

    def _ask(self, *command: Any) -> Any:
        with self._lock:  # one command and its answer at a time, from any thread
            self._conn.send(command)
            return self._conn.recv()

    def reset(self, schedule: FaultSchedule) -> None:
        """Start counting afresh under a new schedule (disarmed)."""
        self._ask("reset", schedule)

    def arm(self, armed: bool = True) -> None:
        """Let (or stop letting) an ``Only(when_armed=True)`` schedule fault requests."""
        self._ask("arm", armed)

    def stats(self) -> dict[str, Any]:
        """Requests seen and faults injected by kind, since the last reset."""
        return self._ask("stats")

    @property
    def log(self) -> list[tuple[int, float, str, str, str]]:
        """Per request since the last reset: number, seconds since it, method, path, decision."""
        return self._ask("log")

    def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError, EOFError):
                self._ask("close")
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
        self._conn.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _proxy_main(upstream: tuple[str, int], schedule: FaultSchedule, conn: Connection) -> None:
    """The proxy process: serve until told to close (or the test process is gone)."""
    server = _ProxyServer(upstream, schedule)
    conn.send(server.url)
    try:
        while True:
            try:
                command, *args = conn.recv()
            except (EOFError, OSError):
                return
            if command == "close":
                conn.send(None)
                return
            conn.send(getattr(server, command)(*args))
    finally:
        server.close()


class _ProxyServer:
    """The threaded TCP proxy itself: one thread per client connection."""

    def __init__(self, upstream: tuple[str, int], schedule: FaultSchedule) -> None:
        self.upstream = upstream
        self.lock = threading.Lock()
        self.schedule = schedule
        self.armed = False
        self.requests = 0
        self.faults: Counter[str] = Counter()
        self._log: list[tuple[int, float, str, str, str]] = []
        self._started = time.monotonic()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._clients: set[socket.socket] = set()
        self._accepting = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------ commands

    def reset(self, schedule: FaultSchedule) -> None:
        with self.lock:
            self.schedule = schedule
            self.armed = False
            self.requests = 0
            self.faults = Counter()
            self._log = []
            self._started = time.monotonic()

    def arm(self, armed: bool) -> None:
        with self.lock:
            self.armed = armed

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": self.requests, "faults": dict(sorted(self.faults.items()))}

    def log(self) -> list[tuple[int, float, str, str, str]]:
        with self.lock:
            return list(self._log)

    def close(self) -> None:
        """Stop serving: close the listener and every client connection, then wait for them."""
        self._closed.set()
        self._accepting.join(timeout=5)
        self._listener.close()
        with self.lock:
            clients = list(self._clients)
        for client in clients:  # wake the threads blocked reading a keep-alive connection
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)

    # ------------------------------------------------------------------ serving

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            thread.start()
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(1.0)
        with self.lock:
            self._clients.add(client)
        reader = _Reader(client, self._closed)
        try:
            while not self._closed.is_set():
                request = _read_request(reader, client)
                if request is None:
                    return
                with self.lock:
                    self.requests += 1
                    number = self.requests
                    kind, seconds = self.schedule.decide(request, armed=self.armed)
                    if kind != "pass":
                        self.faults[kind] += 1
                    elapsed = time.monotonic() - self._started
                    self._log.append((number, elapsed, request.method, request.path, kind))
                if kind == "drop":
                    return
                if kind in _ERRORS:
                    client.sendall(_error_reply(request, kind))
                    continue
                if kind == "delay":
                    time.sleep(seconds)
                reply = self._forward(request)
                if kind == "lost":
                    return
                client.sendall(reply)
                if (request.header("Connection") or "").lower() == "close":
                    return
        except (OSError, _Closed):
            return
        finally:
            with self.lock:
                self._clients.discard(client)
            client.close()

    def _forward(self, request: Request) -> bytes:
        """Send ``request`` upstream on a new connection; the reply to send back."""
        with socket.create_connection(self.upstream, timeout=60) as upstream:
            head = [f"{request.method} {request.target} {request.version}"]
            for name, value in request.headers:
                if name.lower() not in ("connection", "expect", "keep-alive"):
                    head.append(f"{name}: {value}")
            head.append("Connection: close")
            upstream.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + request.body)
            return _read_reply(_Reader(upstream, None), request.method)


class _Closed(Exception):
    """The peer closed the connection in the middle of a message."""


class _Reader:
    """Buffered reads from a socket that give up when the proxy closes."""

    def __init__(self, sock: socket.socket, closed: threading.Event | None) -> None:
        self.sock = sock
        self.closed = closed
        self.buffer = b""

    def _fill(self) -> bool:
        while True:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                if self.closed is not None and self.closed.is_set():
                    raise _Closed from None
                continue
            if not data:
                return False
            self.buffer += data
            return True

    def line(self, *, at_start: bool = False) -> bytes | None:
        """One line with its CRLF; None if the peer closed before a new message began."""
        while b"\r\n" not in self.buffer:
            if not self._fill():
                if at_start and not self.buffer:
                    return None
                raise _Closed
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line + b"\r\n"

    def exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if not self._fill():
                raise _Closed
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def rest(self) -> bytes:
        while self._fill():
            pass
        data, self.buffer = self.buffer, b""
        return data


def _read_head(reader: _Reader) -> tuple[str, list[tuple[str, str]]] | None:
    first = reader.line(at_start=True)
    if first is None:
        return None
    headers = []
    while True:
        line = reader.line()
        if line == b"\r\n":
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    return first.decode("latin-1").rstrip("\r\n"), headers


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name), None)


def _read_body(reader: _Reader, headers: list[tuple[str, str]]) -> bytes | None:
    """The raw body framed by the headers; None if it is delimited by the end of the stream."""
    if "chunked" in (_header(headers, "transfer-encoding") or "").lower():
        raw = []
        while True:
            size_line = reader.line()
            assert size_line is not None
            raw.append(size_line)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:  # trailers, then an empty line
                    trailer = reader.line()
                    assert trailer is not None
                    raw.append(trailer)
                    if trailer == b"\r\n":
                        return b"".join(raw)
            raw.append(reader.exactly(size + 2))
    length = _header(headers, "content-length")
    if length is not None:
        return reader.exactly(int(length))
    return None


def _read_request(reader: _Reader, client: socket.socket) -> Request | None:
    parsed = _read_head(reader)
    if parsed is None:
        return None
    first, headers = parsed
    method, target, version = first.split(" ", 2)
    if (_header(headers, "expect") or "").lower() == "100-continue":
        client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = _read_body(reader, headers)
    return Request(method, target, version, headers, body or b"")


def _read_reply(reader: _Reader, method: str) -> bytes:
    while True:
        parsed = _read_head(reader)
        if parsed is None:
            raise _Closed
        status_line, headers = parsed
        status = int(status_line.split(" ", 2)[1])
        if status >= 200 or status == 101:
            break  # informational replies (100 Continue) are the proxy's business, not forwarded
    if method == "HEAD" or status in _NO_BODY_STATUS or status < 200:
        body: bytes | None = b""
    else:
        body = _read_body(reader, headers)
    kept = [(k, v) for k, v in headers if k.lower() not in ("connection", "keep-alive")]
    if body is None:  # delimited by the end of the upstream connection: give it a length
        body = reader.rest()
        kept = [(k, v) for k, v in kept if k.lower() != "content-length"]
        kept.append(("Content-Length", str(len(body))))
    head = [status_line, *(f"{k}: {v}" for k, v in kept)]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def _error_reply(request: Request, kind: str) -> bytes:
    reason, code, message = _ERRORS[kind]
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{request.target.split('?')[0]}</Resource>"
        "<RequestId>fault-proxy</RequestId></Error>"
    ).encode()
    head = [
        f"HTTP/1.1 {kind} {reason}",
        "Content-Type: application/xml",
        f"Content-Length: {len(body)}",
        "x-amz-request-id: fault-proxy",
    ]
    if kind == "503":
        head.append("Retry-After: 0")
    payload = b"" if request.method == "HEAD" else body
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload
