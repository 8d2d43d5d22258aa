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
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

log = logging.getLogger("alphawatch.http")

Ready = Callable[[], tuple[bool, str]]
_INDEX = (b"alphawatch\n\n/metrics  Prometheus metrics\n/healthz  liveness\n"
          b"/readyz   readiness (observer running, ledger writable)\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], registry: CollectorRegistry, ready: Ready) -> None:
        if ":" in address[0]:  # an IPv6 literal such as "::"
            self.address_family = socket.AF_INET6
        self.registry = registry
        self.ready = ready
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "alphawatch"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._route(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._route(send_body=False)

    def _route(self, send_body: bool) -> None:
        route = urlsplit(self.path).path.rstrip("/") or "/"
        if route == "/metrics":
            try:
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                body = encoder(self.server.registry)
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

    def __init__(self, host: str, port: int, registry: CollectorRegistry, ready: Ready) -> None:
        self.host = host
        self._requested_port = port
        self.registry = registry
        self.ready = ready
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
            self._server = _Server((self.host, self._requested_port), self.registry, self.ready)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot serve metrics on {self.host}:{self._requested_port}: "
                          f"{exc.strerror or exc}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="alphawatch-http",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()

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
