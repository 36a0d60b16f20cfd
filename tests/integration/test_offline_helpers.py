"""Fast checks of the native-run pieces that need no running stack: the metric catalog
extraction, the webhook sink, the generated supervisor config and the secrets rewrite."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from native import common
from native import stack as native
from tests.integration.alerting import routes_for, seconds
from tests.metrics_catalog import (
    Query,
    QueryError,
    dangling,
    dashboard_queries,
    markdown_queries,
    metric_names,
)


def test_metric_names_come_from_the_parser_not_regexes() -> None:
    expr = (
        'sum by (service) (rate(http_requests_total{service="$service", status_code=~"5.."}'
        "[$__rate_interval])) / on (service) group_left {__name__=\"up\", job=\"x\"}"
        " + histogram_quantile(0.9, sum by (le) (rate(a_bucket[${__range}])))"
        ' + label_replace(vector(1), "dst", "not_a_metric", "", "")'
    )
    assert metric_names(expr) == {"http_requests_total", "up", "a_bucket"}


def test_unparsable_query_is_reported_not_ignored() -> None:
    with pytest.raises(QueryError):
        metric_names("sum(rate(x[5m])")
    problems = dangling([Query("dash: panel", "sum(")], present=set())
    assert "<parse error>" in problems


def test_dangling_respects_present_and_ignored_prefixes() -> None:
    queries = [Query("rules: a", "rate(foo_total[5m]) + pg_up"), Query("dash: b", "bar")]
    problems = dangling(queries, present={"foo_total"}, ignore_prefixes=("pg_",))
    assert problems == {"bar": ["dash: b"]}


def test_dashboard_and_markdown_extraction(tmp_path: Path) -> None:
    dash = {
        "panels": [
            {"title": "row", "type": "row", "panels": [
                {"title": "inner", "targets": [{"expr": "rate(inner_total[5m])"}]}]},
            {"title": "hidden", "targets": [{"expr": "hidden_metric", "hide": True}]},
        ],
        "templating": {"list": [
            {"type": "query", "name": "svc",
             "query": {"query": "label_values(up{job=~\".+\"}, service)"}},
            {"type": "query", "name": "env", "query": "label_values(env)"},
        ]},
    }
    path = tmp_path / "d.json"
    path.write_text(json.dumps(dash))
    exprs = {q.expr for q in dashboard_queries([path])}
    assert exprs == {"rate(inner_total[5m])", 'up{job=~".+"}'}
    md = tmp_path / "r.md"
    md.write_text(
        "text\n```promql\n# comment\nsum(rate(x_total[5m]))\n\nup == 0\n```\n```\nno\n```\n"
    )
    assert [q.expr for q in markdown_queries([md])] == ["sum(rate(x_total[5m]))", "up == 0"]


def test_route_timings_inherit_like_alertmanager() -> None:
    cfg = {
        "route": {"receiver": "default", "group_by": ["alertname"], "group_wait": "30s",
                  "routes": [
                      {"matchers": ['alertname="Watchdog"'], "receiver": "hb", "group_wait": "0s"},
                      {"matchers": ['severity=~"crit.*"'], "receiver": "page",
                       "routes": [{"matchers": ['env="staging"'], "receiver": "page-stg"}]},
                  ]},
    }
    assert routes_for({"alertname": "Watchdog"}, cfg)[0].group_wait == 0
    page = routes_for({"alertname": "X", "severity": "critical", "env": "staging"}, cfg)[0]
    assert (page.receiver, page.group_wait, page.group_by) == ("page-stg", 30, ("alertname",))
    assert routes_for({"alertname": "Y"}, cfg)[0].receiver == "default"
    assert seconds("1m30s") == 90


def test_generated_supervisor_config_binds_loopback_and_logs_per_process() -> None:
    conf = native.supervisord_conf(native.components())
    for comp in native.components():
        assert f"[program:{comp.name}]" in conf
        assert f"stdout_logfile={native.LOGS}/{comp.name}.log" in conf
        if comp.port:
            # on the command line, or (RabbitMQ) in the environment it reads it from
            settings = [comp.command, *(v for _, v in comp.environment)]
            assert any("127.0.0.1" in s for s in settings), comp
            assert not any("0.0.0.0" in s for s in settings), comp


def test_secrets_rewritten_to_the_sink(tmp_path: Path) -> None:
    (tmp_path / "critical_webhook_url").write_text("https://pager.example/hooks/critical\n")
    (tmp_path / "slack_warning_url").write_text("https://hooks.slack.example/T0/B0/x\n")
    (tmp_path / "heartbeat_url").write_text("not a url\n")
    (tmp_path / "smtp_password").write_text("secret\n")
    common.write_sink_urls(tmp_path, "http://127.0.0.1:5001")
    assert (tmp_path / "critical_webhook_url").read_text() == "http://127.0.0.1:5001/critical\n"
    assert (tmp_path / "slack_warning_url").read_text() == "http://127.0.0.1:5001/x\n"
    assert (tmp_path / "heartbeat_url").read_text() == "http://127.0.0.1:5001/heartbeat\n"
    assert (tmp_path / "smtp_password").read_text() == "secret\n"  # not a URL: untouched


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_webhook_sink_records_lists_resets_and_counts() -> None:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "apollonia.webhook_sink", "--port", str(port)],
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(50):
            try:
                httpx.get(f"{base}/health", timeout=0.5)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        payload = {"receiver": "critical", "status": "firing",
                   "alerts": [{"status": "firing", "labels": {"alertname": "A"}}]}
        assert httpx.post(f"{base}/critical", json=payload).status_code == 200
        assert httpx.post(f"{base}/warning", content=b"not json").status_code == 400
        got = httpx.get(f"{base}/notifications").json()
        assert [(n["receiver"], n["payload"]) for n in got] == [("critical", payload)]
        assert httpx.get(f"{base}/notifications", params={"receiver": "warning"}).json() == []
        metrics = httpx.get(f"{base}/metrics").text
        labels = '{receiver="critical",status="firing"} 1.0'
        assert f"webhook_sink_notifications_total{labels}" in metrics
        assert f"webhook_sink_alerts_total{labels}" in metrics
        assert httpx.delete(f"{base}/notifications").status_code == 200
        assert httpx.get(f"{base}/notifications").json() == []
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_missing_server_falls_back_to_the_stand_in_with_a_banner(monkeypatch) -> None:  # noqa: ANN001
    """Without RabbitMQ (say), the native run starts the rest, the workload simulates the queue
    (no RABBITMQ_URL_FILE), the banner says so in one line; with CI=true `up` refuses."""
    from native import deps

    monkeypatch.setattr(deps, "available",
                        lambda: {"postgres": True, "redis": True, "rabbitmq": False})
    names = {c.name for c in native.components()}
    assert {"postgres", "postgres-exporter", "redis", "redis-exporter"} <= names
    assert not names & {"rabbitmq", "epmd"}
    api = native.component("api")
    assert {k for k, _ in api.environment} == {"DATABASE_URL_FILE", "REDIS_URL_FILE"}
    assert native.component("analyzer").environment == ()
    stand_ins = [line for line in native.banner().splitlines() if "STAND-INS" in line]
    assert len(stand_ins) == 1 and "RabbitMQ" in stand_ins[0], stand_ins
    monkeypatch.setenv("CI", "true")
    with pytest.raises(native.NativeError, match="CI=true and not installed: RabbitMQ"):
        native.up()


def test_every_dependency_runs_natively_when_bootstrapped(monkeypatch) -> None:  # noqa: ANN001
    from native import deps

    monkeypatch.setattr(deps, "available",
                        lambda: {"postgres": True, "redis": True, "rabbitmq": True})
    assert "STAND-INS" not in native.banner()
    analyzer = dict(native.component("analyzer").environment)
    assert analyzer == {"RABBITMQ_URL_FILE": str(deps.DSN_FILES["RABBITMQ_URL"])}
    postgres = native.component("postgres")
    assert postgres.stopsignal == "INT"  # PostgreSQL's fast shutdown
    conf = native.supervisord_conf(native.components())
    assert "[program:rabbitmq]" in conf and "ERL_EPMD_PORT=\"4370\"" in conf


def test_resend_delay_is_below_the_evaluation_interval_in_compose_and_native() -> None:
    """Both runs re-send firing alerts at every evaluation, so a first send lost before
    service discovery found Alertmanager is repeated one evaluation later: the flag governs
    `needsSending` and ValidUntil in rules/alerting.go (Prometheus v3.5.3 and v3.13.0)."""
    from tests.integration.alerting import evaluation_interval, prometheus_flag, resend_delay

    compose = yaml.safe_load((native.ROOT / "compose.yaml").read_text())
    command = " ".join(compose["services"]["prometheus"]["command"])
    flag = "--rules.alert.resend-delay"
    assert prometheus_flag(flag, command) == prometheus_flag(flag), "compose and native differ"
    assert resend_delay() < evaluation_interval()
    assert prometheus_flag(flag, "prometheus --config.file=x") is None
