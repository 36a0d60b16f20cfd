"""Faults on the running stack, as the engine handles them.

  * Prometheus killed with SIGKILL (a crash, not `docker stop`): its restart policy brings it
    back and the TSDB (WAL) keeps what it had;
  * Redis pushed over its memory limit: the kernel OOM-kills it, the engine records the OOM,
    the restart policy restarts it and the stack is healthy again;
  * `make down` + `make up` keep a Prometheus sample, an Alertmanager silence and a PostgreSQL
    row (named volumes); `make clean` removes the volumes that held them (and leaves the
    stack down: the overlays, next, start their own).
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta

import httpx

from dev.engine import daemon
from tests.engine.conftest import (
    ALERTMANAGER,
    ENGINE_OVERRIDE,
    PROMETHEUS,
    ROOT,
    Compose,
    make,
    prom_query,
    wait_for,
    wait_ports_free,
)

FILES = [ROOT / "compose.yaml", ENGINE_OVERRIDE]


def _sample_at(at: float) -> str:
    resp = httpx.get(f"{PROMETHEUS}/api/v1/query",
                     params={"query": 'up{job="prometheus"}', "time": f"{at:.3f}"}, timeout=10)
    resp.raise_for_status()
    result = resp.json()["data"]["result"]
    return json.dumps(result, sort_keys=True)


def _psql(bundle: Compose, sql: str) -> str:
    cid = bundle.container("postgres")
    out = bundle.engine.docker("exec", cid, "psql", "-U", "apollonia", "-d", "apollonia",
                               "-At", "-c", sql)
    return out.stdout.decode().strip()


def test_prometheus_killed_restarts_with_its_tsdb(bundle: Compose) -> None:
    wait_for("a scrape of Prometheus itself", lambda: prom_query('up{job="prometheus"}'), 60)
    before = time.time() - 5
    sample = _sample_at(before)
    assert '"1"' in sample, sample
    state = bundle.inspect("prometheus")["State"]
    restarts = bundle.inspect("prometheus")["RestartCount"]
    os.kill(state["Pid"], signal.SIGKILL)
    wait_for("Prometheus restarted by its policy",
             lambda: bundle.inspect("prometheus")["RestartCount"] > restarts, 60, 1)
    bundle.wait_healthy(["prometheus"], timeout=120)
    assert _sample_at(before) == sample, "the sample taken before the kill is gone"


def test_redis_over_its_memory_limit_is_oom_killed_and_restarted(bundle: Compose) -> None:
    cid = bundle.container("redis")
    limit = bundle.inspect("redis")["HostConfig"]["Memory"]
    restarts = bundle.inspect("redis")["RestartCount"]
    since = datetime.now(UTC) - timedelta(seconds=2)
    # Lift Redis' own cap (48mb, LRU), then one value four times the container's limit:
    # SETRANGE zero-fills up to the offset at once. 4x, because the engine lets a container
    # swap as much again as its limit where the host has swap (memory-swap defaults to twice
    # the memory limit).
    bundle.engine.docker("exec", cid, "redis-cli", "CONFIG", "SET", "maxmemory", "0")
    bundle.engine.docker("exec", cid, "redis-cli", "SETRANGE", "big", str(4 * limit), "x",
                         check=False, timeout=90)
    wait_for("redis restarted", lambda: bundle.inspect("redis")["RestartCount"] > restarts, 60, 1)
    events = bundle.engine.docker(
        "events", "--since", since.isoformat(), "--until", datetime.now(UTC).isoformat(),
        "--filter", f"container={cid}", "--filter", "event=oom", "--format", "{{.Action}}",
        timeout=30).stdout.decode().split()
    assert "oom" in events, "the engine recorded no OOM for redis"
    bundle.wait_healthy(timeout=180)


def test_down_and_up_keep_state_and_clean_removes_it(engine: daemon.Engine,
                                                     bundle: Compose) -> None:
    at = time.time() - 5
    sample = _sample_at(at)
    now = datetime.now(UTC)
    silence = httpx.post(f"{ALERTMANAGER}/api/v2/silences", timeout=10, json={
        "matchers": [{"name": "alertname", "value": "EngineSuiteProof", "isRegex": False}],
        "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=2)).isoformat(),
        "createdBy": "tests/engine", "comment": "kept across make down/up"})
    silence.raise_for_status()
    silence_id = silence.json()["silenceID"]
    _psql(bundle, "CREATE TABLE IF NOT EXISTS engine_proof (v text); "
                  "INSERT INTO engine_proof VALUES ('kept');")

    for target in ("down", "up"):
        if target == "up":
            wait_ports_free(bundle)
        proc = make(engine, target, files=FILES)
        assert proc.returncode == 0, f"make {target}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    assert _sample_at(at) == sample
    got = httpx.get(f"{ALERTMANAGER}/api/v2/silence/{silence_id}", timeout=10)
    assert got.status_code == 200 and got.json()["status"]["state"] == "active", got.text
    assert _psql(bundle, "SELECT v FROM engine_proof;") == "kept"

    proc = make(engine, "clean", files=FILES)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    volumes = engine.docker("volume", "ls", "--quiet", "--filter",
                            "label=com.docker.compose.project=apollonia").stdout.decode().split()
    kept = [v for v in volumes if v.endswith(("prometheus-data", "alertmanager-data",
                                              "postgres-data"))]
    assert not kept, f"make clean left {kept}"
    # The stack stays down: the overlays that follow start their own.
