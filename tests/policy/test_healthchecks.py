"""The compose healthcheck commands, run against the real binaries on 127.0.0.1.

For every service whose binary ships in .tools/bin, the exact exec-form healthcheck
from the rendered compose.yaml is run (its container port swapped for a free local
one): it must pass while the binary serves and fail once it is gone. The blackbox
module the readiness probes use is checked the same way: 2xx succeeds, 503 fails.
"""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.policy import rules

REPO = rules.REPO
TOOLS = REPO / ".tools" / "bin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def _argv(tmp: Path, service: str, port: int) -> list[str]:
    listen = f"--web.listen-address=127.0.0.1:{port}"
    if service == "prometheus":
        (tmp / "prometheus.yml").write_text("global: {scrape_interval: 15s}\n")
        return [
            str(TOOLS / "prometheus"),
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            listen,
        ]
    if service == "alertmanager":
        am = tmp / "am"
        shutil.copytree(REPO / "alertmanager", am)
        if (am / "secrets.example").is_dir():
            shutil.copytree(am / "secrets.example", am / "secrets", dirs_exist_ok=True)
        return [
            str(TOOLS / "alertmanager"),
            f"--config.file={am / 'alertmanager.yml'}",
            f"--storage.path={tmp / 'am-data'}",
            "--cluster.listen-address=",
            listen,
        ]
    if service == "blackbox-exporter":
        return [
            str(TOOLS / "blackbox-exporter"),
            f"--config.file={REPO / 'exporters' / 'blackbox.yml'}",
            listen,
        ]
    if service == "node-exporter":
        return [str(TOOLS / "node-exporter"), "--collector.disable-defaults", listen]
    raise KeyError(service)


def _local_command(test: list[str], container_port: int, port: int) -> list[str]:
    assert test[0] == "CMD", f"expected exec form, got {test}"
    cmd = [arg.replace(f"127.0.0.1:{container_port}", f"127.0.0.1:{port}") for arg in test[1:]]
    if cmd[0] == "promtool":
        cmd[0] = str(TOOLS / "promtool")
    return cmd


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "service,container_port",
    [
        ("prometheus", 9090),
        ("alertmanager", 9093),
        ("blackbox-exporter", 9115),
        ("node-exporter", 9100),
    ],
)
def test_healthcheck_tracks_the_real_binary(
    local_config: dict[str, Any], tmp_path: Path, service: str, container_port: int
) -> None:
    binary = "prometheus" if service == "prometheus" else service
    if not (TOOLS / binary).exists() or shutil.which("wget") is None:
        pytest.skip(f"{binary} (make bootstrap) or wget not available")
    test = local_config["services"][service]["healthcheck"]["test"]
    port = _free_port()
    cmd = _local_command(test, container_port, port)
    proc = subprocess.Popen(
        _argv(tmp_path, service, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait(f"http://127.0.0.1:{port}/")
        deadline = time.monotonic() + 30
        while (rc := subprocess.run(cmd, capture_output=True).returncode) != 0:
            assert time.monotonic() < deadline, f"{cmd} kept failing against a live {service}"
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert rc == 0
    assert subprocess.run(cmd, capture_output=True, timeout=30).returncode != 0, (
        f"{cmd} passes with {service} stopped: it probes nothing"
    )


@pytest.mark.timeout(60)
def test_vmauth_healthcheck_tracks_the_real_binary(
    scale_config: dict[str, Any], tmp_path: Path
) -> None:
    """compose.scale.yaml's vmauth healthcheck against Debian's vmauth (same release as the
    image) running the bundle's auth config: passes while it serves, fails once it is gone."""
    if not (TOOLS / "vmauth").exists():
        pytest.fail("vmauth not in .tools/bin (make bootstrap)")
    if shutil.which("wget") is None:
        pytest.skip("wget not available")
    test = scale_config["services"]["vmauth"]["healthcheck"]["test"]
    port = _free_port()
    cmd = _local_command(test, 8426, port)
    env = {"PATH": "/usr/bin:/bin", "AGENT_REMOTE_WRITE_PASSWORD": "healthcheck-test",
           "STORE_WRITE_URL": "http://127.0.0.1:9/"}
    proc = subprocess.Popen(
        [str(TOOLS / "vmauth"), f"-auth.config={REPO / 'victoriametrics/vmauth.yml'}",
         f"-httpListenAddr=127.0.0.1:{_free_port()}", f"-httpInternalListenAddr=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )
    try:
        _wait(f"http://127.0.0.1:{port}/health")
        assert subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert subprocess.run(cmd, capture_output=True, timeout=30).returncode != 0


class _Status(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        code = int(self.path.strip("/") or 200)
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def status_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.mark.timeout(60)
def test_blackbox_http_2xx_module(tmp_path: Path, status_server: int) -> None:
    if not (TOOLS / "blackbox-exporter").exists():
        pytest.fail("blackbox-exporter not in .tools/bin (make bootstrap)")
    port = _free_port()
    proc = subprocess.Popen(
        _argv(tmp_path, "blackbox-exporter", port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(f"http://127.0.0.1:{port}/-/healthy")

        def success(code: int) -> str:
            body = httpx.get(
                f"http://127.0.0.1:{port}/probe",
                params={"module": "http_2xx", "target": f"http://127.0.0.1:{status_server}/{code}"},
                timeout=10,
            ).text
            (line,) = [x for x in body.splitlines() if x.startswith("probe_success ")]
            return line.split()[1]

        assert success(200) == "1"
        assert success(204) == "1"
        assert success(503) == "0"
        assert success(302) == "0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
