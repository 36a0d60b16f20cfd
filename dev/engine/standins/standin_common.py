"""Shared helpers of the stand-ins: small Python servers that answer, at a real program's
service name and ports, the protocols the rest of the bundle sends there (see
dev/engine/facsimile.py: images whose program has no Debian package run one of these).

Standard library only (each stand-in runs with Debian bookworm's python3 and at most
python3-msgpack, python3-grpcio, python3-yaml). In the image they sit next to each other in
/standin/ and import this module by plain ``import standin_common``.

Conventions every stand-in follows:

* It listens where the real program listens: ``STANDIN_BIND`` (default 0.0.0.0) and the real
  port, which ``STANDIN_PORT_<NAME>`` overrides (offline tests: 127.0.0.1 and free ports).
* ``GET /standin/info`` on every HTTP port says which stand-in answers and since when; a
  stand-in's own debug endpoints live under ``/standin/`` too. Nothing real lives there.
* One line per request on stdout (Docker keeps it as the container's log), never a header
  or a body (they carry passwords).
* SIGTERM or SIGINT: stop accepting, run the stand-in's shutdown hooks (save state), exit 0.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

STARTED = time.time()


def log(name: str, message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime())}Z {name}: {message}", flush=True)


def bind_host() -> str:
    return os.environ.get("STANDIN_BIND", "0.0.0.0")


def port(name: str, default: int) -> int:
    """The real port, or STANDIN_PORT_<NAME> (upper case, - as _) when set."""
    value = os.environ.get(f"STANDIN_PORT_{name.upper().replace('-', '_')}")
    return int(value) if value else default


# --- HTTP ------------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    target: str  # path and query as sent
    headers: dict[str, str]  # lower-case names
    body: bytes
    client: str
    path: str = ""
    query: dict[str, list[str]] = field(default_factory=dict)
    parts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        url = urlsplit(self.target)
        self.path = url.path or "/"
        self.query = parse_qs(url.query, keep_blank_values=True)
        self.parts = [unquote(p) for p in self.path.split("/") if p]

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> object:
        return json.loads(self.body) if self.body.strip() else None

    def basic_auth(self) -> tuple[str, str] | None:
        value = self.headers.get("authorization", "")
        if not value.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(value[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user, password


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False  # drop the connection after answering
    reset: bool = False  # send nothing, reset the connection (an answer lost on the way)


def json_response(status: int, payload: object, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(payload).encode(), "application/json", dict(headers or {}))


def text_response(status: int, text: str, content_type: str = "text/plain; charset=utf-8",
                  headers: dict[str, str] | None = None) -> Response:
    return Response(status, text.encode(), content_type, dict(headers or {}))


Handler = Callable[[Request], Response]


def _handler_class(name: str, handle: Handler) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real servers

        def log_message(self, *args: object) -> None:  # our own line below
            pass

        def _serve(self) -> None:
            started = time.monotonic()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(self.command, self.path,
                              {k.lower(): v for k, v in self.headers.items()}, body,
                              self.client_address[0])
            if request.path == "/standin/info":
                response = json_response(200, {"standin": name, "pid": os.getpid(),
                                               "started": STARTED})
            else:
                try:
                    response = handle(request)
                except Exception as exc:  # a stand-in bug: answer 500, keep serving
                    log(name, f"error answering {self.command} {request.path}: {exc!r}")
                    response = json_response(500, {"error": f"stand-in error: {exc!r}"})
            if response.reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
                print(f'{name} {self.client_address[0]} "{self.command} {request.path}" reset',
                      flush=True)
                return
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(response.body)))
            if response.close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
            took = (time.monotonic() - started) * 1000
            print(f'{name} {self.client_address[0]} "{self.command} {request.path}" '
                  f"{response.status} {len(response.body)} {took:.0f}ms", flush=True)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve  # noqa: N815

    return _Handler


def http_server(name: str, handle: Handler, port_: int, host: str | None = None
                ) -> ThreadingHTTPServer:
    """Start a threaded HTTP server in the background; returns it (server_address has the port)."""
    server = ThreadingHTTPServer((host or bind_host(), port_), _handler_class(name, handle))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.2,), daemon=True,
                     name=f"{name}-{port_}").start()
    log(name, f"listening on http://{server.server_address[0]}:{server.server_address[1]}")
    return server


def run_until_signal(name: str, servers: Iterable[object],
                     on_stop: Iterable[Callable[[], None]] = ()) -> int:
    """Block until SIGTERM/SIGINT, then stop the servers and run the shutdown hooks."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log(name, "signal received: stopping")
    for server in servers:
        for method in ("shutdown", "server_close"):
            getattr(server, method, lambda: None)()
    for hook in on_stop:
        hook()
    log(name, "stopped")
    return 0


# --- Prometheus text format ------------------------------------------------------------------

Sample = tuple[dict[str, str], float]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def exposition(families: Iterable[tuple[str, str, str, Iterable[Sample]]]) -> str:
    """Prometheus text format 0.0.4 from (name, type, help, samples) families."""
    lines: list[str] = []
    for name, kind, help_, samples in families:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
            lines.append(f"{name}{{{inner}}} {_number(value)}" if inner
                         else f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def fail(name: str, message: str) -> None:
    """Exit 1 with a message, as the real program does on a bad start-up."""
    log(name, f"error: {message}")
    sys.exit(1)
