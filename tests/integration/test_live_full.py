"""The database and queue alerts whose `for` is longer than `make test` waits, fired and
delivered on the native run with their real `for`: `make test-live-full` (about 12 minutes).

`make test` proves these go pending from the real series (test_live_dependencies.py); here
the same conditions are held until the alerts fire and reach their receivers:

  db_latency_seconds=0.8 on the api (pg_sleep in every query's session)
                                        -> SlowDatabaseQueries (for 5m) at the warning receiver
  the analyzer's consumer paused, 150 jobs published (the load generator adds more)
                                        -> RabbitMQQueueNoConsumers (5m) at the warning receiver
                                        -> MLProcessingBacklog (10m) at the warning receiver
                                        -> RabbitMQQueueBacklogGrowing (10m) fires in Prometheus
                                           and is held back by RabbitMQQueueNoConsumers (the
                                           inhibition: the missing consumer is the cause)
Collected only with LIVE_FULL=1 (tests/integration/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from native import deps
from native import stack as native
from tests.integration.alerting import alert_rule, amtool_receivers, webhook_receivers
from tests.integration.dependencies import (
    ANALYZER,
    API,
    BACKLOG,
    SLOW_QUERY_S,
    Apis,
    deadline_for,
    publish_jobs,
)

pytestmark = [pytest.mark.native, pytest.mark.timeout(1200)]

AM_CONFIG = native.RUN / "alertmanager/alertmanager.yml"


@pytest.fixture(scope="module")
def held(stack, fresh_alertmanager: float) -> Iterator[tuple[float, str]]:  # noqa: ANN001
    if deps.missing():
        pytest.fail(f"the native run simulates {', '.join(deps.missing())}: make bootstrap",
                    pytrace=False)
    apis = Apis()
    run = uuid.uuid4().hex[:8]
    try:
        apis.faults(API, {"db_latency_seconds": SLOW_QUERY_S})
        apis.faults(ANALYZER, {"consumer_paused": True})
        time.sleep(2)  # the consumer checks the knob every 0.5 s
        asyncio.run(publish_jobs(deps.DSN_FILES["RABBITMQ_URL"].read_text().strip(), BACKLOG, run))
        yield time.time(), run
    finally:
        for url, knob in ((API, "db_latency_seconds"), (ANALYZER, "consumer_paused")):
            with contextlib.suppress(httpx.HTTPError):
                apis.faults(url, {knob: 0 if knob == "db_latency_seconds" else False})


def _delivered(apis: Apis, since: float, until: float, name: str, **labels: str) -> list:
    while time.time() < until:
        got = [n for n in apis.sink(since, alertname=name, **labels) if n[1] == "firing"]
        if got:
            return got
        time.sleep(5)
    pytest.fail(f"{name} {labels} did not reach the sink by its deadline")


@pytest.mark.parametrize(("name", "job", "labels"), [
    ("SlowDatabaseQueries", "apollonia-api", {"service": "api"}),
    ("RabbitMQQueueNoConsumers", "rabbitmq-queues", {"queue": "analyzer_queue"}),
    # The api reads the depth every 5 s: one more scrape interval of slack.
    ("MLProcessingBacklog", "apollonia-api", {"queue_name": "analyzer_queue"}),
])
def test_long_alert_fires_and_reaches_its_receiver(held, name, job, labels) -> None:  # noqa: ANN001
    started, _ = held
    apis = Apis()
    rule = alert_rule(name)
    # SlowDatabaseQueries: the 5m p95 needs about a minute of slow queries before it crosses
    fill = 60 if name == "SlowDatabaseQueries" else 10
    until = started + fill + deadline_for(rule, job, {"env": "native", **labels})
    got = _delivered(apis, started, until, name, env="native", **labels)
    receivers = amtool_receivers(AM_CONFIG, got[0][2]["labels"])
    assert {r for r, _, _ in got} <= set(receivers), (got, receivers)
    assert set(receivers) & webhook_receivers() <= {r for r, _, _ in got}
    firing = [a for a in apis.prom_alerts(name, env="native") if a["state"] == "firing"]
    assert firing, f"{name} not firing in Prometheus"


def test_growing_backlog_fires_but_is_inhibited_by_the_missing_consumer(held) -> None:  # noqa: ANN001
    started, _ = held
    apis = Apis()
    rule = alert_rule("RabbitMQQueueBacklogGrowing")
    until = started + deadline_for(rule, "rabbitmq-queues", {"env": "native"})
    while time.time() < until:
        firing = [a for a in apis.prom_alerts(rule.name, env="native", queue="analyzer_queue")
                  if a["state"] == "firing"]
        if firing:
            break
        time.sleep(5)
    else:
        pytest.fail(f"{rule.name} did not fire in Prometheus")
    time.sleep(5)  # Prometheus sends it to Alertmanager on the evaluation that fired it
    state = apis.am_alerts(alertname=rule.name, env="native")
    assert state and state[0]["status"]["state"] == "suppressed", state
    cause = apis.am_alerts(alertname="RabbitMQQueueNoConsumers", env="native")
    assert set(state[0]["status"]["inhibitedBy"]) == {a["fingerprint"] for a in cause}, state
    assert not apis.sink(started, alertname=rule.name), "the inhibited alert was notified"
