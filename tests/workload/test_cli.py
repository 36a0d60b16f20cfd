"""`python -m apollonia all` runs the whole workload without Docker on loopback ports, and the
image recipe is slim and non-root (no Docker engine here: the Dockerfile is checked as text)."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


PROMETHEUS = ROOT / ".tools/bin/prometheus"


def _prometheus_config(api_port: int, an_port: int) -> str:
    return f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: apollonia-api
    static_configs: [{{targets: ["127.0.0.1:{api_port}"], labels: {{service: api, env: test}}}}]
  - job_name: apollonia-analyzer
    static_configs: [{{targets: ["127.0.0.1:{an_port}"], labels: {{service: analyzer, env: test}}}}]
"""


@pytest.mark.timeout(90)
def test_all_runs_api_analyzer_and_loadgen_as_processes(tmp_path: Path) -> None:
    """One command starts the three processes; a real Prometheus scrapes both services over
    OpenMetrics (exemplars included) while the load generator drives them."""
    api_port, an_port, prom_port = _free_port(), _free_port(), _free_port()
    log = (tmp_path / "out.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "apollonia", "all", "--api-port", str(api_port),
         "--analyzer-port", str(an_port), "--rate", "10", "--upload-rate", "4"],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    prom = None
    if PROMETHEUS.exists():
        (tmp_path / "prometheus.yml").write_text(_prometheus_config(api_port, an_port))
        prom = subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}",
             "--enable-feature=exemplar-storage"],
            stdout=subprocess.DEVNULL, stderr=(tmp_path / "prom.log").open("w"))
    api = f"http://127.0.0.1:{api_port}"
    try:
        deadline = time.monotonic() + 30
        uploads = analyzed = 0.0
        while time.monotonic() < deadline:
            time.sleep(0.5)
            assert proc.poll() is None, "apollonia all exited early"
            try:
                api_text = httpx.get(f"{api}/metrics", timeout=2).text
                an_text = httpx.get(f"http://127.0.0.1:{an_port}/metrics", timeout=2).text
            except httpx.HTTPError:
                continue
            uploads = _metric(api_text, "media_upload_size_bytes_count")
            analyzed = _metric(an_text, "ml_model_prediction_duration_seconds_count")
            if uploads >= 3 and analyzed >= 2:
                break
        assert uploads >= 3, "the load generator's uploads did not reach the api"
        assert analyzed >= 2, "queued analysis jobs did not reach the analyzer"
        health = httpx.get(f"{api}/health", timeout=5).json()
        assert health["checks"]["analyzer"]["status"] == "healthy"
        if prom is not None:
            _check_prometheus(f"http://127.0.0.1:{prom_port}")
    finally:
        if prom is not None:
            prom.terminate()
            prom.wait(timeout=20)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0, f"exit code {code}"
    log.seek(0)
    lines = [line for line in log.read().splitlines() if line.strip()]
    services = set()
    for line in lines:
        entry = json.loads(line)  # every line any of the three processes printed is JSON
        services.add(entry["service"])
    assert services == {"api", "analyzer", "loadgen"}
    if prom is None:
        pytest.skip(f"processes checked; scrape check skipped: {PROMETHEUS} missing "
                    "(make bootstrap installs it)")


CONTRACT_SERIES = {
    "api": ["http_requests_total", "http_request_duration_seconds_bucket", "active_users",
            "media_files_total", "media_upload_size_bytes_count", "queue_messages_total",
            "database_query_duration_seconds_bucket", "database_connections_active",
            "cache_operations_total", "cache_hit_ratio", "process_resident_memory_bytes"],
    "analyzer": ["http_requests_total", "media_processing_duration_seconds_bucket",
                 "ml_inference_duration_seconds_bucket", "ml_model_accuracy",
                 "ml_feature_extraction_duration_seconds_bucket",
                 "ml_model_prediction_duration_seconds_count", "ml_processing_errors_total",
                 "ml_batch_size_bucket", "ml_memory_usage_bytes", "python_gc_collections_total"],
}


def _check_prometheus(prom: str) -> None:
    def query(expr: str) -> list:
        r = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=5)
        r.raise_for_status()
        return r.json()["data"]["result"]

    deadline = time.monotonic() + 20
    missing: list[str] = ["(not scraped yet)"]
    while time.monotonic() < deadline and missing:
        time.sleep(1)
        up = {x["metric"]["service"]: x["value"][1] for x in query("up")}
        if up != {"api": "1", "analyzer": "1"}:
            continue
        missing = [f"{svc}: {name}" for svc, names in CONTRACT_SERIES.items() for name in names
                   if not query(f'{name}{{service="{svc}"}}')]
    assert not missing, f"Prometheus has no series for {missing}"
    # the scrape negotiated OpenMetrics: exemplars with trace ids were ingested
    deadline = time.monotonic() + 15
    exemplars: list = []
    while time.monotonic() < deadline and not exemplars:
        r = httpx.get(f"{prom}/api/v1/query_exemplars", timeout=5, params={
            "query": 'http_request_duration_seconds_bucket{service="api"}',
            "start": time.time() - 120, "end": time.time()})
        exemplars = [e for series in r.json()["data"] for e in series["exemplars"]]
        time.sleep(0.5)
    assert exemplars and all(len(e["labels"]["trace_id"]) == 32 for e in exemplars)
    # no _created series (disabled) and no label Prometheus owns was overwritten
    assert not query('{__name__=~".+_created"}')
    assert not query('{__name__=~".+", exported_service!=""}')


def test_bad_fault_env_is_a_one_line_error() -> None:
    r = subprocess.run([sys.executable, "-m", "apollonia", "api", "--port", "1"],
                       env={"APOLLONIA_FAULT_ERROR_RATIO": "lots", "PATH": "/usr/bin"},
                       capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "APOLLONIA_FAULT_ERROR_RATIO" in r.stderr


def test_dockerfile_is_slim_pinned_and_non_root() -> None:
    text = (ROOT / "workload/Dockerfile").read_text()
    base = re.search(r"^FROM\s+(\S+)", text, re.M)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base.group(1)), base
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    for src in re.findall(r"^COPY\s+(\S+)\s", text, re.M):
        assert (ROOT / src).exists(), f"COPY source {src} missing (context = repo root)"
    ignore = (ROOT / "workload/Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*")] == "*" and "!workload/apollonia/**" in ignore
