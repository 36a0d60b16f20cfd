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


@pytest.mark.timeout(60)
def test_all_runs_api_analyzer_and_loadgen_as_processes(tmp_path: Path) -> None:
    api_port, an_port = _free_port(), _free_port()
    log = (tmp_path / "out.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "apollonia", "all", "--api-port", str(api_port),
         "--analyzer-port", str(an_port), "--rate", "10", "--upload-rate", "4"],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
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
    finally:
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
