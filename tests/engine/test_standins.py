"""The stand-ins (dev/engine/standins/) answer what the bundle sends, driven by the real clients.

Each test starts a stand-in as its own process on 127.0.0.1 and free ports (STANDIN_BIND,
STANDIN_PORT_*), with the command line and environment compose gives the real program, talks
to it with the client the bundle really uses (elasticsearch/setup.sh through bash and curl, the
OpenTelemetry OTLP/HTTP exporter, msgpack forward messages as Docker's fluentd driver sends
them, httpx), and stops it with SIGTERM (exit 0 expected).

Interpreter: Debian's /usr/bin/python3 when it has the three packages the images install
(python3-msgpack, python3-grpcio, python3-yaml: the very runtime of the images), else this
virtualenv's Python (then the OTLP/gRPC check is skipped: no grpcio here); STANDIN_TEST_PYTHON
chooses another.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
STANDINS = ROOT / "dev" / "engine" / "standins"
DEBIAN_PYTHON = Path("/usr/bin/python3")


def _has_image_runtime(python: Path) -> bool:
    if not python.exists():
        return False
    probe = subprocess.run([str(python), "-c", "import grpc, msgpack, yaml"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


PYTHON = os.environ.get("STANDIN_TEST_PYTHON") or (
    str(DEBIAN_PYTHON) if _has_image_runtime(DEBIAN_PYTHON) else sys.executable)


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: object) -> None:
    """A JSON answer from a test server standing in for what a stand-in talks to."""
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Running:
    proc: subprocess.Popen
    ports: dict[str, int]
    log: Path

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def standin(name: str, tmp_path: Path, ports: list[str], args: list[str] | None = None,
            env: dict[str, str] | None = None, check: str | None = None) -> Iterator[Running]:
    """Run dev/engine/standins/<name>.py until the block ends, then SIGTERM it."""
    chosen = {p: free_port() for p in ports}
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "STANDIN_BIND": "127.0.0.1",
               **{f"STANDIN_PORT_{p.upper()}": str(n) for p, n in chosen.items()},
               **(env or {})}
    log = tmp_path / f"{name}-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([PYTHON, str(STANDINS / f"{name}.py"), *(args or [])],
                                env=environ, stdout=out, stderr=subprocess.STDOUT,
                                cwd=tmp_path)
    running = Running(proc, chosen, log)
    try:
        probe = check or ports[0]
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, f"{name} exited {proc.returncode}:\n{running.output()}"
            try:
                if httpx.get(f"{running.url(probe)}/standin/info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{name} not up:\n{running.output()}"
            time.sleep(0.1)
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{running.output()}"


# --- Elasticsearch ----------------------------------------------------------------------------

ES_PASSWORD = "first-password"
ES_ENV = {
    # compose.yaml's elasticsearch environment (ELASTIC_PASSWORD: the entrypoint wrapper
    # reads ELASTIC_PASSWORD_FILE into it).
    "discovery.type": "single-node",
    "cluster.name": "apollonia",
    "cluster.routing.allocation.disk.watermark.low": "2gb",
    "cluster.routing.allocation.disk.watermark.high": "1gb",
    "cluster.routing.allocation.disk.watermark.flood_stage": "512mb",
    "ES_JAVA_OPTS": "-Xms512m -Xmx512m",
    "xpack.security.enabled": "true",
    "xpack.security.http.ssl.enabled": "false",
    "ELASTIC_PASSWORD": ES_PASSWORD,
}


def es_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**ES_ENV, "path.data": str(tmp_path / "data"),
            "path.repo": str(tmp_path / "backups"), **extra}


def fluent_bit_bulk(index: str, docs: list[tuple[str, dict]]) -> bytes:
    """A bulk as the es output sends it (write_operation index, generate_id, no _type)."""
    return "".join(json.dumps({"index": {"_index": index, "_id": i}}) + "\n"
                   + json.dumps(d) + "\n" for i, d in docs).encode()


def run_setup(url: str, tmp_path: Path, password: str = ES_PASSWORD
              ) -> subprocess.CompletedProcess[str]:
    pw = tmp_path / "es_password"
    pw.write_text(password + "\n")
    env = {"PATH": "/usr/bin:/bin", "ELASTICSEARCH_URL": url,
           "ELASTICSEARCH_PASSWORD_FILE": str(pw), "ES_WAIT_SECONDS": "5",
           "ES_RETRY_SECONDS": "1", "LOGS_RETENTION_DAYS": "7", "TRACES_RETENTION_DAYS": "7"}
    return subprocess.run(["bash", str(ROOT / "elasticsearch" / "setup.sh")], env=env,
                          capture_output=True, text=True, timeout=60)


needs_curl = pytest.mark.skipif(not (shutil.which("bash") and shutil.which("curl")),
                                reason="needs bash and curl")


@needs_curl
def test_es_real_setup_script_then_logs_searchable_like_the_smoke_test(tmp_path):
    with standin("elasticsearch", tmp_path, ["http"], env=es_env(tmp_path)) as es:
        url = es.url("http")
        bad = run_setup(url, tmp_path, password="wrong-password")
        assert bad.returncode == 1 and "HTTP 401" in bad.stderr, bad.stderr
        done = run_setup(url, tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "elasticsearch-setup: done" in done.stdout
        client = httpx.Client(base_url=url, auth=("elastic", ES_PASSWORD), timeout=10)
        # What tests/smoke/test_containers.py reads back.
        template = client.get("/_index_template/apollonia-logs").json()
        assert template["index_templates"][0]["index_template"]["index_patterns"] == [
            "apollonia-*"]
        for policy in ("apollonia-logs", "apollonia-traces"):
            phases = client.get(f"/_ilm/policy/{policy}").json()[policy]["policy"]["phases"]
            assert phases["delete"]["min_age"] == "7d"
        # Before any index: a wildcard search finds nothing, a concrete name is a 404.
        assert client.post("/apollonia-*/_search", json={}).json()["hits"]["total"]["value"] == 0
        assert client.post("/apollonia-2026.11.29/_search", json={}).status_code == 404
        trace = "ab" * 16
        docs = [(f"id{n}", {"@timestamp": f"2026-11-29T10:00:0{n}.{n}00000001Z",
                            "service": "api" if n < 3 else "analyzer", "level": "INFO",
                            "message": f"request number {n}",
                            "trace_id": trace if n % 2 == 0 else "cd" * 16})
                for n in (4, 0, 3, 2, 1)]
        bulk = client.post("/_bulk", content=fluent_bit_bulk("apollonia-2026.11.29", docs),
                           headers={"Content-Type": "application/x-ndjson"}).json()
        assert bulk["errors"] is False and len(bulk["items"]) == 5
        # The new index took the template's settings: ILM policy, no replica -> green.
        settings = client.get("/apollonia-2026.11.29/_settings?flat_settings=true").json()
        flat = settings["apollonia-2026.11.29"]["settings"]
        assert flat["index.lifecycle.name"] == "apollonia-logs"
        assert client.get("/_cluster/health").json()["status"] == "green"
        # tests/smoke/test_logs_traces.py's query: terms on trace_id, sorted by @timestamp.
        query = {"size": 1000, "query": {"terms": {"trace_id": [trace]}},
                 "sort": [{"@timestamp": "asc"}]}
        hits = client.post("/apollonia-*/_search", json=query).json()["hits"]["hits"]
        assert [h["_id"] for h in hits] == ["id0", "id2", "id4"]
        ranged = {"query": {"bool": {
            "filter": [{"range": {"@timestamp": {"gte": "2026-11-29T10:00:02Z",
                                                 "lt": "2026-11-29T10:00:04Z"}}},
                       {"term": {"service": "analyzer"}}],
            "must": [{"match": {"message": "NUMBER"}}]}}}
        assert [h["_id"] for h in client.post("/apollonia-*/_search", json=ranged).json()[
            "hits"]["hits"]] == ["id3"]
        count = client.post("/apollonia-*/_count", json={"query": {"match_all": {}}}).json()
        assert count["count"] == 5
        rows = client.get("/_cat/indices?format=json").json()
        assert [(r["index"], r["docs.count"], r["health"]) for r in rows] == [
            ("apollonia-2026.11.29", "5", "green")]
        # An index with Elasticsearch's default replica count cannot be green on one node.
        assert client.put("/other").status_code == 200
        assert client.get("/_cluster/health").json()["status"] == "yellow"
        waited = client.get("/_cluster/health?wait_for_status=green&timeout=1s")
        assert waited.status_code == 408 and waited.json()["timed_out"] is True
        node = client.get("/_nodes/settings?flat_settings=true").json()["nodes"]
        (settings,) = [n["settings"] for n in node.values()]
        assert settings["cluster.routing.allocation.disk.watermark.low"] == "2gb"
        assert settings["cluster.routing.allocation.disk.watermark.flood_stage"] == "512mb"
        assert settings["cluster.name"] == "apollonia"
    assert '"POST /_bulk" 200' in es.output(), "one log line per request"
    assert ES_PASSWORD not in es.output()


def test_es_answers_what_the_exporter_reads(tmp_path):
    """prometheus-community/elasticsearch_exporter v1.10.0 defaults: GET /, cluster health,
    GET /_nodes/_local/stats (collector/cluster_info.go, cluster_health.go, nodes.go)."""
    with standin("elasticsearch", tmp_path, ["http"], env=es_env(tmp_path)) as es:
        client = httpx.Client(base_url=es.url("http"), auth=("elastic", ES_PASSWORD),
                              timeout=10)
        assert httpx.get(f"{es.url('http')}/", timeout=5).status_code == 401
        info = client.get("/")
        assert info.headers["X-elastic-product"] == "Elasticsearch"
        version = info.json()["version"]
        assert version["number"] == "9.5.1" and info.json()["cluster_name"] == "apollonia"
        semver = r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$"
        assert all(re.match(semver, version[k])
                   for k in ("number", "lucene_version"))
        client.post("/_bulk", content=fluent_bit_bulk("apollonia-x", [("a", {"m": 1}),
                                                                       ("b", {"m": 2})]))
        client.post("/_bulk", content=fluent_bit_bulk("apollonia-x", [("a", {"m": 3})]))
        health = client.get("/_cluster/health").json()
        assert health["number_of_nodes"] == 1 and health["cluster_name"] == "apollonia"
        stats = client.get("/_nodes/_local/stats").json()
        assert stats["cluster_name"] == "apollonia"
        (node,) = stats["nodes"].values()
        assert node["indices"]["indexing"]["index_total"] == 3
        assert node["indices"]["docs"]["count"] == 2
        assert node["jvm"]["mem"]["heap_max_in_bytes"] == 512 * 1024 * 1024
        assert 0 < node["jvm"]["mem"]["heap_used_in_bytes"] < 512 * 1024 * 1024
        (data,) = node["fs"]["data"]
        assert 0 < data["available_in_bytes"] <= data["total_in_bytes"]


def test_es_password_change_survives_a_restart_and_wins_over_the_env(tmp_path):
    env = es_env(tmp_path)
    with standin("elasticsearch", tmp_path, ["http"], env=env) as es:
        client = httpx.Client(base_url=es.url("http"), timeout=10)
        old = ("elastic", ES_PASSWORD)
        client.post("/_bulk", auth=old, content=fluent_bit_bulk("apollonia-a", [("1", {})]))
        short = client.put("/_security/user/elastic/_password", auth=old,
                           json={"password": "abc"})
        assert short.status_code == 400
        changed = client.put("/_security/user/elastic/_password", auth=old,
                             json={"password": "second-password"})
        assert changed.status_code == 200
        assert client.get("/", auth=old).status_code == 401
        assert client.get("/", auth=("elastic", "second-password")).status_code == 200
    # docker compose down/up: same volume, ELASTIC_PASSWORD still the first one.
    with standin("elasticsearch", tmp_path, ["http"], env=env) as es:
        client = httpx.Client(base_url=es.url("http"), timeout=10)
        assert client.get("/", auth=("elastic", ES_PASSWORD)).status_code == 401
        new = ("elastic", "second-password")
        assert client.post("/apollonia-*/_count", auth=new).json()["count"] == 1
        state = httpx.get(f"{es.url('http')}/standin/state").json()
        assert state["password_changed"] is True and "apollonia-a" in state["indices"]


def test_es_snapshot_and_restore_like_elasticsearch(tmp_path):
    with standin("elasticsearch", tmp_path, ["http"], env=es_env(tmp_path)) as es:
        client = httpx.Client(base_url=es.url("http"), auth=("elastic", ES_PASSWORD),
                              timeout=10)
        outside = client.put("/_snapshot/backups",
                             json={"type": "fs", "settings": {"location": str(tmp_path / "x")}})
        assert outside.status_code == 500
        assert outside.json()["error"]["type"] == "repository_exception"
        assert "path.repo" in outside.json()["error"]["reason"]
        location = tmp_path / "backups" / "nightly"
        registered = client.put("/_snapshot/backups",
                                json={"type": "fs", "settings": {"location": str(location)}})
        assert registered.status_code == 200, registered.text
        client.post("/_bulk", content=fluent_bit_bulk("apollonia-1", [("a", {"m": 1}),
                                                                       ("b", {"m": 2})]))
        taken = client.put("/_snapshot/backups/snap-1?wait_for_completion=true",
                           json={"indices": "apollonia-*", "include_global_state": False})
        assert taken.json()["snapshot"]["state"] == "SUCCESS"
        assert taken.json()["snapshot"]["indices"] == ["apollonia-1"]
        assert list(location.glob("*snap-1*")), "the snapshot lives in the fs repository"
        listed = client.get("/_snapshot/backups/_all").json()["snapshots"]
        assert [s["snapshot"] for s in listed] == ["snap-1"]
        assert client.get("/_snapshot/backups/nope").status_code == 404
        again = client.put("/_snapshot/backups/snap-1?wait_for_completion=true", json={})
        assert again.status_code == 400
        client.post("/_bulk", content=fluent_bit_bulk("apollonia-1", [("c", {"m": 3})]))
        over = client.post("/_snapshot/backups/snap-1/_restore?wait_for_completion=true",
                           json={"indices": "apollonia-*"})
        assert over.status_code == 500
        assert "open index with same name already exists" in over.json()["error"]["reason"]
        assert client.delete("/apollonia-1").status_code == 200
        restored = client.post("/_snapshot/backups/snap-1/_restore?wait_for_completion=true",
                               json={"indices": "apollonia-*"})
        assert restored.status_code == 200 and restored.json()["snapshot"]["indices"] == [
            "apollonia-1"]
        assert client.post("/apollonia-1/_count").json()["count"] == 2
        # A closed index may be restored over.
        assert client.post("/apollonia-1/_close").status_code == 200
        assert client.post("/apollonia-1/_search").status_code == 400
        assert client.post("/_snapshot/backups/snap-1/_restore",
                           json={"indices": "apollonia-1"}).json() == {"accepted": True}
        assert client.post("/apollonia-1/_count").json()["count"] == 2


# --- Jaeger -----------------------------------------------------------------------------------

JAEGER_PORTS = ["grpc", "http", "health", "query", "metrics"]


def jaeger_config(tmp_path: Path, es_url: str, password: str) -> Path:
    """jaeger/config.yaml with only the Elasticsearch address and the secret's path changed."""
    import yaml

    config = yaml.safe_load((ROOT / "jaeger" / "config.yaml").read_text())
    backend = config["extensions"]["jaeger_storage"]["backends"]["es_traces"]["elasticsearch"]
    backend["server_urls"] = [es_url]
    (tmp_path / "es_password").write_text(password + "\n")
    backend["auth"]["basic"]["password_file"] = str(tmp_path / "es_password")
    path = tmp_path / "jaeger.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def otel_spans(endpoint: str | None, trace_parent=None):
    """Three spans as the workload makes them: api GET /media -> child, analyzer job."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    providers = []
    for service in ("api", "analyzer"):
        provider = TracerProvider(resource=Resource.create({"service.name": service,
                                                            "service.version": "1.0"}))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        if endpoint:
            provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        providers.append(provider)
    api, analyzer = (p.get_tracer("test") for p in providers)
    with api.start_as_current_span("GET /api/v1/media", kind=trace.SpanKind.SERVER) as root:
        root.set_attribute("http.status_code", 201)
        root.set_attribute("ratio", 0.5)
        root.set_attribute("cached", True)
        with api.start_as_current_span("publish analyzer_queue"):
            pass
        with analyzer.start_as_current_span("analyze", kind=trace.SpanKind.CONSUMER) as job:
            job.set_status(trace.Status(trace.StatusCode.ERROR, "boom"))
    for provider in providers:
        provider.shutdown()
    return memory.get_finished_spans()


def test_jaeger_protobuf_reader_reads_what_the_real_exporter_encodes():
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from dev.engine.standins import jaeger

    finished = otel_spans(None)
    decoded = jaeger.decode_protobuf(encode_spans(finished).SerializeToString())
    assert len(decoded) == 3
    by_name = {s.name: s for s in decoded}
    for span in finished:
        got = by_name[span.name]
        assert got.trace_id == f"{span.context.trace_id:032x}"
        assert got.span_id == f"{span.context.span_id:016x}"
        assert got.parent_span_id == (f"{span.parent.span_id:016x}" if span.parent else "")
        assert (got.start_ns, got.end_ns) == (span.start_time, span.end_time)
        assert got.service == span.resource.attributes["service.name"]
    root = by_name["GET /api/v1/media"]
    assert root.attributes == {"http.status_code": 201, "ratio": 0.5, "cached": True}
    assert root.kind == 2 and by_name["analyze"].status_code == 2


def test_jaeger_takes_otlp_and_answers_the_query_api(tmp_path):
    from dev.engine.standins.elasticsearch import ElasticsearchStandIn

    es = ElasticsearchStandIn(password="es-pw")
    try:
        config = jaeger_config(tmp_path, es.url, "es-pw")
        with standin("jaeger", tmp_path, JAEGER_PORTS, ["--config", str(config)],
                     env={"GOMEMLIMIT": "160MiB", "STANDIN_OPTIONAL_GRPC": "1"},
                     check="query") as jaeger:
            status = httpx.get(f"{jaeger.url('health')}/status", timeout=5).json()
            assert status["healthy"] is True and status["status"] == "StatusOK"
            finished = otel_spans(f"{jaeger.url('http')}/v1/traces")
            trace_id = f"{finished[0].context.trace_id:032x}"
            query = httpx.Client(base_url=jaeger.url("query"), timeout=5)
            assert query.get("/api/services").json()["data"] == ["analyzer", "api"]
            # Jaeger's JSON may drop leading zeros; the smoke test compares numbers.
            data = query.get(f"/api/traces/{trace_id.lstrip('0')}").json()["data"]
            (trace,) = data
            assert {p["serviceName"] for p in trace["processes"].values()} == {"api", "analyzer"}
            spans = {s["operationName"]: s for s in trace["spans"]}
            root = spans["GET /api/v1/media"]
            assert root["references"] == []
            assert spans["analyze"]["references"] == [
                {"refType": "CHILD_OF", "traceID": trace_id, "spanID": root["spanID"]}]
            assert trace["processes"][spans["analyze"]["processID"]]["serviceName"] == "analyzer"
            assert {"key": "error", "type": "bool", "value": True} in spans["analyze"]["tags"]
            assert root["duration"] >= 0 and root["startTime"] > 1_600_000_000_000_000
            missing = query.get(f"/api/traces/{'f' * 32}")
            assert missing.status_code == 404
            assert missing.json()["errors"][0]["msg"] == "trace not found"
            found = query.get("/api/traces", params={"service": "analyzer", "limit": 5}).json()
            assert [t["traceID"] for t in found["data"]] == [trace_id]
            # OTLP/JSON (hex ids, as the specification says).
            body = {"resourceSpans": [{"resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "loadgen"}}]},
                "scopeSpans": [{"spans": [{"traceId": "0102030405060708090a0b0c0d0e0f10",
                                           "spanId": "0102030405060708", "name": "tick",
                                           "startTimeUnixNano": "1700000000000000000",
                                           "endTimeUnixNano": "1700000000500000000"}]}]}]}
            sent = httpx.post(f"{jaeger.url('http')}/v1/traces", json=body, timeout=5)
            assert sent.status_code == 200
            tick = query.get("/api/traces/0102030405060708090a0b0c0d0e0f10").json()["data"][0]
            assert tick["spans"][0]["duration"] == 500_000
            # The spans reach Elasticsearch in the background, into the daily indices.
            deadline = time.monotonic() + 10
            while len(es.documents("tracing-jaeger-span-*")) < 4:
                assert time.monotonic() < deadline, es.documents("*")
                time.sleep(0.2)
            assert "tracing-jaeger-span-2023-11-14" in es.indices
            services = {(d["serviceName"], d["operationName"])
                        for d in es.documents("tracing-jaeger-service-*")}
            assert ("analyzer", "analyze") in services and ("loadgen", "tick") in services
            metrics = httpx.get(f"{jaeger.url('metrics')}/metrics", timeout=5).text
            assert ('otelcol_receiver_accepted_spans{receiver="otlp",transport="http"} 4'
                    in metrics)
            inserts = 'jaeger_storage_bulk_index_inserts{name="es_traces",role="tracestore"} 8'
            deadline = time.monotonic() + 5
            while inserts not in metrics:
                assert time.monotonic() < deadline, metrics
                time.sleep(0.2)
                metrics = httpx.get(f"{jaeger.url('metrics')}/metrics", timeout=5).text
            assert 'jaeger_storage_bulk_index_errors{name="es_traces",role="tracestore"} 0' in (
                metrics)
    finally:
        es.stop()
    assert es.bulk_requests() and all(r.status == 200 for r in es.bulk_requests())


def test_jaeger_otlp_grpc_export_with_grpcio(tmp_path):
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    payload = encode_spans(otel_spans(None)).SerializeToString()
    (tmp_path / "request.bin").write_bytes(payload)
    config = jaeger_config(tmp_path, "http://127.0.0.1:9", "x")
    with standin("jaeger", tmp_path, JAEGER_PORTS, ["--config", str(config)],
                 check="query") as jaeger:
        client = (
            "import grpc, sys\n"
            f"channel = grpc.insecure_channel('127.0.0.1:{jaeger.ports['grpc']}')\n"
            "export = channel.unary_unary("
            "'/opentelemetry.proto.collector.trace.v1.TraceService/Export')\n"
            "print(len(export(open(sys.argv[1], 'rb').read(), timeout=10)))\n")
        sent = subprocess.run([PYTHON, "-c", client, str(tmp_path / "request.bin")],
                              capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0 and sent.stdout.strip() == "0", sent.stderr
        metrics = httpx.get(f"{jaeger.url('metrics')}/metrics", timeout=5).text
        assert 'otelcol_receiver_accepted_spans{receiver="otlp",transport="grpc"} 3' in metrics
        services = httpx.get(f"{jaeger.url('query')}/api/services", timeout=5).json()["data"]
        assert services == ["analyzer", "api"]


# --- Fluent Bit -------------------------------------------------------------------------------

FLUENT_BIT_PORTS = ["http", "forward", "exporter"]


def wait_for(check, timeout: float = 10, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(interval)
    return result


def workload_line(level: str, service: str, message: str, **extra: str) -> str:
    return json.dumps({"timestamp": "2026-11-29T10:00:00Z", "level": level, "service": service,
                       "logger": "apollonia", "message": message, **extra})


def test_fluent_bit_takes_docker_fluentd_driver_messages(tmp_path):
    from tests.logs_traces.docker_fluentd import DockerFluentdDriver

    with standin("fluent_bit", tmp_path, FLUENT_BIT_PORTS,
                 ["-c", str(ROOT / "fluent-bit" / "fluent-bit.yaml")],
                 env={"CLUSTER_NAME": "apollonia-local", "ENVIRONMENT": "compose"}) as fb:
        http = httpx.Client(base_url=fb.url("http"), timeout=5)
        health = http.get("/api/v1/health")
        assert health.status_code == 200 and health.text.strip() == "ok"
        api = DockerFluentdDriver("127.0.0.1", fb.ports["forward"], "apollonia-api-1")
        sent = api.send([workload_line("INFO", "api", "request started", trace_id="ab" * 16),
                         workload_line("ERROR", "api", "x" * 40_000),  # 3 pieces, joined
                         "Traceback (most recent call last):",
                         workload_line("debug", "api", "lower-case level: grep drops it")],
                        ts=1764410400.123456)
        assert sent == 6
        api.close()
        # Each connection has its own server thread: let the api's finish first (order).
        wait_for(lambda: len(http.get("/standin/records?raw=1").json()) == 6)
        loadgen = DockerFluentdDriver("127.0.0.1", fb.ports["forward"], "apollonia-loadgen-1",
                                      sub_second=False)
        loadgen.send([workload_line("INFO", "loadgen", "tick")], ts=1764410401.9)
        loadgen.close()
        records = wait_for(lambda: len(r := http.get("/standin/records").json()) >= 4 and r)
        assert len(http.get("/standin/records?raw=1").json()) == 7
        first = records[0]
        assert first["tag"] == "apollonia.apollonia-api-1"
        assert abs(first["time"] - 1764410400.123456) < 1e-6, "EventTime keeps sub-seconds"
        rec = first["record"]
        assert (rec["service"], rec["level"], rec["trace_id"]) == ("api", "INFO", "ab" * 16)
        assert rec["container_name"] == "/apollonia-api-1" and "log" not in rec
        assert (rec["cluster_name"], rec["environment"]) == ("apollonia-local", "compose")
        long = records[1]["record"]
        assert long["level"] == "ERROR" and len(long["message"]) == 40_000
        crash = records[2]["record"]
        assert (crash["level"], crash["service"]) == ("UNPARSED", "unknown")
        assert crash["message"].startswith("Traceback")
        assert records[3]["time"] == 1764410401, "whole seconds without sub-second precision"
        assert [r["record"]["service"] for r in records] == ["api", "api", "unknown", "loadgen"]
        metrics = http.get("/api/v2/metrics/prometheus").text
        assert 'fluentbit_input_records_total{name="forward.0"} 7' in metrics
        assert 'fluentbit_input_records_total{name="tail.1"} 0' in metrics
        assert 'fluentbit_output_proc_records_total{name="es.0"} 0' in metrics
        assert 'fluentbit_output_dropped_records_total{name="es.0"} 0' in metrics
        assert 'fluentbit_output_chunk_available_capacity_percent{name="es.0"} 100' in metrics
        assert "fluentbit_storage_fs_chunks_down 0" in metrics
        exported = httpx.get(f"{fb.url('exporter')}/metrics", timeout=5).text
        assert 'apollonia_log_lines_total{log_service="api",level="INFO"} 1' in exported
        assert 'apollonia_log_lines_total{log_service="api",level="ERROR"} 1' in exported
        assert 'apollonia_log_lines_total{log_service="unknown",level="UNPARSED"} 1' in exported
        assert 'level="debug"' not in exported
        assert "# TYPE apollonia_log_lines_total counter" in exported


def test_fluent_bit_forward_and_packed_forward_modes_with_acks(tmp_path):
    import msgpack

    from tests.logs_traces.docker_fluentd import event_time

    with standin("fluent_bit", tmp_path, FLUENT_BIT_PORTS,
                 ["-c", str(ROOT / "fluent-bit" / "fluent-bit.yaml")]) as fb:
        entries = [[event_time(1764410400.5), {"log": workload_line("INFO", "api", "one")}],
                   [1764410401, {"log": workload_line("WARNING", "api", "two")}]]
        packed = b"".join(msgpack.packb(e, use_bin_type=True) for e in entries)
        messages = [["api-1", entries, {"chunk": "c1"}],
                    ["api-1", packed, {"chunk": "c2", "size": 2}],
                    ["api-1", gzip.compress(packed),
                     {"chunk": "c3", "compressed": "gzip"}]]
        with socket.create_connection(("127.0.0.1", fb.ports["forward"]), timeout=10) as sock:
            unpacker = msgpack.Unpacker(raw=False)
            acks: list = []
            for message in messages:  # each chunk is answered before the next is sent
                sock.sendall(msgpack.packb(message, use_bin_type=True))
                while len(acks) < len(messages[:messages.index(message) + 1]):
                    unpacker.feed(sock.recv(4096))
                    acks += list(unpacker)
        assert acks == [{"ack": "c1"}, {"ack": "c2"}, {"ack": "c3"}]
        http = httpx.Client(base_url=fb.url("http"), timeout=5)
        records = wait_for(lambda: len(r := http.get("/standin/records").json()) == 6 and r)
        assert [r["time"] for r in records] == [1764410400.5, 1764410401] * 3
        assert {r["record"]["message"] for r in records} == {"one", "two"}
        exported = httpx.get(f"{fb.url('exporter')}/metrics", timeout=5).text
        assert 'apollonia_log_lines_total{log_service="api",level="WARNING"} 3' in exported


# --- Grafana ----------------------------------------------------------------------------------

class FakeBackends:
    """Prometheus (/api/v1/query, basic auth admin:<pw>), Alertmanager (/api/v2/status) and a
    Jaeger query API (/api/services) on one port, with a switch to make Jaeger fail."""

    def __init__(self, password: str) -> None:
        self.jaeger_down = False
        self.queries: list[str] = []
        fake = self
        token = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status: int, payload: dict) -> None:
                send_json(self, status, payload)

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                fake.queries.append(body)
                if self.headers.get("Authorization") != token:
                    return self.reply(401, {"status": "error"})
                self.reply(200, {"status": "success", "data": {"resultType": "scalar",
                                                               "result": [4, "2"]}})

            def do_GET(self):  # noqa: N802
                if self.path == "/api/v2/status":
                    return self.reply(200, {"cluster": {"status": "disabled"}})
                if self.path == "/api/services" and not fake.jaeger_down:
                    return self.reply(200, {"data": ["api"], "total": 1})
                self.reply(500, {"errors": [{"msg": "down"}]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def grafana_provisioning(tmp_path: Path) -> tuple[Path, Path]:
    """grafana/provisioning with only the paths changed: /run/secrets and the dashboards."""
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    target = tmp_path / "provisioning"
    shutil.copytree(ROOT / "grafana" / "provisioning", target)
    for path in target.rglob("*.yml"):
        text = path.read_text().replace("/run/secrets/", f"{secrets_dir}/")
        path.write_text(text.replace("/etc/grafana/dashboards", str(ROOT / "grafana" /
                                                                     "dashboards")))
    return target, secrets_dir


def grafana_env(tmp_path: Path, provisioning: Path, backends: str, es_url: str,
                admin_password: str) -> dict[str, str]:
    # compose.yaml's grafana environment, GF_SECURITY_ADMIN_PASSWORD__FILE already expanded.
    return {"GF_SECURITY_ADMIN_USER": "admin", "GF_SECURITY_ADMIN_PASSWORD": admin_password,
            "GF_AUTH_ANONYMOUS_ENABLED": "false", "GF_PATHS_PROVISIONING": str(provisioning),
            "GF_PATHS_DATA": str(tmp_path / "grafana-data"), "GF_LOG_MODE": "console",
            "PROMETHEUS_URL": backends, "ALERTMANAGER_URL": backends, "JAEGER_URL": backends,
            "ELASTICSEARCH_URL": es_url, "ELASTICSEARCH_USERNAME": "elastic"}


def test_grafana_datasources_dashboards_and_health_checks(tmp_path):
    from dev.engine.standins.elasticsearch import ElasticsearchStandIn

    provisioning, secrets_dir = grafana_provisioning(tmp_path)
    (secrets_dir / "basic_auth_password").write_text("basic-pw\n")
    (secrets_dir / "elasticsearch_password").write_text("es-pw\n")
    backends = FakeBackends("basic-pw")
    es = ElasticsearchStandIn(password="es-pw")
    try:
        env = grafana_env(tmp_path, provisioning, backends.url, es.url, "admin-pw")
        with standin("grafana", tmp_path, ["http"], ["server"], env=env) as grafana:
            url = grafana.url("http")
            health = httpx.get(f"{url}/api/health", timeout=5).json()
            assert health["database"] == "ok" and health["version"] == "13.2.0"
            assert httpx.get(f"{url}/api/datasources", timeout=5).status_code == 401
            client = httpx.Client(base_url=url, auth=("admin", "admin-pw"), timeout=15)
            listed = {d["uid"]: d for d in client.get("/api/datasources").json()}
            assert set(listed) == {"prometheus", "alertmanager", "jaeger", "elasticsearch"}
            assert listed["elasticsearch"]["url"] == es.url
            assert listed["prometheus"]["isDefault"] is True
            jaeger = client.get("/api/datasources/uid/jaeger").json()
            assert jaeger["jsonData"]["tracesToLogsV2"]["query"] == (
                'trace_id:"${__trace.traceId}"'), "$$ is a literal $"
            assert client.get("/api/datasources/uid/elasticsearch").json()[
                "secureJsonFields"] == {"basicAuthPassword": True}
            for uid in listed:
                checked = client.get(f"/api/datasources/uid/{uid}/health")
                assert checked.status_code == 200, (uid, checked.text)
                assert checked.json()["status"] == "OK"
            assert "query=1%2B1" in backends.queries[-1], "Prometheus' own health query"
            # A data source that stops answering fails its check as Grafana's does.
            backends.jaeger_down = True
            down = client.get("/api/datasources/uid/jaeger/health")
            assert down.status_code == 400 and down.json()["status"] == "ERROR"
            # The Elasticsearch password changes under Grafana: 401 -> ERROR.
            es.set_password("another-password")
            wrong = client.get("/api/datasources/uid/elasticsearch/health").json()
            assert wrong["status"] == "ERROR" and "401" in wrong["message"]
            proxied = client.get("/api/datasources/proxy/uid/alertmanager/api/v2/status")
            assert proxied.status_code == 200
            # Dashboards: every JSON of grafana/dashboards, in its provider's folder.
            repo = {json.loads(p.read_text())["uid"]: p.parent.name
                    for p in (ROOT / "grafana" / "dashboards").rglob("*.json")}
            found = client.get("/api/search", params={"type": "dash-db", "limit": 5000}).json()
            assert {d["uid"]: d["folderUid"] for d in found} == repo
            for uid in repo:
                dash = client.get(f"/api/dashboards/uid/{uid}").json()
                assert dash["dashboard"]["panels"] and dash["meta"]["provisioned"] is True
            assert client.get("/api/dashboards/uid/nope").status_code == 404
            metrics = httpx.get(f"{url}/metrics", timeout=5).text
            assert f"grafana_stat_totals_dashboard {len(repo)}" in metrics
            assert 'grafana_build_info{branch="HEAD",edition="oss"' in metrics
    finally:
        es.stop()
        backends.close()


def test_grafana_keeps_the_first_admin_password_and_the_cli_resets_it(tmp_path):
    provisioning, _ = grafana_provisioning(tmp_path)
    for path in (provisioning / "datasources").glob("*.yml"):
        path.write_text("apiVersion: 1\ndatasources: []\n")
    env = grafana_env(tmp_path, provisioning, "http://127.0.0.1:9", "http://127.0.0.1:9",
                      "first-pw")
    with standin("grafana", tmp_path, ["http"], env=env):
        pass
    assert (tmp_path / "grafana-data" / "grafana.db").exists()
    env["GF_SECURITY_ADMIN_PASSWORD"] = "second-pw"  # the secret file changed: ignored
    with standin("grafana", tmp_path, ["http"], env=env) as grafana:
        client = httpx.Client(base_url=grafana.url("http"), timeout=5)
        assert client.get("/api/user", auth=("admin", "second-pw")).status_code == 401
        assert client.get("/api/user", auth=("admin", "first-pw")).status_code == 200
        reset = subprocess.run(
            [PYTHON, str(STANDINS / "grafana.py"), "cli", "--homepath", "/usr/share/grafana",
             "admin", "reset-admin-password", "third-pw"],
            env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=30)
        assert reset.returncode == 0 and "Admin password changed successfully" in reset.stdout
        # No restart: the next request reads the new password.
        assert client.get("/api/user", auth=("admin", "third-pw")).status_code == 200
        assert client.get("/api/user", auth=("admin", "first-pw")).status_code == 401


# --- cAdvisor ---------------------------------------------------------------------------------

SYSTEMD_ID, CGROUPFS_ID, LOST_ID = "a" * 64, "b" * 64, "c" * 64


class FakeDocker:
    """The two Docker API calls the stand-in makes, on a unix socket."""

    def __init__(self, path: Path) -> None:
        compose = {"com.docker.compose.project": "apollonia",
                   "com.docker.compose.service": "api", "org.apollonia.secret": "x"}
        self.listing = [
            {"Id": SYSTEMD_ID, "Names": ["/apollonia-api-1"], "Image": "sha256:1",
             "Labels": compose, "State": "running"},
            {"Id": CGROUPFS_ID, "Names": ["/apollonia-grafana-1"], "Image": "sha256:2",
             "Labels": {**compose, "com.docker.compose.service": "grafana"}, "State": "running"},
            {"Id": LOST_ID, "Names": ["/elsewhere"], "Image": "x", "Labels": {},
             "State": "running"}]
        self.inspect = {
            SYSTEMD_ID: {"State": {"Pid": 4242, "StartedAt": "2026-11-29T10:00:00.5Z"},
                         "Config": {"Image": "apollonia-workload:local"}},
            CGROUPFS_ID: {"State": {"Pid": 0, "StartedAt": "2026-11-29T11:00:00.123456789Z"},
                          "Config": {"Image": "grafana/grafana:13.2.0"}},
            LOST_ID: {"State": {"Pid": 1, "StartedAt": "2026-11-29T11:00:00Z"}, "Config": {}}}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                if self.path == "/containers/json":
                    payload, status = fake.listing, 200
                else:
                    cid = self.path.split("/")[2]
                    payload, status = fake.inspect.get(cid, {"message": "no such"}), 200
                    if cid not in fake.inspect:
                        status = 404
                send_json(self, status, payload)

        import socketserver

        self.server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def fake_cgroup(directory: Path, current: int, inactive: int, usage_usec: int, limit: str,
                oom_kills: int) -> None:
    directory.mkdir(parents=True)
    (directory / "memory.current").write_text(f"{current}\n")
    (directory / "memory.stat").write_text(f"anon 1000\nfile 5000\ninactive_file {inactive}\n"
                                           "active_file 10\n")
    (directory / "memory.max").write_text(f"{limit}\n")
    (directory / "memory.events").write_text(f"low 0\nhigh 0\nmax 3\noom 1\n"
                                             f"oom_kill {oom_kills}\n")
    (directory / "cpu.stat").write_text(f"usage_usec {usage_usec}\nuser_usec 1\n"
                                        "system_usec 1\n")


def test_cadvisor_series_from_the_docker_api_and_cgroup_files(tmp_path):
    cgroups, rootfs = tmp_path / "cgroup", tmp_path / "rootfs"
    fake_cgroup(cgroups / "system.slice" / f"docker-{SYSTEMD_ID}.scope", 80_000_000,
                30_000_000, 12_500_000, "134217728", 2)
    # Seen only through the host's / bind (/rootfs/sys/fs/cgroup), the cgroupfs layout.
    fake_cgroup(rootfs / "sys" / "fs" / "cgroup" / "docker" / CGROUPFS_ID, 1000, 5000, 1,
                "max", 0)
    net = rootfs / "proc" / "4242" / "net"
    net.mkdir(parents=True)
    (net / "dev").write_text(
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets\n"
        "    lo:    1234      10    0    0    0     0          0         0     1234      10\n"
        "  eth0:   98765     100    0    0    0     0          0         0     4321      50\n")
    docker = FakeDocker(tmp_path / "docker.sock")
    try:
        args = ["--docker_only=true", "--housekeeping_interval=15s",
                "--store_container_labels=false",
                "--whitelisted_container_labels=com.docker.compose.service,"
                "com.docker.compose.project",
                "--disable_metrics=advtcp,cpu_topology,cpuset,hugetlb,memory_numa,percpu,"
                "process,referenced_memory,resctrl,sched,tcp,udp",
                f"--docker=unix://{tmp_path / 'docker.sock'}"]
        with standin("cadvisor", tmp_path, ["http"], args,
                     env={"STANDIN_CGROUP_ROOT": str(cgroups),
                          "STANDIN_ROOTFS": str(rootfs)}) as cadvisor:
            assert httpx.get(f"{cadvisor.url('http')}/healthz", timeout=5).text == "ok"
            text = httpx.get(f"{cadvisor.url('http')}/metrics", timeout=10).text
            rows = httpx.get(f"{cadvisor.url('http')}/standin/containers", timeout=10).json()
    finally:
        docker.close()
    api = ('container_label_com_docker_compose_project="apollonia",'
           'container_label_com_docker_compose_service="api",'
           f'id="/system.slice/docker-{SYSTEMD_ID}.scope",image="apollonia-workload:local",'
           'name="apollonia-api-1"')
    # cAdvisor orders labels: container_label_*, id, image, name (then extra labels).
    assert f"container_memory_working_set_bytes{{{_sorted(api)}}} 50000000" in _sorted_text(
        text)
    expected = {
        "container_cpu_usage_seconds_total": (api + ',cpu="total"', "12.5"),
        "container_spec_memory_limit_bytes": (api, "134217728"),
        "container_oom_events_total": (api, "2"),
        "container_start_time_seconds": (api, "1795946400"),  # 2026-11-29T10:00:00.5Z
        "container_network_receive_bytes_total": (api + ',interface="eth0"', "98765"),
    }
    samples = _samples(text)
    for name, (labels, value) in expected.items():
        assert samples[(name, _sorted(labels))] == value, name
    assert not any('interface="lo"' in k[1] for k in samples), "loopback is ignored"
    grafana = {k: v for k, v in samples.items() if 'name="apollonia-grafana-1"' in k[1]}
    assert grafana[("container_memory_working_set_bytes",
                    _sorted(f'container_label_com_docker_compose_project="apollonia",'
                            f'container_label_com_docker_compose_service="grafana",'
                            f'id="/docker/{CGROUPFS_ID}",image="grafana/grafana:13.2.0",'
                            'name="apollonia-grafana-1"'))] == "0"
    assert any(k[0] == "container_spec_memory_limit_bytes" and v == "0"
               for k, v in grafana.items()), "memory.max 'max' is reported as 0"
    assert "org_apollonia_secret" not in text, "only whitelisted labels"
    assert "elsewhere" not in text
    assert [r.get("skipped", "") != "" for r in rows] == [False, False, True]


def _sorted(labels: str) -> str:
    return ",".join(sorted(re.findall(r'\w+="[^"]*"', labels)))


def _samples(text: str) -> dict[tuple[str, str], str]:
    out = {}
    for line in text.splitlines():
        if m := re.match(r"^(\w+)\{(.*)\} (\S+)$", line):
            out[(m.group(1), _sorted(m.group(2)))] = m.group(3)
    return out


def _sorted_text(text: str) -> str:
    return "\n".join(f"{n}{{{labels}}} {v}" for (n, labels), v in _samples(text).items())


def test_cadvisor_reads_cgroup_v1_files(tmp_path):
    """A hybrid host (the engine suite's machines): memory and cpuacct in their own v1 trees."""
    from dev.engine.standins import cadvisor

    memory = tmp_path / "memory" / "docker" / "abc"
    cpuacct = tmp_path / "cpuacct" / "docker" / "abc"
    memory.mkdir(parents=True)
    cpuacct.mkdir(parents=True)
    (memory / "memory.usage_in_bytes").write_text("50000000\n")
    (memory / "memory.stat").write_text("cache 1\ntotal_inactive_file 8000000\n")
    (memory / "memory.limit_in_bytes").write_text(f"{64 * 2**20}\n")
    (memory / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (cpuacct / "cpuacct.usage").write_text("2500000000\n")
    stats = cadvisor._v1_stats(memory, cpuacct)
    assert stats == {"cpu": 2.5, "usage": 50_000_000, "inactive": 8_000_000,
                     "limit": 64 * 2**20, "oom_kills": 2}
    (memory / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert cadvisor._v1_stats(memory, cpuacct)["limit"] == 0, "unlimited is reported as 0"
