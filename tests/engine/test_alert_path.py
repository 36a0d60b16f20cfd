"""The alert path on the compose network: Prometheus in its container evaluates the bundle's
rules, Alertmanager in its container routes them, and the webhook sink (the demo's pager)
receives them, each reaching the next by its service name.

  * the Watchdog heartbeat arrives (receiver `heartbeat`);
  * every request of the api failing pages ApiErrorBudgetBurn (receiver `critical`);
  * the api container stopped pages ServiceDown (receiver `critical`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.engine.conftest import SINK, Compose, wait_for

API = "http://127.0.0.1:8000"


def _notifications(receiver: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{SINK}/notifications", params={"receiver": receiver}, timeout=5)
    resp.raise_for_status()
    return resp.json()


def _firing(receiver: str, alertname: str, **labels: str) -> list[dict[str, Any]]:
    found = []
    for note in _notifications(receiver):
        payload = note.get("payload", note)
        for alert in payload.get("alerts", []):
            got = alert.get("labels", {})
            if (alert.get("status") == "firing" and got.get("alertname") == alertname
                    and all(got.get(k) == v for k, v in labels.items())):
                found.append(alert)
    return found


@pytest.fixture(scope="module")
def api_errors(bundle: Compose) -> Iterator[None]:
    """Every api request answers 500 from now until the module ends."""
    httpx.post(f"{API}/admin/faults", json={"error_ratio": 1.0}, timeout=5).raise_for_status()
    yield
    httpx.delete(f"{API}/admin/faults", timeout=5)


def test_watchdog_heartbeat_reaches_the_sink(bundle: Compose) -> None:
    wait_for("Watchdog at the sink's heartbeat receiver",
             lambda: _firing("heartbeat", "Watchdog"), timeout=60)


def test_api_errors_page_the_burn_rate_alert(bundle: Compose, api_errors: None) -> None:
    # The 1h/5m pair: 5m error ratio over 14.4 x the 0.1 % budget once ~1 minute of failures
    # is recorded (docs/alerting.md), plus group_wait.
    wait_for("ApiErrorBudgetBurn (1h/5m) paged", lambda: _firing(
        "critical", "ApiErrorBudgetBurn", service="api", window="1h/5m"), timeout=240, interval=5)


def test_stopped_api_pages_service_down(bundle: Compose, api_errors: None) -> None:
    bundle.run("stop", "api")
    try:
        wait_for("ServiceDown for the api paged", lambda: _firing(
            "critical", "ServiceDown", job="apollonia-api"), timeout=240, interval=5)
    finally:
        bundle.run("start", "api")
        bundle.wait_healthy(["api"], timeout=120)
