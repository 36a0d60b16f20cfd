"""Incidents on the native run's real PostgreSQL, Redis and RabbitMQ, for the live proofs of
the database, cache and queue alerts (tests/integration/test_live_dependencies.py).

Each incident is a short script run in a background thread, started together with the
scenario of test_live_alerting.py (t = 0) so the slow waits overlap; the tests then check what
each script recorded. The real rules, `for` durations and routes are used; every wait is
computed from the loaded configuration (scrape + evaluation interval + `for` + group_wait +
margin) like the other live tests. Typical timeline:

  postgres  82 connections held open            HighDatabaseConnections at the sink  ~170 s
            then (and once `slow` is done) PostgreSQL stopped: PostgresDown at the
            sink ~260 s, and symptom alerts posted meanwhile are inhibited; started again
  slow      once the api runs (the scenario stops it until ~80 s): db_latency_seconds=0.8,
            real pg_sleep in every query's session  SlowDatabaseQueries pending  ~125 s
  redis     Redis stopped                         RedisDown at the sink        ~85 s
  rabbitmq  analyzer's consumer paused, 150 jobs published: the backlog in rabbitmq_* and
            RabbitMQQueueNoConsumers / RabbitMQQueueBacklogGrowing pending  ~30 s;
            memory + disk alarm (rabbitmqctl)      RabbitMQResourceAlarm at the sink ~90 s;
            MLProcessingBacklog pending once the api runs ~110 s; node stopped:
            RabbitMQNodeDown at the sink ~200 s; started again, consumer resumed

Why this order: there is one PostgreSQL, and HighDatabaseConnections (2m + 30s group_wait)
needs it up while PostgresDown needs it down, so those two cannot overlap; stopping it last
keeps it up for everything else that uses it (the api's restart in the scenario waits for
the database to be healthy). The queue's pending alerts need RabbitMQ up, so the node goes
down only after them. Everything is undone at the end, also when a step fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from native import deps
from native import stack as native
from tests.integration.alerting import (
    AlertRule,
    alert_rule,
    evaluation_interval,
    routes_for,
    scrape_interval,
)

MARGIN = 25.0  # scheduling slack on top of every computed deadline (s)
EVAL = evaluation_interval()
HELD_CONNECTIONS = 82  # + the api's pool (>= 1) is over 80% of max_connections (100)
BACKLOG = 150  # messages published while the consumer is paused (> 100: MLProcessingBacklog)
SLOW_QUERY_S = 0.8  # db_latency_seconds: p95 well above SlowDatabaseQueries' 0.5 s
PROM = "http://127.0.0.1:9090"
AM = "http://127.0.0.1:9093"
SINK = "http://127.0.0.1:5001"
API = "http://127.0.0.1:8000"
ANALYZER = "http://127.0.0.1:8001"


class StepFailed(AssertionError):
    pass


# Set when the tests are over: every wait gives up at once, and the incidents undo themselves.
STOP = threading.Event()


@dataclass
class Outcome:
    """What one incident did and saw, for its test (and the failure report)."""

    name: str
    events: dict[str, float] = field(default_factory=dict)  # step -> time it happened
    facts: dict[str, Any] = field(default_factory=dict)  # API answers worth asserting on
    errors: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    deadline: float = 0.0  # latest time the incident may still be running (s since epoch)

    def mark(self, step: str) -> float:
        self.events[step] = time.time()
        return self.events[step]

    def wait_for(self, step: str) -> bool:
        """Block until `step` happened or the incident ended (True if the step happened)."""
        while step not in self.events and not self.done.is_set():
            if time.time() > self.deadline + MARGIN:
                break
            self.done.wait(1.0)
        return step in self.events

    def report(self) -> str:
        return json.dumps({"events": self.events, "errors": self.errors,
                           "facts": self.facts}, indent=1, default=str)[:6000]


def deadline_for(rule: AlertRule, job: str, labels: dict[str, str]) -> float:
    """Worst case from the cause to the notification: scrape, evaluation (pending), `for`,
    evaluation (firing), the route's group_wait."""
    route = routes_for({"alertname": rule.name, **rule.labels, **labels})[0]
    return scrape_interval(job) + EVAL + rule.hold + EVAL + route.group_wait + MARGIN


