"""Helpers for the scale proofs: the profile's endpoints, small API clients, a scrape target
the test owns, and VictoriaMetrics' deduplication rule (to compute what the store must hold).

Waits are derived from the loaded configuration (intervals, `for`, group_wait,
--cluster.peer-timeout) plus a margin, like tests/integration.
"""

from __future__ import annotations

import datetime as dt
import http.server
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import yaml

from native import common, scale
from tests.integration.alerting import (
    alert_rule,
    evaluation_interval,
    routes_for,
    scrape_interval,
    seconds,
    wait_for,
)

MARGIN = 25.0  # scheduling slack on top of every computed deadline (s)
HOST = common.HOST
SINK = scale.SINK_URL
STORE = f"http://{HOST}:{scale.STORE_PORT}"
VMAUTH = f"http://{HOST}:{scale.VMAUTH_PORT}"
VMAUTH_INTERNAL = f"http://{HOST}:{scale.VMAUTH_INTERNAL_PORT}"
AGENT = f"http://{HOST}:{scale.AGENT_PORT}"
AMS = {name: f"http://{HOST}:{port}" for name, (port, _) in scale.ALERTMANAGERS.items()}
PROMS = {name: f"http://{HOST}:{port}" for name, (_, port) in scale.PROMETHEUS.items()}
AM_CONFIG = scale.RUN / "alertmanager-1/alertmanager.yml"
# Query args for the store: bypass its response cache and its -search.latencyOffset (30s by
# default: the newest 30s are hidden from queries), so a test sees what was just written.
FRESH = {"nocache": "1", "latency_offset": "1ms"}
EVAL = evaluation_interval()
# Alertmanager's --cluster.peer-timeout default (cmd/alertmanager/main.go at v0.33.1): the
# replica at position p of the sorted member list waits p x this before notifying.
PEER_TIMEOUT = 15.0

__all__ = ["alert_rule", "scrape_interval", "seconds", "wait_for", "EVAL", "MARGIN"]


def peer_timeout() -> float:
    for comp in scale.components():
        m = re.search(r"--cluster\.peer-timeout=(\S+)", comp.command)
        if m:
            return seconds(m.group(1))
    return PEER_TIMEOUT


def group_wait(labels: dict[str, str]) -> float:
    (route,) = routes_for(labels, yaml.safe_load(AM_CONFIG.read_text()))
    return route.group_wait


class Client:
    """httpx with a memory of the last answers (for failure messages)."""

    def __init__(self) -> None:
        self.http = httpx.Client(timeout=15)
        self.seen: list[str] = []

    def get(self, url: str, **kwargs: Any) -> Any:
        resp = self.http.get(url, **kwargs)
        self.seen = [*self.seen[-5:], f"GET {resp.request.url} -> {resp.status_code} "
                                     f"{resp.text[:500]}"]
        resp.raise_for_status()
        return resp.json()

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        resp = self.http.post(url, **kwargs)
        self.seen = [*self.seen[-5:], f"POST {url} -> {resp.status_code} {resp.text[:300]}"]
        return resp

    def query(self, base: str, expr: str, **params: Any) -> list[dict]:
        data = self.get(f"{base}/api/v1/query", params={"query": expr, **params})
        assert data["status"] == "success", data
        return data["data"]["result"]

    def am_peers(self, am: str) -> list[str]:
        status = self.get(f"{am}/api/v2/status")
        return sorted(p["name"] for p in status["cluster"].get("peers") or [])

    def silences(self, am: str) -> dict[str, str]:
        """silence id -> state."""
        return {s["id"]: s["status"]["state"] for s in self.get(f"{am}/api/v2/silences")}

    def add_silence(self, am: str, **matchers: str) -> str:
        now = dt.datetime.now(dt.UTC)
        body = {
            "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True}
                         for k, v in matchers.items()],
            "startsAt": now.isoformat(), "endsAt": (now + dt.timedelta(hours=1)).isoformat(),
            "createdBy": "tests/scale", "comment": "scale proof",
        }
        resp = self.post(f"{am}/api/v2/silences", json=body)
        resp.raise_for_status()
        return resp.json()["silenceID"]

    def notifications(self, receiver: str, **labels: str) -> list[dict]:
        """Webhook payloads at `receiver` in which every alert carries `labels`."""
        out = []
        for note in self.get(f"{SINK}/notifications", params={"receiver": receiver}):
            alerts = note["payload"].get("alerts") or []
            if alerts and all(all(a["labels"].get(k) == v for k, v in labels.items())
                              for a in alerts):
                out.append({**note["payload"], "received_at": note["received_at"]})
        return out

    def prom_alerts(self, prom: str, name: str, **labels: str) -> list[dict]:
        data = self.get(f"{prom}/api/v1/alerts")["data"]["alerts"]
        return [a for a in data if a["labels"].get("alertname") == name
                and all(a["labels"].get(k) == v for k, v in labels.items())]

    def metric(self, base: str, name: str, **labels: str) -> float | None:
        """A sample from a process's own /metrics page (no Prometheus in between)."""
        text = self.http.get(f"{base}/metrics").text
        for line in text.splitlines():
            if not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            if head.split("{")[0] == name and all(f'{k}="{v}"' in head for k, v in labels.items()):
                return float(value)
        return None

    def close(self) -> None:
        self.http.close()


