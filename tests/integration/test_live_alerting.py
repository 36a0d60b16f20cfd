"""The metrics and alerting path, end to end, on the live native stack.

Real Prometheus, Alertmanager, exporters, workload and webhook sink (python -m native up); the
rules and routes are the bundle's own files with their real `for`, intervals and group_wait.

To stay within ~5 minutes the slow waits run concurrently. Tests run in file order:

  1. quick checks on the healthy stack: targets up, Prometheus restart keeps samples;
  2. the `scenario` fixture then starts every slow path at once:
       - stop the api                         -> ServiceDown (for 1m) at the critical receiver
       - 100% errors on the analyzer + traffic -> HighErrorRate (critical, for 2m)
       - synthetic alerts + a silence          -> routing, grouping, inhibition, silence
       - a broken rule file + reload           -> rejected, old rules keep evaluating,
                                                  PrometheusConfigReloadFailed pending
     and the remaining tests (including every rule evaluating and no dangling metric names,
     which poll until the analyzer's slow scrapes fed the recording rules) wait for their
     outcome in the order it is due.
Everything is undone at the end (faults cleared, api started, config restored).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from native import stack as native
from tests.integration.alerting import (
    ROOT,
    alert_rule,
    alert_rules,
    am_config,
    amtool_receivers,
    evaluation_interval,
    prometheus_config,
    resend_delay,
    routes_for,
    scrape_interval,
    wait_for,
    webhook_receivers,
)
from tests.metrics_catalog import (
    NATIVE_ABSENT_PREFIXES,
    dangling,
    exposed_names,
    format_dangling,
    live_metric_names,
    repo_queries,
)

pytestmark = [pytest.mark.native, pytest.mark.timeout(420)]

MARGIN = 25.0  # scheduling slack on top of every computed deadline (s)
EVAL = evaluation_interval()
AM_CONFIG = native.RUN / "alertmanager/alertmanager.yml"
BROKEN_RULES = native.RUN / "prometheus/rules/zz-broken-by-integration-test.yml"


@pytest.fixture(scope="module", autouse=True)
def _native_only(backend: str) -> None:
    if backend != "native":
        pytest.skip("native-only suite: it stops processes and edits .run/ (use --backend=native)")


@pytest.fixture(scope="module")
def urls(stack):  # noqa: ANN001 - Endpoints from tests/conftest.py
    return stack


# --- small API helpers ---------------------------------------------------------------------------


def alerts_in_prometheus(probe, prom: str, name: str, **labels: str) -> list[dict]:
    data = probe.get_json(f"{prom}/api/v1/alerts")["data"]["alerts"]
    return [
        a for a in data
        if a["labels"].get("alertname") == name
        and all(a["labels"].get(k) == v for k, v in labels.items())
    ]


def sink_alerts(probe, sink: str, since: float = 0.0, **labels: str) -> list[tuple[str, str, dict]]:
    """(receiver, alert status, alert) for every alert carrying `labels` received after `since`."""
    out = []
    for note in probe.get_json(f"{sink}/notifications"):
        if note["received_at"] < since:
            continue
        payload = note["payload"]
        for alert in payload.get("alerts", []):
            if all(alert["labels"].get(k) == v for k, v in labels.items()):
                out.append((payload.get("receiver", note["receiver"]), alert["status"], alert))
    return out


def sink_notifications(probe, sink: str, **labels: str) -> list[dict]:
    """Notification payloads in which every alert carries `labels`."""
    out = []
    for note in probe.get_json(f"{sink}/notifications"):
        alerts = note["payload"].get("alerts", [])
        if alerts and all(
            all(a["labels"].get(k) == v for k, v in labels.items()) for a in alerts
        ):
            out.append(note["payload"])
    return out


def am_alerts(probe, am: str, **labels: str) -> list[dict]:
    params = [("filter", f'{k}="{v}"') for k, v in labels.items()]
    params += [("silenced", "true"), ("inhibited", "true"), ("active", "true")]
    return probe.get_json(f"{am}/api/v2/alerts", params=params)


def deadline_for(rule_hold: float, scrape: float, group_wait: float) -> float:
    """Worst case from the fault to the notification: the sample must be scraped, the rule
    evaluated (pending), held for `for`, evaluated again (firing), then group_wait."""
    return scrape + EVAL + rule_hold + EVAL + group_wait + MARGIN


# --- 1. quick checks on the healthy stack ---------------------------------------------------------


# Jobs of the dependencies the native run simulates when `make bootstrap` could not provide
# them (outside CI only: in CI that is a failure of `native up`).
SIMULATED_JOBS = {"postgres": {"postgres"}, "redis": {"redis"},
                  "rabbitmq": {"rabbitmq", "rabbitmq-queues"}}


def native_inventory() -> set[tuple[str, str]]:
    """(job, instance) of every target in prometheus/targets/native/ the native run serves."""
    from native import deps

    skip = {job for dep in deps.missing() for job in SIMULATED_JOBS[dep]}
    expected = set()
    inv = ROOT / "prometheus/targets/native"
    cfg = prometheus_config()
    for sc in cfg["scrape_configs"]:
        job = sc["job_name"]
        if job in skip:
            continue
        for sd in sc.get("file_sd_configs", []):
            for f in sd["files"]:
                groups = yaml.safe_load((inv / Path(f).name).read_text()) or []
                for g in groups:
                    expected |= {(job, t) for t in g["targets"]}
    return expected


def test_every_native_target_is_up(urls, probe) -> None:
    probe.watch("prometheus")
    expected = native_inventory()
    assert expected, "native inventory is empty"
    slowest = max(scrape_interval(job) for job, _ in expected)

    def all_up() -> bool:
        active = probe.get_json(f"{urls.prometheus}/api/v1/targets?state=active")["data"]
        seen = {}
        for t in active["activeTargets"]:
            # blackbox-http targets: instance is the probed URL
            seen[(t["labels"]["job"], t["labels"].get("instance", ""))] = t
        missing = {k for k in expected if k not in seen}
        down = {
            f"{job} {inst}": f"{seen[job, inst]['health']} {seen[job, inst]['lastError']}"
            for job, inst in expected if (job, inst) in seen and seen[job, inst]["health"] != "up"
        }
        probe.note("targets missing / not up", {"missing": sorted(missing), "down": down})
        return not missing and not down

    wait_for(all_up, 2 * slowest + MARGIN, what="every native target up")


def test_prometheus_restart_keeps_samples(urls, probe) -> None:
    """Samples ingested before a restart are still there after it (WAL replay / persisted TSDB)."""
    probe.watch("prometheus")
    query = 'count_over_time(up{job="prometheus"}[30m])'

    def samples_at(ts: float) -> int:
        res = probe.get_json(f"{urls.prometheus}/api/v1/query", params={"query": query, "time": ts})
        result = res["data"]["result"]
        return int(float(result[0]["value"][1])) if result else 0

    scrape = scrape_interval("prometheus")
    wait_for(lambda: samples_at(time.time()) >= 2, 3 * scrape + MARGIN, what="2 self-scrapes")
    before_ts = time.time()
    before = samples_at(before_ts)

    native.ctl("restart", "prometheus", check=True)
    missing = native.wait_ready(["prometheus"], timeout=60)
    assert not missing, f"Prometheus not ready after restart:\n{native.log_tail('prometheus')}"

    after = samples_at(before_ts)
    assert after == before, f"{before} samples before restart, {after} after, at the same instant"
    # And new samples keep arriving after the restart. (Not "more samples in the last 30m":
    # with the TSDB kept from a run that ended about 30 minutes earlier, its samples leave the
    # window as fast as new ones enter it.)
    restarted = time.time()

    def newest_sample() -> float:
        res = probe.get_json(f"{urls.prometheus}/api/v1/query",
                             params={"query": 'timestamp(up{job="prometheus"})'})
        return max((float(r["value"][1]) for r in res["data"]["result"]), default=0.0)

    wait_for(lambda: newest_sample() > restarted, 2 * scrape + MARGIN, what="new samples")


# --- 2. the concurrent scenario -------------------------------------------------------------------


@dataclass
class Scenario:
    run: str
    started: float
    api_stopped_at: float = 0.0
    api_started_at: float = 0.0  # by test_servicedown_resolves_after_restart
    errors_at: float = 0.0
    synthetic_at: float = 0.0
    reload_status: int = 0
    reload_at: float = 0.0
    silence_id: str = ""
    synthetic: list[dict] = field(default_factory=list)
    stop_traffic: threading.Event = field(default_factory=threading.Event)


def _synthetic_alerts(run: str) -> list[dict]:
    """Alerts posted straight to Alertmanager. `service` is unique per run so they form their own
    groups and never mix with (or inhibit) the real alerts."""
    svc = f"synthetic-{run}"
    ends = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=15)).isoformat()
    base = {"env": "native", "test_run": run}

    def alert(**labels: str) -> dict:
        return {"labels": {**base, **labels}, "annotations": {"summary": "integration test"},
                "endsAt": ends, "generatorURL": "http://127.0.0.1/integration-test"}

    return [
        alert(alertname="SyntheticRouting", severity="critical", service=f"{svc}-crit"),
        alert(alertname="SyntheticRouting", severity="warning", service=f"{svc}-warn"),
        alert(alertname="SyntheticRouting", severity="info", service=f"{svc}-info"),
        # grouping: same alertname and service, two instances
        alert(alertname="SyntheticGrouping", severity="warning", service=f"{svc}-grp",
              instance="a:1"),
        alert(alertname="SyntheticGrouping", severity="warning", service=f"{svc}-grp",
              instance="b:1"),
        # inhibition: ServiceDown mutes the same service's HighErrorRate, not another's
        alert(alertname="ServiceDown", severity="critical", service=f"{svc}-inh", job="x"),
        alert(alertname="HighErrorRate", severity="critical", service=f"{svc}-inh"),
        alert(alertname="HighErrorRate", severity="critical", service=f"{svc}-ctl"),
        # silence
        alert(alertname="SyntheticSilenced", severity="critical", service=f"{svc}-sil"),
    ]


def _drive_traffic(url: str, stop: threading.Event, rps: float = 4.0) -> None:
    """Requests to the analyzer while its error fault is on (the blackbox probe alone is too
    little traffic for the HighErrorRate request-rate floor)."""
    with httpx.Client(timeout=2) as client:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                client.post(f"{url}/analyze", json={})
            stop.wait(1 / rps)


@pytest.fixture(scope="module")
def scenario(urls, fresh_alertmanager, dependency_incidents) -> Iterator[Scenario]:  # noqa: ANN001
    # fresh_alertmanager: a fresh notification state (an earlier run's ServiceDown{service=api}
    # may still sit in an aggregation group, or in the notification log); silences are kept.
    # dependency_incidents: the database/cache/queue incidents run meanwhile
    # (tests/integration/dependencies.py), checked by test_live_dependencies.py.
    run = uuid.uuid4().hex[:8]
    # Counted from Alertmanager's reset: a notification right after it belongs to this run.
    sc = Scenario(run=run, started=fresh_alertmanager)
    client = httpx.Client(timeout=10)
    traffic = threading.Thread(
        target=_drive_traffic, args=(urls.analyzer, sc.stop_traffic), daemon=True
    )
    try:
        # broken rule file + reload: must be rejected
        BROKEN_RULES.write_text(
            "groups:\n  - name: broken-by-integration-test\n    rules:\n"
            "      - record: broken:metric\n        expr: sum(rate(http_requests_total[5m]\n"
        )
        sc.reload_at = time.time()
        sc.reload_status = client.post(f"{urls.prometheus}/-/reload").status_code
        # stop the api -> ServiceDown
        native.ctl("stop", "api", check=True)
        sc.api_stopped_at = time.time()
        # 100% errors on the analyzer -> HighErrorRate
        client.post(f"{urls.analyzer}/admin/faults", json={"error_ratio": 1.0}).raise_for_status()
        sc.errors_at = time.time()
        traffic.start()
        # silence, then synthetic alerts
        now = dt.datetime.now(dt.UTC)
        silence = {
            "matchers": [
                {"name": "alertname", "value": "SyntheticSilenced", "isRegex": False},
                {"name": "test_run", "value": run, "isRegex": False},
            ],
            "startsAt": now.isoformat(), "endsAt": (now + dt.timedelta(minutes=15)).isoformat(),
            "createdBy": "integration-test", "comment": "silence test",
        }
        resp = client.post(f"{urls.alertmanager}/api/v2/silences", json=silence)
        resp.raise_for_status()
        sc.silence_id = resp.json()["silenceID"]
        sc.synthetic = _synthetic_alerts(run)
        client.post(f"{urls.alertmanager}/api/v2/alerts", json=sc.synthetic).raise_for_status()
        sc.synthetic_at = time.time()
        yield sc
    finally:
        sc.stop_traffic.set()
        BROKEN_RULES.unlink(missing_ok=True)
        _ignore(lambda: client.post(f"{urls.prometheus}/-/reload"))
        _ignore(lambda: client.delete(f"{urls.analyzer}/admin/faults"))
        native.ctl("start", "api")
        if sc.synthetic:
            past = dt.datetime.now(dt.UTC).isoformat()
            expired = [{**a, "endsAt": past} for a in sc.synthetic]
            _ignore(lambda: client.post(f"{urls.alertmanager}/api/v2/alerts", json=expired))
        if sc.silence_id:
            _ignore(lambda: client.delete(f"{urls.alertmanager}/api/v2/silence/{sc.silence_id}"))
        client.close()
        native.wait_ready(["api", "prometheus"], timeout=30)


def _ignore(call: Any) -> None:
    with contextlib.suppress(httpx.HTTPError):
        call()


# --- 3. outcomes, in the order they are due ---------------------------------------------


def test_broken_rule_reload_is_rejected_and_old_rules_keep_evaluating(
    urls, probe, scenario: Scenario, tmp_path: Path
) -> None:
    probe.watch("prometheus")
    assert scenario.reload_status == 500, f"broken rule file reload: {scenario.reload_status}"
    scrape = scrape_interval("prometheus")

    def reload_failed_recorded() -> bool:
        res = probe.prom_query(urls.prometheus, "prometheus_config_last_reload_successful")
        return bool(res) and all(float(r["value"][1]) == 0 for r in res)

    wait_for(reload_failed_recorded, scrape + MARGIN,
             what="prometheus_config_last_reload_successful == 0")

    def old_rules_evaluated_after_reload() -> bool:
        groups = _rule_groups(probe, urls.prometheus)
        assert "broken-by-integration-test" not in {g["name"] for g in groups}
        now = time.time()
        # A group slower than the wait (the SLO budget, every minute) counts when it
        # evaluated within its own interval.
        evaluated = [
            (last := dt.datetime.fromisoformat(g["lastEvaluation"]).timestamp())
            > scenario.reload_at
            or (g["interval"] > 2 * EVAL and now - last < g["interval"] + EVAL)
            for g in groups
        ]
        return bool(groups) and all(evaluated)

    wait_for(old_rules_evaluated_after_reload, 2 * EVAL + MARGIN,
             what="every loaded rule group evaluated after the rejected reload")

    rule = alert_rule("PrometheusConfigReloadFailed")
    wait_for(lambda: any(a["state"] in ("pending", "firing") for a in alerts_in_prometheus(
        probe, urls.prometheus, rule.name)), scrape + 2 * EVAL + MARGIN,
        what=f"{rule.name} pending on the live Prometheus")
    # Its real `for` is longer than this suite may wait: promtool proves that the same rule
    # file turns the same live condition into a firing alert once `for` has elapsed.
    _promtool_proves_firing(rule, tmp_path)


def _promtool_proves_firing(rule: Any, tmp_path: Path) -> None:
    series = ('prometheus_config_last_reload_successful{job="prometheus", service="prometheus",'
              ' env="native", instance="127.0.0.1:9090"}')
    step = int(EVAL)
    fire_at = int(rule.hold) + step
    labels = {"job": "prometheus", "service": "prometheus", "env": "native",
              "instance": "127.0.0.1:9090", "alertname": rule.name, "alertstate": "firing",
              **rule.labels}
    test = {
        "rule_files": [str(ROOT / "prometheus/rules" / f) for f in
                       sorted(p.name for p in (ROOT / "prometheus/rules").glob("*.yml"))],
        "evaluation_interval": f"{step}s",
        "tests": [{
            "interval": f"{step}s",
            "input_series": [{"series": series, "values": f"0x{fire_at // step + 4}"}],
            "promql_expr_test": [
                {"expr": f'ALERTS{{alertname="{rule.name}", alertstate="firing"}}',
                 "eval_time": f"{int(rule.hold) - step}s", "exp_samples": []},
                {"expr": f'ALERTS{{alertname="{rule.name}", alertstate="firing"}}',
                 "eval_time": f"{fire_at}s",
                 "exp_samples": [{"labels": _series_text("ALERTS", labels), "value": 1}]},
            ],
        }],
    }
    path = tmp_path / "reload_failed.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    proc = subprocess.run([str(ROOT / ".tools/bin/promtool"), "test", "rules", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"promtool: {rule.name} did not fire after for:\n{proc.stdout}"


def _series_text(name: str, labels: dict[str, str]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def _rule_groups(probe, prom: str) -> list[dict]:  # noqa: ANN001
    return probe.get_json(f"{prom}/api/v1/rules")["data"]["groups"]


def _group_wait(probe, prom: str) -> float:  # noqa: ANN001
    """Time for every loaded group to evaluate at least once: two of its intervals."""
    return 2 * max([EVAL, *[g["interval"] for g in _rule_groups(probe, prom)]])


def test_every_rule_expression_evaluates(urls, probe, scenario: Scenario) -> None:
    """Runs while the broken rule file is rejected: the loaded (repo) rules must all be ok."""
    probe.watch("prometheus")

    def evaluated() -> list[dict]:
        groups = probe.get_json(f"{urls.prometheus}/api/v1/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return rules if rules and all(r["health"] != "unknown" for r in rules) else []

    rules = wait_for(evaluated, _group_wait(probe, urls.prometheus) + MARGIN,
                     what="every rule evaluated once")
    repo_rules = {r.name for r in alert_rules()}
    loaded = {r["name"] for r in rules}
    assert repo_rules <= loaded, f"alert rules not loaded: {sorted(repo_rules - loaded)}"
    bad = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not bad, f"rules failing to evaluate: {bad}"
    # Each expression also runs as an ad-hoc query (catches type errors hidden by `or`).
    failed = {}
    for r in rules:
        resp = probe.request("GET", f"{urls.prometheus}/api/v1/query", params={"query": r["query"]})
        if resp.status_code != 200 or resp.json().get("status") != "success":
            failed[r["name"]] = resp.text[:200]
    assert not failed, f"rule expressions rejected by the query API: {failed}"


def test_watchdog_reaches_heartbeat_receiver(urls, probe, scenario: Scenario) -> None:
    probe.watch("alertmanager", "prometheus")
    rule = alert_rule("Watchdog")
    labels = {"alertname": "Watchdog", **rule.labels}
    receivers = amtool_receivers(AM_CONFIG, labels)
    assert receivers, "Watchdog routes nowhere"
    route = routes_for(labels)[0]
    # Alertmanager was restarted just before the scenario (fresh_alertmanager): Prometheus
    # re-sends the firing Watchdog after its resend delay (--rules.alert.resend-delay, checked
    # on the next evaluation after it), then group_wait.
    timeout = (scenario.started + resend_delay() + 2 * EVAL + route.group_wait + MARGIN
               - time.time())
    got = wait_for(lambda: [r for r, s, _ in sink_alerts(probe, urls.sink, scenario.started,
                                                         alertname="Watchdog")
                            if s == "firing"], max(1.0, timeout),
                   what="Watchdog at the sink after the Alertmanager restart")
    assert set(got) <= set(receivers) and set(receivers) & webhook_receivers() <= set(got), (
        f"Watchdog reached {sorted(set(got))}, routes say {receivers}")
    assert any("heartbeat" in r or "watchdog" in r.lower() for r in receivers), receivers


def test_synthetic_alerts_route_as_configured(urls, probe, scenario: Scenario) -> None:
    probe.watch("alertmanager")
    cases = [a for a in scenario.synthetic if a["labels"]["alertname"] == "SyntheticRouting"]
    hooks = webhook_receivers()
    wait_s = max(routes_for(a["labels"])[0].group_wait for a in cases) + MARGIN
    expected = {a["labels"]["service"]: amtool_receivers(AM_CONFIG, a["labels"]) for a in cases}
    probe.note("expected receivers (amtool config routes test)", expected)

    def delivered() -> dict[str, set[str]]:
        got: dict[str, set[str]] = {}
        for receiver, _, alert in sink_alerts(probe, urls.sink, test_run=scenario.run,
                                              alertname="SyntheticRouting"):
            got.setdefault(alert["labels"]["service"], set()).add(receiver)
        want_any = {s for s, rs in expected.items() if set(rs) & hooks}
        return got if want_any <= set(got) else {}

    got = wait_for(delivered, max(0.0, scenario.synthetic_at + wait_s - time.time()) + 1,
                   what="synthetic alerts at their receivers")
    for svc, receivers in expected.items():
        assert got.get(svc, set()) == set(receivers) & hooks, (
            f"{svc}: delivered to {sorted(got.get(svc, set()))}, configured {receivers}")
    crit = next(s for s in expected if s.endswith("-crit"))
    assert any("critical" in r for r in expected[crit]), "severity=critical must page"


def test_grouping_follows_group_by(urls, probe, scenario: Scenario) -> None:
    probe.watch("alertmanager")
    grp = [a for a in scenario.synthetic if a["labels"]["alertname"] == "SyntheticGrouping"]
    route = routes_for(grp[0]["labels"])[0]
    wait_s = max(0.0, scenario.synthetic_at + route.group_wait + MARGIN - time.time()) + 1
    notes = wait_for(lambda: sink_notifications(probe, urls.sink, test_run=scenario.run,
                                                alertname="SyntheticGrouping"),
                     wait_s, what="the grouped notification")
    split = "..." in route.group_by or "instance" in route.group_by
    sizes = sorted(len(n["alerts"]) for n in notes if n["status"] == "firing")
    if split:
        assert sizes[:2] == [1, 1], f"group_by {route.group_by}: expected one alert each, {sizes}"
    else:
        assert sizes[0] == 2, f"group_by {route.group_by}: expected both instances in one, {sizes}"
        assert set(notes[0]["groupLabels"]) == set(route.group_by), notes[0]["groupLabels"]


def test_servicedown_inhibits_same_service_error_rate(urls, probe, scenario: Scenario) -> None:
    probe.watch("alertmanager")
    svc = f"synthetic-{scenario.run}"
    ctl_route = routes_for({"alertname": "HighErrorRate", "severity": "critical"})[0]
    # the control alert (other service) must arrive: then the muted one had the same chance
    wait_s = max(0.0, scenario.synthetic_at + ctl_route.group_wait + MARGIN - time.time()) + 1
    wait_for(lambda: sink_alerts(probe, urls.sink, service=f"{svc}-ctl",
                                 alertname="HighErrorRate"), wait_s,
             what="the uninhibited control HighErrorRate")
    muted = am_alerts(probe, urls.alertmanager, alertname="HighErrorRate", service=f"{svc}-inh")
    assert muted and muted[0]["status"]["state"] == "suppressed", muted
    assert muted[0]["status"]["inhibitedBy"], muted[0]["status"]
    assert not sink_alerts(probe, urls.sink, service=f"{svc}-inh", alertname="HighErrorRate")
    source = sink_alerts(probe, urls.sink, service=f"{svc}-inh", alertname="ServiceDown")
    assert source, "the inhibiting ServiceDown itself must still be notified"


def test_silence_suppresses_notification(urls, probe, scenario: Scenario) -> None:
    probe.watch("alertmanager")
    svc = f"synthetic-{scenario.run}-sil"
    route = routes_for({"alertname": "SyntheticSilenced", "severity": "critical"})[0]
    time.sleep(max(0.0, scenario.synthetic_at + route.group_wait + 5 - time.time()))
    silenced = am_alerts(probe, urls.alertmanager, service=svc)
    assert silenced, "silenced alert missing from Alertmanager"
    status = silenced[0]["status"]
    assert status["state"] == "suppressed" and scenario.silence_id in status["silencedBy"], status
    assert not sink_alerts(probe, urls.sink, service=svc), "a silenced alert was notified"
    # The silence is only what mutes it: an identical alert of another run is delivered (the
    # routing test checks the critical route delivers within the same group_wait).


def test_servicedown_reaches_critical_receiver(urls, probe, scenario: Scenario) -> None:
    probe.watch("prometheus", "alertmanager", "api")
    rule = alert_rule("ServiceDown")
    labels = {"alertname": "ServiceDown", "service": "api", "env": "native", **rule.labels}
    receivers = amtool_receivers(AM_CONFIG, labels)
    assert any("critical" in r for r in receivers), f"ServiceDown routes to {receivers}"
    route = routes_for(labels)[0]
    due = scenario.api_stopped_at + deadline_for(rule.hold, scrape_interval("apollonia-api"),
                                                 route.group_wait)
    got = wait_for(
        lambda: [(r, a) for r, s, a in sink_alerts(probe, urls.sink, scenario.started,
                                                   alertname="ServiceDown", service="api",
                                                   env="native")
                 if s == "firing" and _started_after(a, scenario.api_stopped_at - 60)],
        max(1.0, due - time.time()), what="ServiceDown{service=api} at the sink")
    assert {r for r, _ in got} <= set(receivers), got
    firing = alerts_in_prometheus(probe, urls.prometheus, "ServiceDown", service="api")
    assert firing and firing[0]["state"] == "firing", firing


def _started_after(alert: dict, ts: float) -> bool:
    return dt.datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00")).timestamp() >= ts


def test_servicedown_resolves_after_restart(urls, probe, scenario: Scenario) -> None:
    probe.watch("prometheus", "alertmanager", "api")
    native.ctl("start", "api", check=True)
    assert not native.wait_ready(["api"], timeout=30), native.log_tail("api")
    started = scenario.api_started_at = time.time()
    scrape = scrape_interval("apollonia-api")
    wait_for(lambda: not alerts_in_prometheus(probe, urls.prometheus, "ServiceDown",
                                              service="api"),
             scrape + EVAL + MARGIN, what="ServiceDown gone from Prometheus")
    wait_for(lambda: not am_alerts(probe, urls.alertmanager, alertname="ServiceDown",
                                   service="api"),
             EVAL + MARGIN, what="ServiceDown resolved in Alertmanager")
    rule = alert_rule("ServiceDown")
    labels = {"alertname": "ServiceDown", "service": "api", "env": "native", **rule.labels}
    route = routes_for(labels)[0]
    sends_resolved = _sends_resolved(amtool_receivers(AM_CONFIG, labels))
    if sends_resolved and route.group_interval <= 90:
        wait_for(lambda: [a for _, s, a in sink_alerts(probe, urls.sink, alertname="ServiceDown",
                                                       service="api") if s == "resolved"],
                 max(1.0, started + scrape + EVAL + route.group_interval + MARGIN - time.time()),
                 what="the resolved ServiceDown notification")


def test_no_dangling_metric_names(urls, probe, scenario: Scenario) -> None:
    """Every metric a rule, dashboard panel or diagnosis query names has series natively
    (exporters that need a Docker host are excluded by name prefix; Fluent Bit and Jaeger
    names must be in their recorded expositions, tests/fixtures/; PostgreSQL, Redis and
    RabbitMQ run natively, so pg_, redis_, rabbitmq_ and erlang_ names are checked). Runs once
    the api is back from the ServiceDown scenario: the recording rules over its uploads by
    format, and those over the analyzer (30s scrapes), need two scrapes and an evaluation after
    the traffic before their output exists, so this polls for that long."""
    queries = repo_queries()
    assert queries, "no queries found in rules/dashboards/diagnosis"
    problems: dict[str, list[str]] = {}

    def clean() -> bool:
        nonlocal problems
        problems = dangling(queries, live_metric_names(urls.prometheus) | exposed_names(),
                            ignore_prefixes=NATIVE_ABSENT_PREFIXES)
        return not problems

    assert scenario.api_started_at, "runs after test_servicedown_resolves_after_restart"
    traffic_from = max(scenario.started + 2 * scrape_interval("apollonia-analyzer"),
                       scenario.api_started_at + 2 * scrape_interval("apollonia-api"))
    deadline = traffic_from + 2 * EVAL + MARGIN
    with contextlib.suppress(AssertionError):
        wait_for(clean, max(1.0, deadline - time.time()), interval=3, what="no dangling names")
    assert not problems, format_dangling(problems)


def _sends_resolved(receivers: list[str]) -> bool:
    for r in am_config().get("receivers", []):
        if r["name"] in receivers:
            for hook in r.get("webhook_configs", []):
                if hook.get("send_resolved", True):
                    return True
    return False


def test_injected_error_ratio_fires_high_error_rate(urls, probe, scenario: Scenario) -> None:
    probe.watch("prometheus", "alertmanager", "analyzer")
    rule = alert_rule("HighErrorRate", severity="critical")
    labels = {"alertname": "HighErrorRate", "service": "analyzer", "env": "native", **rule.labels}
    receivers = amtool_receivers(AM_CONFIG, labels)
    route = routes_for(labels)[0]
    # rate() over the analyzer's 30s scrapes needs two samples that contain errors
    scrape = scrape_interval("apollonia-analyzer")
    due = scenario.errors_at + scrape + deadline_for(rule.hold, scrape, route.group_wait)
    got = wait_for(
        # Received after the scenario reset Alertmanager's notification state (the alert may
        # still be firing from a run a few minutes ago: the 5m error ratio decays slowly).
        lambda: [r for r, s, a in sink_alerts(probe, urls.sink, scenario.started,
                                              alertname="HighErrorRate", service="analyzer",
                                              env="native", severity=rule.labels["severity"])
                 if s == "firing"],
        max(1.0, due - time.time()), what="HighErrorRate{service=analyzer} at the sink")
    assert set(got) <= set(receivers), (got, receivers)
    ratio = probe.prom_query(
        urls.prometheus, 'service:http_requests_error_ratio:rate5m{service="analyzer"}')
    assert ratio and float(ratio[0]["value"][1]) > 0.10, ratio