# --- the APIs ----------------------------------------------------------------------------------


class Apis:
    """Prometheus, Alertmanager, the sink and the workload, from one thread."""

    def __init__(self) -> None:
        self.client = httpx.Client(timeout=10)

    def query(self, expr: str) -> list[dict[str, Any]]:
        r = self.client.get(f"{PROM}/api/v1/query", params={"query": expr})
        r.raise_for_status()
        return r.json()["data"]["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def prom_alerts(self, name: str, **labels: str) -> list[dict[str, Any]]:
        r = self.client.get(f"{PROM}/api/v1/alerts")
        r.raise_for_status()
        return [a for a in r.json()["data"]["alerts"] if a["labels"].get("alertname") == name
                and all(a["labels"].get(k) == v for k, v in labels.items())]

    def am_alerts(self, **labels: str) -> list[dict[str, Any]]:
        params = [("filter", f'{k}="{v}"') for k, v in labels.items()]
        params += [("silenced", "true"), ("inhibited", "true"), ("active", "true")]
        r = self.client.get(f"{AM}/api/v2/alerts", params=params)
        r.raise_for_status()
        return r.json()

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        self.client.post(f"{AM}/api/v2/alerts", json=alerts).raise_for_status()

    def sink(self, since: float, **labels: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(receiver, status, alert) of every notified alert with `labels` after `since`."""
        r = self.client.get(f"{SINK}/notifications")
        r.raise_for_status()
        out = []
        for note in r.json():
            if note["received_at"] < since:
                continue
            for alert in note["payload"].get("alerts", []):
                if all(alert["labels"].get(k) == v for k, v in labels.items()):
                    out.append((note["payload"].get("receiver", note["receiver"]),
                                alert["status"], alert))
        return out

    def faults(self, url: str, changes: dict[str, Any] | None = None) -> dict[str, Any]:
        if changes is None:
            r = self.client.get(f"{url}/admin/faults")
        else:
            r = self.client.post(f"{url}/admin/faults", json=changes)
        r.raise_for_status()
        return r.json()

    def up(self, url: str) -> bool:
        try:
            return self.client.get(f"{url}/health/live", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


def wait(check: Callable[[], Any], until: float, what: str, interval: float = 2.0) -> Any:
    """Poll `check` until truthy; StepFailed once the clock passes `until`."""
    while True:
        with contextlib.suppress(httpx.HTTPError):
            got = check()
            if got:
                return got
        if STOP.is_set():
            raise StepFailed(f"stopped while waiting for {what}")
        if time.time() >= until:
            raise StepFailed(f"timed out waiting for {what}")
        time.sleep(interval)


def notified(apis: Apis, out: Outcome, name: str, since: float, until: float,
             key: str = "", **labels: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Wait for `name` (with `labels`) firing at the sink; record it under `key` or `name`."""
    got = wait(lambda: [n for n in apis.sink(since, alertname=name, **labels)
                        if n[1] == "firing"], until, f"{name} {labels} at the webhook sink")
    key = key or name
    out.mark(f"{key} notified")
    out.facts[f"{key} receivers"] = sorted({r for r, _, _ in got})
    out.facts[f"{key} labels"] = got[0][2]["labels"]
    return got


def seen_in_prometheus(apis: Apis, out: Outcome, name: str, until: float,
                       states: tuple[str, ...] = ("pending", "firing"), **labels: str) -> dict:
    alert = wait(lambda: next((a for a in apis.prom_alerts(name, **labels)
                               if a["state"] in states), None),
                 until, f"{name} {labels} {'/'.join(states)} in Prometheus")
    out.mark(f"{name} {alert['state']}")
    out.facts[f"{name} alert"] = alert
    return alert


# --- the incidents ---------------------------------------------------------------------------


def redis_down(out: Outcome) -> None:
    apis = Apis()
    rule = alert_rule("RedisDown")
    try:
        native.ctl("stop", "redis", check=True)
        stopped = out.mark("redis stopped")
        notified(apis, out, rule.name, stopped,
                 stopped + deadline_for(rule, "redis", {"env": "native"}), env="native")
        out.facts["redis_up"] = apis.value('redis_up{job="redis", env="native"}')
    finally:
        native.ctl("start", "redis")
        out.mark("redis started")


async def _connect(dsn: str, n: int) -> list[Any]:
    import asyncpg

    return list(await asyncio.gather(*[asyncpg.connect(dsn, timeout=10) for _ in range(n)]))


async def _close_all(conns: list[Any]) -> None:
    await asyncio.gather(*[c.close(timeout=5) for c in conns], return_exceptions=True)


def postgres(out: Outcome, slow: Outcome, run: str) -> None:
    """HighDatabaseConnections from real connections, then PostgresDown and its inhibition."""
    apis = Apis()
    loop = asyncio.new_event_loop()
    conns: list[Any] = []
    posted: list[dict[str, Any]] = []
    hdc = alert_rule("HighDatabaseConnections")
    down = alert_rule("PostgresDown")
    try:
        dsn = deps.DSN_FILES["DATABASE_URL"].read_text().strip()
        conns = loop.run_until_complete(_connect(dsn, HELD_CONNECTIONS))
        held = out.mark("connections held")
        got = notified(apis, out, hdc.name, held,
                       held + deadline_for(hdc, "postgres", {"env": "native"}), env="native")
        out.facts["connections (exporter)"] = apis.value(
            'sum(pg_stat_activity_count{job="postgres", env="native"})')
        out.facts["max_connections (exporter)"] = apis.value(
            'max(pg_settings_max_connections{job="postgres", env="native"})')
        hdc_labels = got[0][2]["labels"]
        # SlowDatabaseQueries needs the database up: wait for its incident first.
        slow.done.wait(max(0.0, slow.deadline - time.time()))
        loop.run_until_complete(_close_all(conns))
        conns = []
        ends = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=15)).isoformat()
        slow_labels = slow.facts.get("SlowDatabaseQueries alert", {}).get(
            "labels", {"alertname": "SlowDatabaseQueries", "severity": "warning",
                       "service": "api", "env": "native"})

        def symptom(labels: dict[str, str], env: str = "native") -> dict[str, Any]:
            # test_run keeps them apart from Prometheus' own (resolved) copies
            return {"labels": {**labels, "env": env, "test_run": run},
                    "annotations": {"summary": "posted by the live dependency test"},
                    "endsAt": ends, "generatorURL": "http://127.0.0.1/integration-test"}

        # The control: the same alert from another environment, which the inhibition
        # (equal: [env]) must leave alone. Posted now, so its group_wait runs meanwhile; its
        # own service makes it its own group (group_by alertname, service).
        control = symptom({**hdc_labels, "service": f"postgres-control-{run}"},
                          env=f"native-control-{run}")
        native.ctl("stop", "postgres", check=True)
        stopped = out.mark("postgres stopped")
        apis.post_alerts([control])
        posted = [control]
        until = stopped + deadline_for(down, "postgres", {"env": "native"})
        wait(lambda: [a for a in apis.am_alerts(alertname=down.name, env="native")
                      if a["status"]["state"] == "active"], until,
             "PostgresDown active in Alertmanager")
        out.mark("PostgresDown in Alertmanager")
        # Alertmanager has PostgresDown: its symptoms, labelled like the real ones, arrive.
        symptoms = [symptom(hdc_labels), symptom(slow_labels)]
        apis.post_alerts(symptoms)
        posted += symptoms
        posted_at = out.mark("symptoms posted")
        notified(apis, out, down.name, stopped, until, env="native")
        control_route = routes_for(control["labels"])[0]
        notified(apis, out, hdc.name, stopped, stopped + control_route.group_wait + MARGIN,
                 key="control", test_run=run, env=control["labels"]["env"])
        time.sleep(max(0.0, posted_at + 2 - time.time()))  # the symptoms have been processed
        out.facts["symptoms in Alertmanager"] = [
            {"labels": a["labels"], "status": a["status"]}
            for a in apis.am_alerts(test_run=run, env="native")]
        out.facts["control in Alertmanager"] = [
            {"labels": a["labels"], "status": a["status"]}
            for a in apis.am_alerts(test_run=run, env=control["labels"]["env"])]
        source = apis.am_alerts(alertname=down.name, env="native")
        out.facts["PostgresDown fingerprints"] = [a["fingerprint"] for a in source]
        out.facts["symptoms notified"] = [
            n[2]["labels"] for n in apis.sink(posted_at, test_run=run, env="native")]
    finally:
        if conns:
            loop.run_until_complete(_close_all(conns))
        native.ctl("start", "postgres")
        out.mark("postgres started")
        if posted:
            past = dt.datetime.now(dt.UTC).isoformat()
            with contextlib.suppress(httpx.HTTPError):
                apis.post_alerts([{**a, "endsAt": past} for a in posted])
        loop.close()