def synthetic_alert(**labels: str) -> dict:
    """An alert as Prometheus posts it (labels already without `replica`), firing 15 min."""
    now = dt.datetime.now(dt.UTC)
    return {"labels": labels, "annotations": {"summary": "scale proof"},
            "startsAt": now.isoformat(),
            "endsAt": (now + dt.timedelta(minutes=15)).isoformat(),
            "generatorURL": "http://127.0.0.1/tests/scale"}


class MetricsTarget:
    """A scrape target the test owns: /metrics with `series` gauges, until stop()."""

    def __init__(self, series: int = 1, name: str = "scale_proof_series") -> None:
        body = "".join(f'{name}{{i="{i}"}} {i}\n' for i in range(series)).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.address = f"{HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server.socket.fileno() != -1:
            self.server.shutdown()
            self.server.server_close()


def add_targets(inventory: Path, job_file: str, address: str, **labels: str) -> Callable[[], None]:
    """Add a target group to one inventory file of a running Prometheus (file_sd rereads it);
    returns the function that restores the file as native/scale.py linked it."""
    path = inventory / job_file
    original = path.resolve() if path.is_symlink() else None
    groups = (yaml.safe_load(path.read_text()) or []) if path.exists() else []
    groups = [*groups, {"targets": [address], "labels": labels}]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(groups))
    tmp.replace(path)

    def restore() -> None:
        if original is not None:
            common.link(path, original)
        else:
            path.unlink(missing_ok=True)

    return restore


# --- VictoriaMetrics' deduplication, to compute what the store must hold ---------------------


def dedup(samples: Iterable[tuple[int, float]], interval_ms: int) -> list[tuple[int, float]]:
    """lib/storage/dedup.go (DeduplicateSamples) at v1.145.0: per discrete interval
    ((k-1)*D, k*D] keep the sample with the biggest timestamp; on equal timestamps the biggest
    value."""
    best: dict[int, tuple[int, float]] = {}
    for ts, value in samples:
        bucket = -(-ts // interval_ms)  # ceil: ts in ((k-1)D, kD] -> k
        if bucket not in best or (ts, value) > best[bucket]:
            best[bucket] = (ts, value)
    return sorted(best.values())


def raw_samples(client: Client, base: str, selector: str, end: float, window: float,
                **params: Any) -> dict[frozenset, list[tuple[int, float]]]:
    """Raw samples of every series matching `selector` in (end - window, end], by label set
    (without __name__ removed). Range-vector instant query, which Prometheus and
    VictoriaMetrics both answer with the stored samples."""
    result = client.query(base, f"{selector}[{int(window)}s]", time=f"{end:.3f}", **params)
    out = {}
    for series in result:
        key = frozenset(series["metric"].items())
        out[key] = [(round(float(t) * 1000), float(v)) for t, v in series["values"]
                    if not math.isnan(float(v))]
    return out


def wait_until(t: float) -> None:
    delay = t - time.time()
    if delay > 0:
        time.sleep(delay)
