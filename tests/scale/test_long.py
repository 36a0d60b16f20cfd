"""The long proofs of the scale profile: `make test-scale` (marker scale_full), not `make test`.

  store outage  under load, the long-term store is stopped for 3 minutes and started again:
                both replicas replay the backlog from their WAL (catch-up time measured), and
                for every series of a chosen set the store holds exactly what VictoriaMetrics'
                deduplication makes of the two replicas' local samples (0 lost), one series
                per target (not one per replica); the agent catches up too
  kill -9       the Alertmanager that would notify first is killed (no graceful leave) while
                three groups wait: one notification per group; it comes back with the silence
  dashboards    every dashboard query that returns data on replica b returns the same series
                from the store (needs the base native run: started if it is not running)
  diagnose      `make diagnose` (tools/diagnose.py) runs against either replica and the store

The outage runs in the background while the other proofs run.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from native import scale
from tests.grafana import live_panels
from tests.scale import helpers as h

pytestmark = [pytest.mark.native, pytest.mark.scale_full, pytest.mark.timeout(900)]

OUTAGE = 180.0  # seconds the store is down (the 3 minutes)
LOAD_SERIES = 5000  # extra series per replica during the outage ("under load")
DEDUP_MS = int(h.seconds(scale.DEDUP_INTERVAL) * 1000)
QUEUE = "long-term-store"  # remote_write name in prometheus-ha.yml


def align(t: float, up: bool = False) -> float:
    step = DEDUP_MS / 1000
    return (int(t / step) + (1 if up else 0)) * step


def remote_state(c: h.Client, base: str, queue: str) -> dict[str, float]:
    names = ("samples_total", "samples_failed_total", "samples_retried_total",
             "samples_pending", "queue_highest_sent_timestamp_seconds")
    return {n: c.metric(base, f"prometheus_remote_storage_{n}", remote_name=queue) or 0.0
            for n in names}


def store_outage(run: str) -> dict[str, Any]:
    c = h.Client()
    load = h.MetricsTarget(series=LOAD_SERIES, name="scale_load_series")
    service = f"load-{run}"
    restores = [h.add_targets(scale.RUN / name / "inventory", "node.yml", load.address,
                              service=service, env="native") for name in h.PROMS]
    selectors = [f'{{service="{service}"}}', '{job="alertmanager"}']
    try:
        for prom in h.PROMS.values():
            h.wait_for(lambda p=prom: c.query(p, f'up{{service="{service}"}} == 1'),
                       2 * h.scrape_interval("node") + h.MARGIN, what="load target scraped")
        start = align(time.time(), up=True)  # window: (start, end], whole dedup intervals
        h.wait_until(start + 30)
        before = {n: remote_state(c, p, QUEUE) for n, p in h.PROMS.items()}
        agent_before = remote_state(c, h.AGENT, "central-store")
        scale.ctl("stop", "victoria-metrics", check=True)
        stopped = time.time()
        h.wait_until(stopped + OUTAGE)
        during = {n: remote_state(c, p, QUEUE) for n, p in h.PROMS.items()}
        scale.ctl("start", "victoria-metrics", check=True)
        assert not scale.wait_ready(["victoria-metrics"], timeout=60)
        restarted = time.time()
        caught_up: dict[str, float] = {}
        senders = {**h.PROMS, "prometheus-agent": h.AGENT}
        queues = {**dict.fromkeys(h.PROMS, QUEUE), "prometheus-agent": "central-store"}
        deadline = restarted + 120
        while len(caught_up) < len(senders) and time.time() < deadline:
            for name, base in senders.items():
                sent = c.metric(base, "prometheus_remote_storage_queue_highest_sent_timestamp"
                                "_seconds", remote_name=queues[name]) or 0
                if name not in caught_up and sent >= restarted:
                    caught_up[name] = round(time.time() - restarted, 1)
            time.sleep(0.5)
        end = align(restarted + 45)
        h.wait_until(end + 2 * h.scrape_interval("node") + 5)
        after = {n: remote_state(c, p, QUEUE) for n, p in h.PROMS.items()}
        agent_after = remote_state(c, h.AGENT, "central-store")
        window = end - start
        compared, series, mismatches, local_series, stored_series = 0, 0, [], 0, 0
        for selector in selectors:
            a = h.raw_samples(c, h.PROMS["prometheus-a"], selector, end, window)
            b = h.raw_samples(c, h.PROMS["prometheus-b"], selector, end, window)
            stored = h.raw_samples(c, h.STORE, selector, end, window, **h.FRESH)
            local_series += len(set(a) | set(b))
            stored_series += len(stored)
            for key in sorted(set(a) | set(b) | set(stored), key=sorted):
                expected = h.dedup(a.get(key, []) + b.get(key, []), DEDUP_MS)
                got = stored.get(key, [])
                series += 1
                compared += len(expected)
                same = [t for t, _ in got] == [t for t, _ in expected] and all(
                    abs(x - y) <= 1e-9 * max(abs(x), abs(y), 1)
                    for (_, x), (_, y) in zip(got, expected, strict=True))
                if not same:
                    mismatches.append((dict(key), len(expected), len(got)))
        return {
            "window": window, "outage": round(restarted - stopped, 1), "caught_up": caught_up,
            "compared": compared, "series": series, "local_series": local_series,
            "stored_series": stored_series, "mismatches": mismatches[:10],
            "mismatch_count": len(mismatches), "before": before, "during": during,
            "after": after, "agent_before": agent_before, "agent_after": agent_after,
        }
    finally:
        for restore in restores:
            restore()
        load.stop()
        scale.ctl("start", "victoria-metrics")
        c.close()


@pytest.fixture(scope="module")
def outage(scale_run: None) -> Iterator[Future]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(store_outage, uuid.uuid4().hex[:8])
        yield future
        future.cancel()


def test_killed_alertmanager_notifies_each_group_once(
    outage: Future, client: h.Client
) -> None:
    """kill -9: no graceful leave, so the peers still count the dead replica until memberlist
    declares it failed; the next replica waits its peer timeout, finds no entry in the
    notification log and notifies. Restarted, it gets the silence back from its peers."""
    run = uuid.uuid4().hex[:8]
    first, survivor = sorted(h.AMS)[0], sorted(h.AMS)[1]
    h.wait_for(lambda: client.am_peers(h.AMS[first]) == sorted(h.AMS), 60, what="cluster")
    silence = client.add_silence(h.AMS[survivor], alertname="ScaleProofKillSilenced", proof=run)
    h.wait_for(lambda: silence in client.silences(h.AMS[first]), 15, what="silence gossiped")
    groups = [f"{run}-kill-{i}" for i in range(3)]
    labels = {"severity": "critical", "env": "native", "proof": run}
    alerts = [h.synthetic_alert(alertname="ScaleProofKill", service=g, **labels) for g in groups]
    posted = time.time()
    for am in h.AMS.values():
        client.post(f"{am}/api/v2/alerts", json=alerts).raise_for_status()
    scale.ctl("signal", "KILL", first, check=True)
    try:
        wait = h.group_wait({"alertname": "ScaleProofKill", **labels}) + 2 * h.peer_timeout()
        h.wait_until(posted + wait + h.MARGIN)
        notes = client.notifications("critical", proof=run)
        per_group = Counter(a["labels"]["service"] for n in notes for a in n["alerts"])
        arrival = sorted(round(n["received_at"] - posted, 1) for n in notes)
        print(f"\nkill -9 {first}: notifications per group {dict(per_group)}, at {arrival} s")
        assert dict(per_group) == dict.fromkeys(groups, 1), (per_group, arrival)
    finally:
        scale.ctl("start", first)
    assert not scale.wait_ready([first], timeout=60), scale.log_tail(first)
    h.wait_for(lambda: client.silences(h.AMS[first]).get(silence) == "active", 60,
               what=f"the silence back on the restarted {first}")


@pytest.mark.parametrize("target", ["prometheus-a", "prometheus-b", "store"])
def test_diagnose_works_against_either_replica_and_the_store(outage: Future, target: str) -> None:
    if target == "store":
        outage.result(timeout=800)  # the store is down during the outage
    url = h.STORE if target == "store" else h.PROMS[target]
    proc = subprocess.run([sys.executable, "-m", "tools.diagnose", "--prometheus", url],
                          capture_output=True, text=True, timeout=120, cwd=scale.ROOT)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    from tools.diagnose import DIAGNOSES

    checks = re.findall(r"^(?:ok|warning|critical|no data)\s+(\w+):", proc.stdout, re.M)
    assert checks == [d.name for d in DIAGNOSES], proc.stdout


def test_store_outage_loses_nothing_and_merges_the_pair(outage: Future) -> None:
    r = outage.result(timeout=800)
    failed = {n: r["after"][n]["samples_failed_total"] - r["before"][n]["samples_failed_total"]
              for n in h.PROMS}
    retried = {n: r["after"][n]["samples_retried_total"] - r["before"][n]["samples_retried_total"]
               for n in h.PROMS}
    pending = {n: r["during"][n]["samples_pending"] for n in h.PROMS}
    print(f"\nstore outage {r['outage']}s under {LOAD_SERIES} extra series per replica; "
          f"catch-up after restart {r['caught_up']} s; samples pending at the end of the "
          f"outage {pending}; retried {retried}; failed {failed}; window {r['window']:.0f}s: "
          f"{r['compared']} samples in {r['series']} series compared "
          f"({r['local_series']} label sets locally, {r['stored_series']} in the store), "
          f"{r['mismatch_count']} mismatches")
    assert set(r["caught_up"]) == {*h.PROMS, "prometheus-agent"}, r["caught_up"]
    assert r["compared"] > LOAD_SERIES * (OUTAGE / (DEDUP_MS / 1000)), r["compared"]
    assert r["mismatch_count"] == 0, r["mismatches"]
    assert r["stored_series"] == r["local_series"], "the pair is not one series per target"
    assert all(v == 0 for v in failed.values()), failed
    assert all(v > 0 for v in retried.values()), "the outage was not noticed"
    agent_failed = (r["agent_after"]["samples_failed_total"]
                    - r["agent_before"]["samples_failed_total"])
    assert agent_failed == 0


def test_dashboards_read_the_same_series_from_the_store(
    outage: Future, stack: Any, client: h.Client
) -> None:
    """Every planned panel query (tests/grafana/live_panels.py) that has data on replica b has
    the same series (label sets) on the store; values may differ where MetricsQL's rate() and
    extrapolation differ from PromQL's. Series whose current value is NaN on Prometheus are
    left out on both sides: "MetricsQL removes all the NaN values from the output"
    (docs/victoriametrics/MetricsQL.md at v1.145.0) and takes the last number instead, while
    Grafana draws nothing for Prometheus' NaN. A difference must persist over a minute: the
    store trails by its 30s latency offset, so a series that just appeared or ended can differ
    for one look."""
    outage.result(timeout=800)
    prom = live_panels.run(h.PROMS["prometheus-b"], wait=150, env="native")
    checked = [q for c in prom.values() for q in c.queries if q not in c.empty]
    assert len(checked) > 40, live_panels.summary(prom)

    def difference(query: str) -> tuple[list[str], list[str]] | None:
        result = client.query(h.PROMS["prometheus-b"], query)
        nan = {frozenset(r["metric"].items()) for r in result if r["value"][1] == "NaN"}
        local = {frozenset(r["metric"].items()) for r in result} - nan
        stored = {frozenset(r["metric"].items())
                  for r in client.query(h.STORE, query, nocache="1")} - nan
        if local == stored:
            return None
        return (sorted(str(dict(x)) for x in local - stored)[:3],
                sorted(str(dict(x)) for x in stored - local)[:3])

    differ = {q: d for q in checked if (d := difference(q))}
    for _ in range(3):
        if not differ:
            break
        time.sleep(20)
        differ = {q: d for q in differ if (d := difference(q))}
    print(f"\ndashboards: {len(checked)} panel queries with data on replica b; "
          f"{len(checked) - len(differ)} return the same series from the store")
    assert not differ, differ
