"""Proofs of the scale profile on real binaries (fast subset, part of `make test`).

The native scale profile (native/scale.py): three Alertmanagers gossiping, the Prometheus HA
pair, single-node VictoriaMetrics behind the pair's remote write, vmauth, and an agent-mode
Prometheus for a second "host". The slow paths start at once (module fixture `scenarios`) and
each test waits for its own outcome:

  alertmanager  stop the replica that would notify first while three alert groups wait for
                their group_wait -> exactly one webhook per group, a silenced alert never;
                restart it -> the silence made on it before, and one made on a peer while it
                was down, are both there
  pair          a target of the pair's inventory goes down after replica a was stopped ->
                ServiceDown reaches the webhook exactly once (from b alone)
  agent         a target of the remote host's agent inventory goes down -> the central pair
                reads it back from the store and its ServiceDown reaches the webhook once

Group labels carry a per-run id, so earlier runs (or the base suite) never share a group.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from native import scale
from tests.scale import helpers as h

pytestmark = [pytest.mark.native, pytest.mark.timeout(420)]


@dataclass
class Scenarios:
    run: str
    futures: dict[str, Future] = field(default_factory=dict)

    def result(self, name: str) -> Any:
        return self.futures[name].result(timeout=400)


# --- the slow paths ---------------------------------------------------------------------------


def alertmanager_failover(run: str) -> dict[str, Any]:
    c = h.Client()
    try:
        h.wait_for(lambda: all(c.am_peers(am) == sorted(h.AMS) for am in h.AMS.values()), 60,
                   what="three Alertmanager replicas in one cluster")
        # cluster.Peer.Position(): members sorted by name; position 0 notifies at once, the
        # next waits one peer timeout and checks the (gossiped) notification log first.
        first, survivor = sorted(h.AMS)[0], sorted(h.AMS)[1]
        before = c.add_silence(h.AMS[first], alertname="ScaleProofSilenced", proof=run)
        h.wait_for(lambda: all(before in c.silences(am) for am in h.AMS.values()), 15,
                   what="the silence replicated to every replica")
        groups = [f"{run}-group-{i}" for i in range(3)]
        labels = {"severity": "critical", "env": "native", "proof": run}
        alerts = [h.synthetic_alert(alertname="ScaleProof", service=g, **labels) for g in groups]
        alerts.append(h.synthetic_alert(alertname="ScaleProofSilenced", service=groups[0],
                                        **labels))
        posted = time.time()
        for am in h.AMS.values():  # what Prometheus does: every alert to every replica
            c.post(f"{am}/api/v2/alerts", json=alerts).raise_for_status()
        scale.ctl("stop", first, check=True)
        stopped = time.time() - posted
        during = c.add_silence(h.AMS[survivor], alertname="ScaleProofSilencedLater", proof=run)
        # The last replica waits 2 peer timeouts before it would notify a duplicate.
        wait = h.group_wait({"alertname": "ScaleProof", **labels}) + 2 * h.peer_timeout()
        h.wait_until(posted + wait + h.MARGIN)
        notes = c.notifications("critical", proof=run)
        per_group = Counter(a["labels"]["service"] for n in notes for a in n["alerts"]
                            if a["labels"]["alertname"] == "ScaleProof")
        silenced = [a for n in notes for a in n["alerts"]
                    if a["labels"]["alertname"] == "ScaleProofSilenced"]
        arrival = sorted(round(n["received_at"] - posted, 1) for n in notes)
        scale.ctl("start", first, check=True)
        assert not scale.wait_ready([first], timeout=60), scale.log_tail(first)
        h.wait_for(lambda: c.am_peers(h.AMS[first]) == sorted(h.AMS), 60,
                   what=f"{first} back in the cluster")
        after = h.wait_for(
            lambda: (lambda s: s if {before, during} <= set(s) else None)(c.silences(h.AMS[first])),
            30, what=f"both silences on the restarted {first}")
        return {
            "groups": groups, "per_group": dict(per_group), "silenced": silenced,
            "stopped": first, "stopped_after": round(stopped, 1), "arrival": arrival,
            "silences_after_restart": {"before": after[before], "during": after[during]},
        }
    finally:
        if scale.wait_ready(list(h.AMS), timeout=1):
            scale.ctl("start", "all")
        c.close()


def pair_failover(run: str) -> dict[str, Any]:
    """A target only the pair scrapes goes down after replica a is stopped."""
    c = h.Client()
    target = h.MetricsTarget()
    service = f"pair-proof-{run}"
    restores = [
        h.add_targets(scale.RUN / name / "inventory", "apollonia-api.yml", target.address,
                      service=service, env="native")
        for name in h.PROMS
    ]
    try:
        for name, prom in h.PROMS.items():
            h.wait_for(lambda p=prom: [r for r in c.query(p, f'up{{service="{service}"}}')
                                       if r["value"][1] == "1"],
                       2 * h.scrape_interval("apollonia-api") + h.MARGIN,
                       what=f"{name} scraping the proof target")
        # Both replicas alive: each knows every Alertmanager replica and its own `replica`
        # label, and the Alertmanagers hold one Watchdog, without `replica`.
        alertmanagers = {
            name: sorted(a["url"] for a in
                         c.get(f"{prom}/api/v1/alertmanagers")["data"]["activeAlertmanagers"])
            for name, prom in h.PROMS.items()
        }
        configs = {name: c.get(f"{prom}/api/v1/status/config")["data"]["yaml"]
                   for name, prom in h.PROMS.items()}
        sent = {name: h.wait_for(lambda p=prom: c.metric(p, "prometheus_notifications_sent_total"),
                                 h.EVAL + h.MARGIN, what=f"{name} sending alerts")
                for name, prom in h.PROMS.items()}
        watchdogs = h.wait_for(lambda: c.get(f"{h.AMS['alertmanager-3']}/api/v2/alerts",
                                             params={"filter": 'alertname="Watchdog"'}),
                               h.EVAL + h.MARGIN, what="the Watchdog in the Alertmanagers")
        scale.ctl("stop", "prometheus-a", check=True)
        down = time.time()
        target.stop()
        rule = h.alert_rule("ServiceDown")
        labels = {"alertname": "ServiceDown", "service": service, "env": "native",
                  **rule.labels}
        deadline = (h.scrape_interval("apollonia-api") + h.EVAL + rule.hold + h.EVAL
                    + h.group_wait(labels) + h.MARGIN)
        first = h.wait_for(lambda: c.notifications("critical", alertname="ServiceDown",
                                                   service=service),
                           deadline, what=f"ServiceDown {service} at the webhook")
        # A duplicate would come from another Alertmanager replica within 2 peer timeouts.
        h.wait_until(first[0]["received_at"] + 2 * h.peer_timeout() + 5)
        notes = c.notifications("critical", alertname="ServiceDown", service=service)
        return {
            "alertmanagers": alertmanagers, "configs": configs, "sent": sent,
            "watchdogs": watchdogs, "notifications": notes,
            "after": round(first[0]["received_at"] - down, 1), "deadline": round(deadline),
        }
    finally:
        for restore in restores:
            restore()
        scale.ctl("start", "prometheus-a")
        target.stop()
        c.close()


def agent_alert(run: str) -> dict[str, Any]:
    """A target of the remote host's agent goes down; the central rules notice it."""
    c = h.Client()
    target = h.MetricsTarget()
    service = f"agent-proof-{run}"
    restore = h.add_targets(scale.RUN / "agent" / "inventory", "apollonia-api.yml",
                            target.address, service=service, env="native")
    try:
        selector = f'up{{service="{service}"}}'
        # agent scrape + batch_send_deadline + the pair's federation scrape + margin
        reach = h.scrape_interval("apollonia-api") + 5 + h.scrape_interval("remote-hosts")
        stored = h.wait_for(lambda: c.query(h.STORE, selector, **h.FRESH), reach + h.MARGIN,
                            what="the agent's series in the store")
        down = time.time()
        target.stop()
        read_back = h.wait_for(lambda: c.query(h.PROMS["prometheus-b"], selector),
                               reach + h.MARGIN, what="the series read back by the pair")
        rule = h.alert_rule("ServiceDown")
        labels = {"alertname": "ServiceDown", "service": service, "env": "native",
                  **rule.labels}
        deadline = (reach + h.EVAL + rule.hold + h.EVAL + h.group_wait(labels) + h.MARGIN)
        pending = h.wait_for(lambda: c.prom_alerts(h.PROMS["prometheus-b"], "ServiceDown",
                                                   service=service),
                             reach + h.EVAL + h.MARGIN, what="ServiceDown pending on replica b")
        # No wait for late duplicates here: the pair proof covers the Alertmanager cluster.
        notes = h.wait_for(lambda: c.notifications("critical", alertname="ServiceDown",
                                                   service=service),
                           deadline, what=f"ServiceDown {service} at the webhook")
        first = notes
        return {
            "stored": stored, "read_back": read_back, "pending": pending,
            "notifications": notes, "after": round(first[0]["received_at"] - down, 1),
            "deadline": round(deadline),
        }
    finally:
        restore()
        c.close()