def slow_queries(out: Outcome) -> None:
    """db_latency_seconds on the live api (re-applied if the scenario restarts it) until
    SlowDatabaseQueries goes pending while PostgreSQL really runs slow sessions (the exporter
    sees them waiting in pg_sleep). Its `for: 5m` is `make test-live-full`'s to wait out."""
    apis = Apis()
    rule = alert_rule("SlowDatabaseQueries")
    # enough 0.8 s queries in the 5m window for the p95: two api scrapes and evaluations
    fill = 2 * scrape_interval("apollonia-api") + 2 * EVAL + 30 + MARGIN
    # The p95 looks back 5 minutes: right after an earlier run it can still be high, so the
    # alert may be pending already. Recorded, and the proof then rests on this run's queries.
    out.facts["pending before"] = bool([a for a in apis.prom_alerts(rule.name, env="native")
                                        if a["state"] in ("pending", "firing")])
    def sleeping(since: float) -> str:  # sessions PostgreSQL reports waiting in pg_sleep
        return ('max_over_time(sum(pg_stat_activity_count{job="postgres", env="native",'
                ' datname="apollonia", state="active", wait_event="PgSleep"})'
                f'[{int(time.time() - since) + 1}s:])')

    try:
        applied = 0.0
        while not STOP.is_set():
            if apis.up(API) and apis.faults(API).get("db_latency_seconds") != SLOW_QUERY_S:
                apis.faults(API, {"db_latency_seconds": SLOW_QUERY_S})
                applied = out.mark("db_latency_seconds set")
                out.deadline = applied + fill + 10
            alert = next((a for a in apis.prom_alerts(rule.name, env="native")
                          if a["state"] in ("pending", "firing")), None)
            seen = applied and apis.value(sleeping(applied))
            if alert and seen:
                out.mark(f"{rule.name} {alert['state']}")
                out.facts[f"{rule.name} alert"] = alert
                out.facts["p95 (s)"] = apis.value(
                    'service:database_query_duration_seconds:p95_rate5m{env="native"}')
                out.facts["sessions in pg_sleep (exporter)"] = seen
                out.facts["longest slow transaction (exporter, s)"] = apis.value(
                    'max(max_over_time(pg_stat_activity_max_tx_duration{job="postgres",'
                    f' env="native", wait_event="PgSleep"}}[{int(time.time() - applied) + 1}s]))')
                return
            if applied and time.time() > applied + fill:
                raise StepFailed(f"timed out waiting for {rule.name} pending with slow sessions"
                                 " in PostgreSQL")
            time.sleep(2)
    finally:
        with contextlib.suppress(httpx.HTTPError):
            if apis.up(API):
                apis.faults(API, {"db_latency_seconds": 0})
        out.mark("db_latency_seconds cleared")


