"""Notification recorder: the webhook receiver Alertmanager posts to in the demo and the tests.

    POST   /<receiver>     store the Alertmanager webhook payload under that receiver name
    GET    /notifications  everything received so far, oldest first, as JSON
                           (optional ?receiver=<name> filter)
    DELETE /notifications  forget everything (tests call it between cases)
    GET    /health         liveness
    GET    /metrics        Prometheus metrics about what was received

Run: python -m apollonia.webhook_sink --port 5001 [--host 127.0.0.1]

It keeps everything in memory (bounded, oldest dropped first): it is a test double for a
pager, not a store. Standard library HTTP server, so it has no dependency beyond
prometheus-client.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)

# Enough for hours of demo traffic; the tests reset the sink long before that.
MAX_NOTIFICATIONS = 10_000
MAX_BODY_BYTES = 1_000_000


class NotificationStore:
    """Thread-safe, bounded list of received notifications."""

    def __init__(self, limit: int = MAX_NOTIFICATIONS) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=limit)
        self._lock = threading.Lock()

    def add(self, receiver: str, payload: Any) -> dict[str, Any]:
        entry = {"receiver": receiver, "received_at": time.time(), "payload": payload}
        with self._lock:
            self._items.append(entry)
        return entry

    def list(self, receiver: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._items)
        if receiver is not None:
            items = [item for item in items if item["receiver"] == receiver]
        return items

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def build_metrics() -> tuple[CollectorRegistry, Counter, Counter, Gauge]:
    disable_created_metrics()  # no *_created series: nothing reads them
    registry = CollectorRegistry()
    notifications = Counter(
        "webhook_sink_notifications_total",
        "Webhook notifications received, by receiver path and notification status.",
        ["receiver", "status"],
        registry=registry,
    )
    alerts = Counter(
        "webhook_sink_alerts_total",
        "Alerts carried by the received notifications, by receiver and alert status.",
        ["receiver", "status"],
        registry=registry,
    )
    last = Gauge(
        "webhook_sink_last_notification_timestamp_seconds",
        "Unix time of the last notification received, by receiver.",
        ["receiver"],
        registry=registry,
    )
    return registry, notifications, alerts, last


class SinkServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, SinkHandler)
        self.store = NotificationStore()
        self.registry, self.m_notifications, self.m_alerts, self.m_last = build_metrics()


class SinkHandler(BaseHTTPRequestHandler):
    server: SinkServer
    server_version = "apollonia-webhook-sink"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode())

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        url = urlsplit(self.path)
        if url.path == "/notifications":
            receiver = parse_qs(url.query).get("receiver", [None])[0]
            self._json(HTTPStatus.OK, self.server.store.list(receiver))
        elif url.path in ("/health", "/-/healthy"):
            self._json(HTTPStatus.OK, {"status": "ok"})
        elif url.path == "/metrics":
            self._send(HTTPStatus.OK, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such path: {url.path}"})

    def do_DELETE(self) -> None:  # noqa: N802
        if urlsplit(self.path).path == "/notifications":
            self.server.store.clear()
            self._json(HTTPStatus.OK, {"status": "cleared"})
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "DELETE only on /notifications"})

    def do_POST(self) -> None:  # noqa: N802
        receiver = urlsplit(self.path).path.strip("/")
        if not receiver or receiver in ("notifications", "metrics", "health"):
            self._json(HTTPStatus.NOT_FOUND, {"error": "POST to /<receiver-name>"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "payload too large"})
            return
        try:
            payload = json.loads(self.rfile.read(length) or b"null")
        except json.JSONDecodeError as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"body is not JSON: {exc}"})
            return
        self.server.store.add(receiver, payload)
        status = payload.get("status", "unknown") if isinstance(payload, dict) else "unknown"
        self.server.m_notifications.labels(receiver, status).inc()
        self.server.m_last.labels(receiver).set_to_current_time()
        alerts = payload.get("alerts", []) if isinstance(payload, dict) else []
        for alert in alerts if isinstance(alerts, list) else []:
            alert_status = alert.get("status", "unknown") if isinstance(alert, dict) else "unknown"
            self.server.m_alerts.labels(receiver, alert_status).inc()
        self._json(HTTPStatus.OK, {"status": "recorded"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apollonia.webhook_sink", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5001, help="port (default 5001)")
    args = parser.parse_args(argv)
    try:
        server = SinkServer((args.host, args.port))
    except OSError as exc:
        print(f"webhook_sink: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"webhook_sink: listening on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