@pytest.fixture(scope="module")
def scenarios(scale_run: None) -> Iterator[Scenarios]:
    s = Scenarios(uuid.uuid4().hex[:8])
    with ThreadPoolExecutor(max_workers=3) as pool:
        s.futures = {
            "alertmanager": pool.submit(alertmanager_failover, s.run),
            "pair": pool.submit(pair_failover, s.run),
            "agent": pool.submit(agent_alert, s.run),
        }
        yield s
        for future in s.futures.values():
            future.cancel()


# --- quick checks on the running profile --------------------------------------------------------


def test_store_holds_the_pair_once_and_the_remote_host(
    scenarios: Scenarios, client: h.Client
) -> None:
    """Both replicas write every series; the store has each once, without `replica`."""
    prom = 'up{job="prometheus"}'
    h.wait_for(lambda: len(client.query(h.STORE, prom, **h.FRESH)) == len(h.PROMS), 60,
               what="the pair's self-scrape series in the store")
    assert client.query(h.STORE, 'count({replica!=""})', **h.FRESH) == []
    # Replica b scrapes both too (just after a start it may not have yet).
    local_rows = h.wait_for(
        lambda: (rows := client.query(h.PROMS["prometheus-b"], prom)) and len(rows) == len(h.PROMS)
        and rows, 60, what="both replicas' self-scrape series on replica b")
    local = {frozenset(r["metric"].items()) for r in local_rows}
    stored = {frozenset(r["metric"].items()) for r in client.query(h.STORE, prom, **h.FRESH)}
    assert stored == local
    agent = h.wait_for(lambda: client.query(h.STORE, 'up{origin="agent", job="node"}', **h.FRESH),
                       60, what="the remote host's node-exporter in the store")
    assert [r["metric"]["instance"] for r in agent] == [
        f"{scale.AGENT_HOST}:{scale.REMOTE_NODE_PORT}"]
    assert agent[0]["metric"]["host"] == scale.AGENT_HOST
    node = client.query(h.STORE, f'node_load1{{host="{scale.AGENT_HOST}"}}', **h.FRESH)
    assert node, "no node-exporter metrics of the remote host in the store"