async def publish_jobs(url: str, n: int, run: str) -> None:
    """Publish `n` analysis jobs to analyzer_queue, as the api does."""
    import aio_pika

    connection = await aio_pika.connect_robust(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue("analyzer_queue", durable=True)
        for i in range(n):
            job = {"media_id": f"backlog-{run}-{i}", "format": "mp3", "size_bytes": 4096,
                   "request_id": f"backlog-{run}"}
            await channel.default_exchange.publish(
                aio_pika.Message(json.dumps(job).encode(), content_type="application/json",
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key="analyzer_queue")


def rabbitmq(out: Outcome, run: str) -> None:
    apis = Apis()
    alarm = alert_rule("RabbitMQResourceAlarm")
    node = alert_rule("RabbitMQNodeDown")
    queue = {"env": "native", "queue": "analyzer_queue"}
    alarms_on = False
    try:
        # A stalled analyzer: its consumer stops (knob), the jobs pile up in RabbitMQ.
        apis.faults(ANALYZER, {"consumer_paused": True})
        wait(lambda: not apis.client.get(f"{ANALYZER}/health").json()["checks"]
             ["message_queue"]["details"]["consuming"], time.time() + 30,
             "the analyzer's consumer gone", interval=0.5)
        asyncio.run(publish_jobs(deps.DSN_FILES["RABBITMQ_URL"].read_text().strip(), BACKLOG, run))
        published = out.mark("jobs published")
        scrape = scrape_interval("rabbitmq-queues")
        # both jobs' view: per queue (rabbitmq-queues) and the node's total (rabbitmq)
        backlog = wait(lambda: min(apis.value(
            'rabbitmq_detailed_queue_messages_ready{queue="analyzer_queue", env="native"}') or 0,
            apis.value('rabbitmq_queue_messages_ready{job="rabbitmq", env="native"}') or 0)
            >= BACKLOG, published + 2 * scrape + MARGIN, "the backlog in RabbitMQ's series")
        out.facts["backlog visible"] = backlog
        out.facts["ready (per queue)"] = apis.value(
            'rabbitmq_detailed_queue_messages_ready{queue="analyzer_queue", env="native"}')
        out.facts["consumers (per queue)"] = apis.value(
            'rabbitmq_detailed_queue_consumers{queue="analyzer_queue", env="native"}')
        out.facts["ready (node total)"] = apis.value(
            'rabbitmq_queue_messages_ready{job="rabbitmq", env="native"}')
        pending_by = published + scrape + 2 * EVAL + MARGIN
        for name in ("RabbitMQQueueNoConsumers", "RabbitMQQueueBacklogGrowing"):
            seen_in_prometheus(apis, out, name, pending_by, **queue)

        # A memory and a disk alarm, raised for real: publishers are blocked meanwhile.
        for args in (("set_vm_memory_high_watermark", "0.0001"),
                     ("set_disk_free_limit", "10000GB")):
            proc = deps.rabbitmqctl(*args)
            if proc.returncode != 0:
                raise StepFailed(f"rabbitmqctl {' '.join(args)}: {proc.stderr.strip()}")
        alarms_on = True
        raised = out.mark("alarms raised")
        until = raised + deadline_for(alarm, "rabbitmq", {"env": "native"})
        for kind in ("memory", "disk"):
            notified(apis, out, alarm.name, raised, until, env="native", alarm=kind)
            out.facts[f"{alarm.name} {kind}"] = out.facts[f"{alarm.name} labels"]
        _clear_alarms()
        alarms_on = False
        out.mark("alarms cleared")

        # MLProcessingBacklog: the api's view of the same queue (needs the api, which the
        # scenario stops until ServiceDown was notified; the api reads the depth every 5 s).
        ml = alert_rule("MLProcessingBacklog")
        wait(lambda: apis.up(API), published + 240, "the api running")
        seen_in_prometheus(apis, out, ml.name,
                           time.time() + 5 + scrape_interval("apollonia-api") + 2 * EVAL + MARGIN,
                           queue_name="analyzer_queue", env="native")
        out.facts["queue_messages_total (api)"] = apis.value(
            'queue_messages_total{queue_name="analyzer_queue", env="native"}')

        native.ctl("stop", "rabbitmq", check=True)
        stopped = out.mark("rabbitmq stopped")
        notified(apis, out, node.name, stopped,
                 stopped + deadline_for(node, "rabbitmq", {"env": "native"}), env="native")
        out.facts["MLProcessingBacklog while RabbitMQ is down"] = apis.prom_alerts(
            ml.name, env="native")
    finally:
        native.ctl("start", "rabbitmq")
        if alarms_on:
            with contextlib.suppress(Exception):
                native.wait_ready(["rabbitmq"], timeout=60)
                _clear_alarms()
        native.wait_ready(["rabbitmq"], timeout=60)
        with contextlib.suppress(httpx.HTTPError):
            apis.faults(ANALYZER, {"consumer_paused": False})
        out.mark("rabbitmq started, consumer resumed")


def _clear_alarms() -> None:
    deps.rabbitmqctl("set_vm_memory_high_watermark", "0.4")  # RabbitMQ's default
    deps.rabbitmqctl("set_disk_free_limit", "50MB")  # RabbitMQ's default


# --- running them ------------------------------------------------------------------------------


@dataclass
class Incidents:
    run: str
    started: float
    health: dict[str, Any]  # the api's /health before anything was broken
    flow: dict[str, Any]  # uploads reaching the analyzer through RabbitMQ, before anything
    outcomes: dict[str, Outcome]
    threads: list[threading.Thread]


def _thread(out: Outcome, target: Callable[..., None], *args: Any) -> threading.Thread:
    def body() -> None:
        try:
            target(out, *args)
        except Exception as exc:  # recorded for the test, the thread always finishes
            out.errors.append(f"{type(exc).__name__}: {exc}")
            if not isinstance(exc, StepFailed):
                out.errors.append(traceback.format_exc()[-1500:])
        finally:
            out.mark("done")
            out.done.set()

    return threading.Thread(target=body, name=f"incident-{out.name}", daemon=True)


async def _queue_state(url: str) -> tuple[int, int]:
    """(ready messages, consumers) of analyzer_queue, asked of RabbitMQ itself."""
    import aio_pika

    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("analyzer_queue", passive=True)
        result = queue.declaration_result
        return result.message_count, result.consumer_count


def _flow(apis: Apis) -> dict[str, Any]:
    """Evidence that uploads reach the analyzer through RabbitMQ: the consumer as RabbitMQ
    itself reports it now, and what its plugin counted over the last two minutes."""
    ready, consumers = asyncio.run(_queue_state(deps.DSN_FILES["RABBITMQ_URL"].read_text()
                                                .strip()))
    node = '{job="rabbitmq", env="native"}'
    return {
        "analyzer health": apis.client.get(f"{ANALYZER}/health").json(),
        "consumers": consumers, "ready": ready,
        "published in 2m": apis.value(
            f"sum(increase(rabbitmq_global_messages_received_total{node}[2m]))"),
        "delivered to consumers (manual ack) in 2m": apis.value(
            f"sum(increase(rabbitmq_global_messages_delivered_consume_manual_ack_total{node}[2m]))"),
    }


@contextlib.contextmanager
def started() -> Iterator[Incidents]:
    """Start every incident now; on exit, stop waiting and undo everything."""
    run = uuid.uuid4().hex[:8]
    apis = Apis()
    health = apis.client.get(f"{API}/health").json()
    flow = _flow(apis)
    STOP.clear()
    outs = {name: Outcome(name) for name in ("redis", "postgres", "slow", "rabbitmq")}
    now = time.time()
    hdc = alert_rule("HighDatabaseConnections")
    down = alert_rule("PostgresDown")
    outs["slow"].deadline = now + 200  # until the api is back and the knob applied
    outs["redis"].deadline = now + deadline_for(alert_rule("RedisDown"), "redis", {}) + 10
    outs["postgres"].deadline = (now + deadline_for(hdc, "postgres", {"env": "native"})
                                 + 200 + deadline_for(down, "postgres", {"env": "native"}))
    outs["rabbitmq"].deadline = now + 600
    threads = [
        _thread(outs["redis"], redis_down),
        _thread(outs["slow"], slow_queries),
        _thread(outs["postgres"], postgres, outs["slow"], run),
        _thread(outs["rabbitmq"], rabbitmq, run),
    ]
    for t in threads:
        t.start()
    incidents = Incidents(run, now, health, flow, outs, threads)
    try:
        yield incidents
    finally:
        STOP.set()
        for t in threads:
            t.join(timeout=120)
        native.wait_ready(["postgres", "redis", "rabbitmq", "api", "analyzer"], timeout=60)
        # The timeline, seconds after the start, for whoever wonders how long each took.
        timeline = {name: {step: round(at - now, 1) for step, at in out.events.items()}
                    for name, out in outs.items()}
        (native.LOGS / "incidents.json").write_text(json.dumps(
            {"started": now, "timeline": timeline,
             "errors": {n: o.errors for n, o in outs.items() if o.errors}}, indent=1))
