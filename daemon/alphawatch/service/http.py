"""The daemon's small HTTP server: /metrics, /healthz, /readyz.

    server = MetricsServer(host, port, registry, ready=lambda: (True, "ok"))
    server.start()      # binds (raises OSError naming host:port if it cannot), serves in a thread
    server.port         # the bound port (pass port 0 for an ephemeral one, e.g. in tests)
    server.stop()       # stops serving and closes the socket

- `/metrics`: the registry in the exposition format the scraper asks for (Prometheus
  text or OpenMetrics, via prometheus_client's content negotiation).
- `/healthz`: 200 "ok" as long as the process can answer (liveness probe).
- `/readyz`: 200 "ready" when `ready()` returns (True, _), else 503 with its reason
  ("observer not running", "ledger not writable", ...). An exception in `ready()` is
  a 503 too, never a crash of the server.

Why stdlib `ThreadingHTTPServer`: one slow scrape must not block the probes, and we
need no framework for three GET routes. Access logs are off (a scrape every 15 s would
drown the checkpoint events); errors go to the `alphawatch.http` logger.

Connections are bounded, because each one holds a thread and a file descriptor the
watcher and the ledger also need (1,017 idle connections under a 1,024-descriptor limit
once made /healthz time out and cost a checkpoint): at most `MAX_CONNECTIONS` at a time;
a connection that sends nothing for `IDLE_TIMEOUT` seconds is closed, and so is one that
has not finished its request `IDLE_TIMEOUT` seconds after it began waiting (checked when
a new connection arrives). At the cap, a new connection closes the one waiting longest
for a request, so a probe always gets in however many idle sockets are open.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

log = logging.getLogger("alphawatch.http")

Ready = Callable[[], tuple[bool, str]]


class Renders(Protocol):
    """A source that renders its own body (metrics.Exposition caches part of it)."""

    def render(self, accept: str) -> tuple[bytes, str]: ...


Source = CollectorRegistry | Renders


def render(source: Source, accept: str) -> tuple[bytes, str]:
    """(body, content type) of /metrics for this Accept header: Prometheus text or OpenMetrics."""
    if isinstance(source, CollectorRegistry):
        encoder, content_type = choose_encoder(accept)
        return encoder(source), content_type
    return source.render(accept)
_INDEX = (b"alphawatch\n\n/metrics  Prometheus metrics\n/healthz  liveness\n"
          b"/readyz   readiness (observer running, ledger writable)\n")
MAX_CONNECTIONS = 64
IDLE_TIMEOUT = 10.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # a burst of probes and scrapes waits in the kernel, not refused

    def __init__(self, address: tuple[str, int], registry: Source, ready: Ready,
                 max_connections: int = MAX_CONNECTIONS, idle_timeout: float = IDLE_TIMEOUT) -> None:
        if ":" in address[0]:  # an IPv6 literal such as "::"
            self.address_family = socket.AF_INET6
        self.registry = registry
        self.ready = ready
        self.max_connections, self.idle_timeout = max_connections, idle_timeout
        # open connection -> monotonic time it began waiting for a request (None: being answered)
        self._waiting: dict[socket.socket, float | None] = {}
        self._conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Admit a connection: close stale waiters, make room at the cap, then serve it."""
        now = time.monotonic()
        with self._conn_lock:
            for conn, since in list(self._waiting.items()):
                if since is not None and now - since > self.idle_timeout:
                    self._evict(conn)
            if len(self._waiting) >= self.max_connections:
                waiters = [(since, id(c), c) for c, since in self._waiting.items() if since is not None]
                if not waiters:  # every slot is answering a request: this one must wait its turn
                    self.shutdown_request(request)
                    return
                self._evict(min(waiters)[2])
            self._waiting[request] = now
        super().process_request(request, client_address)

    def _evict(self, conn: socket.socket) -> None:
        """Stop counting `conn` and wake the thread blocked reading it (its read returns empty),
        which then closes it. Called with the lock held."""
        del self._waiting[conn]
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._waiting.pop(request, None)

    def mark(self, conn: socket.socket, answering: bool) -> None:
        """A connection started answering a request, or went back to waiting for the next."""
        with self._conn_lock:
            if conn in self._waiting:
                self._waiting[conn] = None if answering else time.monotonic()

    def open_connections(self) -> int:
        with self._conn_lock:
            return len(self._waiting)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "alphawatch"
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT  # per read: a silent connection is closed after this

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.idle_timeout)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except OSError:  # closed under us (idle, evicted) or reset by the client
            self.close_connection = True
        finally:
            self.server.mark(self.connection, answering=False)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._route(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._route(send_body=False)

    def _route(self, send_body: bool) -> None:
        self.server.mark(self.connection, answering=True)
        route = urlsplit(self.path).path.rstrip("/") or "/"
        if route == "/metrics":
            try:
                body, content_type = render(self.server.registry, self.headers.get("Accept", ""))
            except Exception as exc:  # a collector bug: say so, keep serving
                log.error("metrics: collecting failed: %s: %s", type(exc).__name__, exc)
                self._reply(500, f"collecting metrics failed: {exc}\n".encode(), send_body=send_body)
                return
            self._reply(200, body, content_type, send_body)
        elif route == "/healthz":
            self._reply(200, b"ok\n", send_body=send_body)
        elif route == "/readyz":
            try:
                ok, reason = self.server.ready()
            except Exception as exc:
                ok, reason = False, f"readiness check failed: {type(exc).__name__}: {exc}"
            self._reply(200 if ok else 503, f"{'ready' if ok else 'not ready'}: {reason}\n".encode(),
                        send_body=send_body)
        elif route == "/":
            self._reply(200, _INDEX, send_body=send_body)
        else:
            self._reply(404, b"not found; try /metrics, /healthz or /readyz\n", send_body=send_body)

    def _reply(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8",
               send_body: bool = True) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        pass  # no access log: see the module docstring


class MetricsServer:
    """/metrics, /healthz and /readyz on host:port, served from a background thread."""

    def __init__(self, host: str, port: int, registry: Source, ready: Ready,
                 max_connections: int = MAX_CONNECTIONS, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.host = host
        self._requested_port = port
        self.registry = registry
        self.ready = ready
        self.max_connections, self.idle_timeout = max_connections, idle_timeout
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started (the requested one before)."""
        return self._server.server_address[1] if self._server is not None else self._requested_port

    def start(self) -> None:
        """Bind and serve in a daemon thread. Raises OSError naming the address on failure."""
        if self._server is not None:
            return
        try:
            self._server = _Server((self.host, self._requested_port), self.registry, self.ready,
                                   self.max_connections, self.idle_timeout)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot serve metrics on {self.host}:{self._requested_port}: "
                          f"{exc.strerror or exc}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="alphawatch-http",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()

    def open_connections(self) -> int:
        """Connections open right now (at most max_connections)."""
        return self._server.open_connections() if self._server is not None else 0

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