def test_remote_hosts_need_the_agent_password_and_may_only_write(
    scenarios: Scenarios, client: h.Client
) -> None:
    password = (scale.SECRETS / "agent_remote_write_password").read_text()
    write = f"{h.VMAUTH}/api/v1/write"
    assert client.http.post(write).status_code == 401
    assert client.http.post(write, auth=("agent", "wrong")).status_code == 401
    assert client.http.post(write, auth=("agent", password)).status_code == 204
    # No reading, importing or deleting through the agents' door.
    for path in ("/api/v1/query?query=up", "/api/v1/import/prometheus",
                 "/api/v1/admin/tsdb/delete_series?match[]=up"):
        assert client.http.post(f"{h.VMAUTH}{path}", auth=("agent", password)).status_code == 400
    # vmauth's own endpoints are not on that port, only on its internal one.
    for path in ("/metrics", "/debug/pprof/", "/flags", "/health"):
        assert client.http.get(f"{h.VMAUTH}{path}").status_code == 401, path
        assert client.http.get(f"{h.VMAUTH_INTERNAL}{path}").status_code == 200, path
    h.wait_for(lambda: client.metric(h.AGENT, "prometheus_remote_storage_samples_total",
                                     remote_name="central-store"),
               60, what="the agent sending samples")
    assert not client.metric(h.AGENT, "prometheus_remote_storage_samples_failed_total",
                             remote_name="central-store")


# --- the concurrent proofs ---------------------------------------------------------------------


def test_alertmanager_replica_down_notifies_each_group_once(scenarios: Scenarios) -> None:
    r = scenarios.result("alertmanager")
    print(f"\nalertmanager failover: stopped {r['stopped']} {r['stopped_after']}s after "
          f"posting; notifications per group {r['per_group']}; arrivals {r['arrival']} s")
    assert r["per_group"] == dict.fromkeys(r["groups"], 1), r
    assert r["silenced"] == [], "a silenced alert was notified"


def test_silences_survive_a_replica_restart(scenarios: Scenarios) -> None:
    r = scenarios.result("alertmanager")
    assert r["silences_after_restart"] == {"before": "active", "during": "active"}, r


def test_each_replica_sends_to_every_alertmanager(scenarios: Scenarios) -> None:
    r = scenarios.result("pair")
    for name, urls in r["alertmanagers"].items():
        assert urls == sorted(f"{am}/api/v2/alerts" for am in h.AMS.values()), (name, urls)
        replica = scale.PROMETHEUS[name][0]
        assert f"replica: {replica}" in r["configs"][name], f"{name}: no replica={replica}"


def test_pair_deduplicates_and_survives_a_replica(scenarios: Scenarios) -> None:
    r = scenarios.result("pair")
    print(f"\npair failover: ServiceDown at the webhook {r['after']}s after the target went "
          f"down with replica a stopped (deadline {r['deadline']}s); "
          f"{len(r['notifications'])} notification(s)")
    # Both replicas sent their Watchdog; the Alertmanagers hold one, without `replica`.
    assert all(v > 0 for v in r["sent"].values()), r["sent"]
    assert len(r["watchdogs"]) == 1 and "replica" not in r["watchdogs"][0]["labels"], r
    assert len(r["notifications"]) == 1, r["notifications"]
    (alert,) = r["notifications"][0]["alerts"]
    assert "replica" not in alert["labels"]


def test_central_rules_evaluate_the_remote_host(scenarios: Scenarios) -> None:
    r = scenarios.result("agent")
    print(f"\nagent: ServiceDown of the remote host's target at the webhook {r['after']}s "
          f"after it went down (deadline {r['deadline']}s)")
    (stored,) = r["stored"]
    assert stored["metric"]["origin"] == "agent" and stored["metric"]["host"] == scale.AGENT_HOST
    assert r["read_back"][0]["metric"]["host"] == scale.AGENT_HOST
    assert len(r["notifications"]) == 1, r["notifications"]
    (alert,) = r["notifications"][0]["alerts"]
    assert alert["labels"]["host"] == scale.AGENT_HOST
