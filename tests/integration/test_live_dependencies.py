"""Database, cache and queue alerts proven live on the native run's real servers.

PostgreSQL, Redis and RabbitMQ are the real Debian 12 builds (`make bootstrap`), watched by
the real postgres-exporter, redis_exporter and RabbitMQ's own plugin, with the bundle's rules,
`for` durations and routes. The incidents (tests/integration/dependencies.py) start together
with test_live_alerting.py's scenario and run meanwhile; these tests check what each one saw,
in the order it is due:

  the api uses the real servers and reports them healthy; uploads reach the analyzer
  through RabbitMQ (before anything is broken);
  Redis stopped             -> RedisDown at the critical receiver
  memory + disk alarm        -> RabbitMQResourceAlarm (both) at the critical receiver
  slow queries (pg_sleep)    -> SlowDatabaseQueries pending, the exporter sees them too
  82 connections held        -> HighDatabaseConnections from the exporter's series
  analyzer consumer paused   -> the backlog in rabbitmq_*, RabbitMQQueueNoConsumers,
                                RabbitMQQueueBacklogGrowing and MLProcessingBacklog pending
  RabbitMQ stopped           -> RabbitMQNodeDown at the critical receiver
  PostgreSQL stopped         -> PostgresDown at the critical receiver; its symptoms are
                                inhibited in Alertmanager, another environment's are not
Alerts whose `for` is longer than this suite may wait (SlowDatabaseQueries 5m,
MLProcessingBacklog 10m and the two queue alerts) are proven firing and delivered by
`make test-live-full` (test_live_full.py).
"""

from __future__ import annotations

import pytest

from native import stack as native
from tests.integration.alerting import amtool_receivers, webhook_receivers
from tests.integration.dependencies import Outcome

pytestmark = [pytest.mark.native, pytest.mark.timeout(480)]

AM_CONFIG = native.RUN / "alertmanager/alertmanager.yml"


def _check(probe, out: Outcome, *steps: str) -> Outcome:  # noqa: ANN001 - Probe
    for step in steps:
        out.wait_for(step)
    probe.note(f"incident {out.name}", out.report())
    missing = [s for s in steps if s not in out.events]
    assert not missing, f"{out.name}: {missing} did not happen: {out.errors}"
    return out


def _routed_as_configured(out: Outcome, name: str) -> None:
    labels = out.facts[f"{name} labels"]
    receivers = amtool_receivers(AM_CONFIG, labels)
    got = set(out.facts[f"{name} receivers"])
    assert got <= set(receivers), f"{name} reached {got}, the routes say {receivers}"
    assert set(receivers) & webhook_receivers() <= got, (got, receivers)


def test_api_uses_the_real_servers_and_reports_them_healthy(incidents) -> None:  # noqa: ANN001
    health = incidents.health
    for name in ("database", "redis", "message_queue"):
        check = health["checks"][name]
        assert check["status"] == "healthy", check
        assert "configured" not in check.get("details", {}), check  # not a stand-in
    assert health["status"] == "healthy", health["summary"]


def test_uploads_reach_the_analyzer_through_rabbitmq(incidents) -> None:  # noqa: ANN001
    flow = incidents.flow
    queue = flow["analyzer health"]["checks"]["message_queue"]
    assert queue["status"] == "healthy" and queue["details"]["consuming"], queue
    assert flow["consumers"] == 1, flow  # RabbitMQ's own answer (passive queue.declare)
    # the load generator's uploads (2/s) were published and delivered to the consumer
    assert flow["published in 2m"] > 20, flow
    assert flow["delivered to consumers (manual ack) in 2m"] > 20, flow


def test_redis_down_reaches_its_receiver(incidents, probe) -> None:  # noqa: ANN001
    probe.watch("redis", "redis-exporter", "prometheus", "alertmanager")
    out = _check(probe, incidents.outcomes["redis"], "RedisDown notified")
    assert out.facts["redis_up"] == 0, out.facts
    _routed_as_configured(out, "RedisDown")
    assert out.facts["RedisDown labels"]["service"] == "redis"


def test_rabbitmq_memory_and_disk_alarms_reach_their_receiver(incidents, probe) -> None:  # noqa: ANN001
    probe.watch("rabbitmq", "prometheus", "alertmanager")
    out = _check(probe, incidents.outcomes["rabbitmq"], "RabbitMQResourceAlarm notified",
                 "alarms cleared")
    _routed_as_configured(out, "RabbitMQResourceAlarm")
    assert out.facts["RabbitMQResourceAlarm memory"]["alarm"] == "memory"
    assert out.facts["RabbitMQResourceAlarm disk"]["alarm"] == "disk"


