"""Trace retention on a stack that runs for weeks, over simulated days.

Jaeger 2.20 (rotation.periodic) writes each day to a new tracing-jaeger-span-YYYY-MM-DD index
that Elasticsearch creates on the first write, from Jaeger's own index template: it carries
no lifecycle policy (internal/storage/elasticsearch/esclient/index_templates/jaeger-span.json:
a policy only with auto_rollover). The trace-retention service (compose.yaml) runs
elasticsearch/setup.sh every 10 minutes, which attaches the apollonia-traces policy to every
tracing-jaeger-* index; ILM then deletes each index TRACES_RETENTION_DAYS after its creation.

The recording Elasticsearch stand-in (es_standin.py) keeps the clock: each simulated day
Jaeger's bulk writes create that day's indices, the service runs its rounds, and ILM's delete
phase runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.logs_traces.conftest import ES_DIR, ROOT, load_yaml
from tests.logs_traces.es_standin import ElasticsearchStandIn

SCRIPT = ES_DIR / "setup.sh"
SHELL = shutil.which("dash") or shutil.which("sh")
PASSWORD = "retention-test"
START = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 12
RETENTION_DAYS = 7

pytestmark = pytest.mark.skipif(
    SHELL is None or shutil.which("curl") is None, reason="needs sh and curl on PATH"
)


def retention_service() -> dict:
    return load_yaml(ROOT / "compose.yaml")["services"]["trace-retention"]


def one_round(es: ElasticsearchStandIn, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    env = {"PATH": "/usr/bin:/bin", "ES_URL": es.url, "ES_PASSWORD_FILE": str(pw),
           "ES_WAIT_SECONDS": "5", "ES_RETRY_SECONDS": "1",
           "TRACES_RETENTION_DAYS": str(RETENTION_DAYS)}
    result = subprocess.run([SHELL, str(SCRIPT)], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def jaeger_writes_a_day(es: ElasticsearchStandIn, day: datetime) -> None:
    """What Jaeger's bulk indexer sends: index ops into the day's span and service indices."""
    lines = []
    for kind, doc in (("span", {"traceID": "ab" * 16, "startTime": 1}),
                      ("service", {"serviceName": "api", "operationName": "GET /media"})):
        index = f"tracing-jaeger-{kind}-{day:%Y-%m-%d}"
        lines += [json.dumps({"index": {"_index": index}}), json.dumps(doc)]
    es.bulk(("\n".join(lines) + "\n").encode(), None)


def simulate(tmp_path: Path, rounds_per_day: bool) -> ElasticsearchStandIn:
    es = ElasticsearchStandIn(password=PASSWORD)
    clock = {"now": START.timestamp()}
    es.now = lambda: clock["now"]
    # Jaeger's own template for its span and service indices (create_mappings): wins for
    # tracing-jaeger-* (ours match apollonia-* only) and names no lifecycle policy.
    for kind in ("span", "service"):
        es.templates[f"tracing-jaeger-{kind}"] = {
            "index_patterns": f"tracing-jaeger-{kind}-*", "priority": 0,
            "template": {"settings": {"index.number_of_shards": 1}}}
    try:
        one_round(es, tmp_path)  # the one-shot elasticsearch-setup at `make up`, day 0
        for n in range(DAYS):
            day = START + timedelta(days=n)
            clock["now"] = (day + timedelta(minutes=5)).timestamp()
            jaeger_writes_a_day(es, day)
            if rounds_per_day:  # one of the service's rounds after the day's first spans
                clock["now"] = (day + timedelta(hours=1)).timestamp()
                one_round(es, tmp_path)
            clock["now"] = (day + timedelta(hours=23)).timestamp()
            es.run_ilm()
    finally:
        es.stop()
    return es


def test_every_daily_trace_index_gets_the_policy_and_is_deleted_on_time(tmp_path):
    es = simulate(tmp_path, rounds_per_day=True)
    left = sorted(es.indices)
    last = START + timedelta(days=DAYS - 1)
    # ILM deletes an index 7 days after its creation: on the last day's evening the indices
    # of the last 7 days (created at 00:05, at most 6 days 23 hours ago) remain.
    expected_days = [last - timedelta(days=k) for k in range(RETENTION_DAYS)]
    assert left == sorted(
        f"tracing-jaeger-{kind}-{d:%Y-%m-%d}" for d in expected_days for kind in ("span", "service")
    )
    for index in es.indices.values():
        assert index.settings["index.lifecycle.name"] == "apollonia-traces", index.name
    policy = es.policies["apollonia-traces"]["policy"]["phases"]["delete"]
    assert policy["min_age"] == f"{RETENTION_DAYS}d"


def test_without_the_service_every_index_created_after_start_up_is_kept_forever(tmp_path):
    """The defect the service fixes: the one-shot alone attaches the policy to nothing."""
    es = simulate(tmp_path, rounds_per_day=False)
    assert len(es.indices) == 2 * DAYS
    assert not any("index.lifecycle.name" in i.settings for i in es.indices.values())


def test_compose_runs_the_retention_service_often_enough():
    svc = retention_service()
    env = svc["environment"]
    assert svc["entrypoint"] == ["bash", "/setup/setup.sh"]
    # More than one round a day, so a day's index never waits past its first day.
    assert int(env["ES_SETUP_REPEAT_SECONDS"]) <= 86400 // 4
    assert env["TRACES_RETENTION_DAYS"] == "${TRACES_RETENTION_DAYS:-7}"
    # Healthy only while rounds succeed (setup.sh --healthcheck reads this heartbeat).
    assert svc["healthcheck"]["test"] == ["CMD", "bash", "/setup/setup.sh", "--healthcheck"]
    assert env["ES_SETUP_HEARTBEAT_FILE"].startswith("/tmp/") and "/tmp" in svc["tmpfs"]
    assert svc["read_only"] is True and svc["user"] != "0:0"
