"""The PostgreSQL and Redis paths against real, throw-away servers on loopback.

Skipped, with the reason, when the server binaries (or, for PostgreSQL, a non-root user)
are missing: the simulated catalog and cache are covered by the other tests either way."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from apollonia.api import ApiConfig

from .helpers import drain, run, samples, stack, upload, value


def _pg_bin() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pg = _pg_bin()
    if pg is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    prefix: list[str] = []
    base = tmp_path_factory.mktemp("pg")
    if os.geteuid() == 0:  # postgres refuses to run as root
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
        prefix = ["runuser", "-u", "nobody", "--"]
        os.chmod(base, 0o777)
        for parent in base.parents:  # nobody must be able to traverse into the temp dir
            if str(parent).startswith(str(tmp_path_factory.getbasetemp().parent)):
                os.chmod(parent, os.stat(parent).st_mode | 0o111)
    data, port = base / "data", _free_port()

    def pg_run(*args: str) -> None:
        r = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=60)
        if r.returncode:
            log = base / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            pytest.fail(f"{Path(args[0]).name} failed ({r.returncode}): {r.stderr}{tail}")

    pg_run(str(pg / "initdb"), "-D", str(data), "-U", "apollonia", "--auth=trust",
           "-E", "UTF8", "--no-sync")
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
    pg_run(str(pg / "pg_ctl"), "-D", str(data), "-o", opts, "-w", "-l", str(base / "log"),
           "start")
    try:
        yield f"postgresql://apollonia@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "-w", "stop"], capture_output=True, timeout=60)


def test_catalog_in_postgresql(postgres_url: str) -> None:
    config = ApiConfig(analyzer_url="http://analyzer.test", database_url=postgres_url)

    async def main() -> None:
        async with stack(api_config=config) as s:
            media = await upload(s.api_client, "ogg")
            await drain(s)
            r = await s.api_client.get(f"/api/v1/media/{media['id']}")
            assert r.status_code == 200 and r.json()["format"] == "ogg"
            listed = (await s.api_client.get("/api/v1/media")).json()["items"]
            assert media["id"] in {row["id"] for row in listed}
            health = (await s.api_client.get("/health")).json()["checks"]["database"]
            assert health["status"] == "healthy" and health["details"]["query_result"] == 1
            await s.api.state.db.refresh_counts()
            assert value(s.api, "media_files_total", format="ogg") == 1
            counts = {dict(k[1])["query_type"]: v for k, v in samples(s.api).items()
                      if k[0] == "database_query_duration_seconds_count"}
            assert counts["insert"] == 1 and counts["select"] >= 1 and counts["count"] >= 1

    run(main)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server not installed")
    port = _free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path_factory.mktemp("redis"))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("redis-server did not start")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cache_in_redis(redis_url: str) -> None:
    config = ApiConfig(analyzer_url="http://analyzer.test", redis_url=redis_url)

    async def main() -> None:
        async with stack(api_config=config) as s:
            for _ in range(5):
                assert (await s.api_client.get("/api/v1/media")).status_code == 200
            assert value(s.api, "cache_operations_total", operation="get", result="miss") == 1
            assert value(s.api, "cache_operations_total", operation="get", result="hit") == 4
            assert value(s.api, "cache_operations_total", operation="set", result="ok") == 1
            assert value(s.api, "cache_hit_ratio") == 0.8
            health = (await s.api_client.get("/health")).json()["checks"]["redis"]
            assert health["status"] == "healthy" and health["details"]["test_passed"] is True

    run(main)


RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


@pytest.fixture(scope="module")
def rabbitmq_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not RABBITMQ_SERVER.exists():
        pytest.skip("rabbitmq-server not installed")
    base = tmp_path_factory.mktemp("rabbitmq")
    port, dist_port, epmd_port = _free_port(), _free_port(), _free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(base),  # the Erlang cookie goes here, not in the real home
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_NODENAME": f"apollonia-test-{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "ERL_EPMD_PORT": str(epmd_port),  # a private epmd we can stop without touching others
    }
    proc = subprocess.Popen([str(RABBITMQ_SERVER)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None:
                pytest.fail(f"rabbitmq-server exited with {proc.returncode}")
            time.sleep(0.3)
        else:
            pytest.fail("rabbitmq-server did not listen within 60 s")
        yield f"amqp://guest:guest@127.0.0.1:{port}/"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the group this fixture started, nothing else
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
        subprocess.run([epmd, "-port", str(epmd_port), "-kill"], env=env,
                       capture_output=True, timeout=10)


def test_jobs_flow_through_rabbitmq(rabbitmq_url: str) -> None:
    config = ApiConfig(analyzer_url="http://analyzer.test", rabbitmq_url=rabbitmq_url)

    async def main() -> None:
        async with stack(api_config=config) as s:
            for _ in range(3):
                await upload(s.api_client, "wav")
            predictions, consumed = 0.0, []
            # The consumer's span ends after the analyzer answered: wait for both.
            for _ in range(50):
                await asyncio.sleep(0.1)
                predictions = sum(v for k, v in samples(s.analyzer).items()
                                  if k[0] == "ml_model_prediction_duration_seconds_count")
                consumed = [sp for sp in s.api_spans.get_finished_spans()
                            if sp.name == "analyzer_queue process"]
                if predictions >= 6 and len(consumed) >= 3:
                    break
            assert predictions == 6, "3 queued jobs x 2 models should reach the analyzer"
            assert len(consumed) == 3
            health = (await s.api_client.get("/health")).json()["checks"]["message_queue"]
            assert health["status"] == "healthy"
            assert value(s.api, "queue_messages_total", queue_name="analyzer_queue") == 0

    run(main)