def test_slow_queries_make_slow_database_queries_pending(incidents, probe) -> None:  # noqa: ANN001
    probe.watch("api", "postgres", "prometheus")
    out = incidents.outcomes["slow"]
    out.wait_for("done")
    probe.note("incident slow", out.report())
    alert = out.facts.get("SlowDatabaseQueries alert")
    assert alert, f"SlowDatabaseQueries never went pending: {out.errors}"
    assert alert["labels"]["env"] == "native" and alert["labels"]["service"] == "api", alert
    assert out.facts["p95 (s)"] > 0.5, out.facts
    # PostgreSQL itself ran them: the exporter saw sessions active in pg_sleep, for a while
    assert out.facts["sessions in pg_sleep (exporter)"] >= 1, out.facts
    assert out.facts["longest slow transaction (exporter, s)"] > 0.05, out.facts


def test_real_connections_fire_high_database_connections(incidents, probe) -> None:  # noqa: ANN001
    probe.watch("postgres", "postgres-exporter", "prometheus", "alertmanager")
    out = _check(probe, incidents.outcomes["postgres"], "HighDatabaseConnections notified")
    connections = out.facts["connections (exporter)"]
    assert connections > 0.8 * out.facts["max_connections (exporter)"], out.facts
    _routed_as_configured(out, "HighDatabaseConnections")
    assert out.facts["HighDatabaseConnections labels"]["service"] == "postgres"


def test_stalled_analyzer_shows_the_backlog_in_rabbitmq(incidents, probe) -> None:  # noqa: ANN001
    probe.watch("rabbitmq", "analyzer", "api", "prometheus")
    out = _check(probe, incidents.outcomes["rabbitmq"], "RabbitMQQueueNoConsumers pending",
                 "RabbitMQQueueBacklogGrowing pending", "MLProcessingBacklog pending")
    assert out.facts["ready (per queue)"] >= 150 and out.facts["consumers (per queue)"] == 0
    assert out.facts["ready (node total)"] >= 150, out.facts
    assert out.facts["queue_messages_total (api)"] > 100, out.facts
    for name in ("RabbitMQQueueNoConsumers", "RabbitMQQueueBacklogGrowing"):
        labels = out.facts[f"{name} alert"]["labels"]
        assert labels["queue"] == "analyzer_queue" and labels["job"] == "rabbitmq-queues"


def test_rabbitmq_node_down_reaches_its_receiver(incidents, probe) -> None:  # noqa: ANN001
    probe.watch("rabbitmq", "prometheus", "alertmanager")
    out = _check(probe, incidents.outcomes["rabbitmq"], "RabbitMQNodeDown notified")
    _routed_as_configured(out, "RabbitMQNodeDown")
    # The api's backlog gauge does not go stale-but-firing while the broker is away.
    assert not [a for a in out.facts["MLProcessingBacklog while RabbitMQ is down"]
                if a["state"] == "firing"], out.facts


def test_postgres_down_pages_and_inhibits_its_symptoms(incidents, probe) -> None:  # noqa: ANN001
    probe.watch("postgres", "postgres-exporter", "prometheus", "alertmanager")
    out = _check(probe, incidents.outcomes["postgres"], "PostgresDown notified",
                 "HighDatabaseConnections notified", "done")
    assert not out.errors, out.errors
    _routed_as_configured(out, "PostgresDown")
    symptoms = out.facts["symptoms in Alertmanager"]
    assert {s["labels"]["alertname"] for s in symptoms} == {
        "HighDatabaseConnections", "SlowDatabaseQueries"}, symptoms
    for s in symptoms:
        assert s["status"]["state"] == "suppressed", s
        assert set(s["status"]["inhibitedBy"]) & set(out.facts["PostgresDown fingerprints"]), s
    # ... and none of them was notified. The same alert from another environment was left
    # alone while PostgresDown was active, and was notified.
    assert out.facts["symptoms notified"] == [], out.facts["symptoms notified"]
    control = out.facts["control in Alertmanager"]
    assert control and control[0]["status"]["state"] == "active", control
    assert not control[0]["status"]["inhibitedBy"], control
    assert "control notified" in out.events, out.events
