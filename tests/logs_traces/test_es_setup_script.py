"""elasticsearch/setup.sh run by dash (a strict POSIX shell, like the busybox sh of the
curlimages/curl image) with the real curl against a small recording HTTP server on 127.0.0.1.

Elasticsearch itself cannot run here; the recorder checks what the script sends (basic auth,
JSON bodies, paths) and answers like Elasticsearch does for these calls. What Elasticsearch
does with the bodies is covered by the smoke suite on a Docker host.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.logs_traces.conftest import ES_DIR

SCRIPT = ES_DIR / "setup.sh"
SHELL = shutil.which("dash") or shutil.which("sh")
PASSWORD = 'pa"ss\\w$rd 1'  # quote, backslash, dollar and space exercise the escaping


@dataclass
class Recorder:
    password: str = PASSWORD
    unready_answers: int = 0  # /_cluster/health answers 503 this many times first
    # PUT path (without query) -> answers to give before a 200: an HTTP status, or "reset"
    # (the connection is closed without an answer, as when Elasticsearch restarts)
    put_faults: dict[str, list[int | str]] = field(default_factory=dict)
    state: dict[str, object] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    health_calls: int = 0


def make_handler(rec: Recorder) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"elastic:{rec.password}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def reply(self, code: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def authorised(self) -> bool:
            if self.headers.get("Authorization") == expected:
                return True
            self.reply(401, {"error": {"type": "security_exception"}, "status": 401})
            return False

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            rec.requests.append(("GET", self.path))
            if not self.authorised():
                return
            if self.path.startswith("/_cluster/health"):
                rec.health_calls += 1
                if rec.health_calls <= rec.unready_answers:
                    self.reply(503, {"status": "red", "timed_out": True})
                else:
                    self.reply(200, {"status": "yellow", "timed_out": False})
            elif self.path in rec.state:
                self.reply(200, {"found": self.path})
            else:
                self.reply(404, {"error": "not found"})

        def do_PUT(self) -> None:  # noqa: N802
            rec.requests.append(("PUT", self.path))
            if not self.authorised():
                return
            if self.headers.get("Content-Type") != "application/json":
                self.reply(406, {"error": "Content-Type must be application/json"})
                return
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            faults = rec.put_faults.get(self.path.split("?")[0])
            if faults:
                fault = faults.pop(0)
                if fault == "reset":
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                self.reply(int(fault), {"error": {"type": "unavailable_shards_exception"},
                                        "status": fault})
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self.reply(400, {"error": "parse_exception"})
                return
            rec.state[self.path.split("?")[0]] = body
            self.reply(200, {"acknowledged": True})

    return Handler


@pytest.fixture
def es() -> Iterator[tuple[Recorder, str]]:
    rec = Recorder()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(rec))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield rec, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run_setup(
    tmp_path: Path, url: str, password: str | None = PASSWORD, shell: str | None = None, **env: str
):
    pw_file = tmp_path / "elasticsearch_password"
    if password is not None:
        pw_file.write_text(password + "\n", encoding="utf-8")
    full_env = {
        "PATH": "/usr/bin:/bin",
        # The names compose.yaml sets (ES_URL / ES_PASSWORD_FILE are accepted too).
        "ELASTICSEARCH_URL": url,
        "ELASTICSEARCH_PASSWORD_FILE": str(pw_file),
        "ES_WAIT_SECONDS": "10",
        "ES_RETRY_SECONDS": "1",
        **env,
    }
    return subprocess.run(
        [shell or SHELL, str(SCRIPT)], env=full_env, capture_output=True, text=True, timeout=60
    )


pytestmark = pytest.mark.skipif(
    SHELL is None or shutil.which("curl") is None, reason="needs sh and curl on PATH"
)


def test_applies_policies_template_and_trace_settings(tmp_path, es):
    rec, url = es
    rec.unready_answers = 1
    result = run_setup(tmp_path, url, LOGS_RETENTION_DAYS="3", TRACES_RETENTION_DAYS="14")
    assert result.returncode == 0, result.stderr
    assert rec.health_calls == 2, "a 503 while starting must be retried, not fatal"
    logs = rec.state["/_ilm/policy/apollonia-logs"]["policy"]["phases"]
    traces = rec.state["/_ilm/policy/apollonia-traces"]["policy"]["phases"]
    assert logs["delete"] == {"min_age": "3d", "actions": {"delete": {}}}
    assert traces["delete"]["min_age"] == "14d"
    template = json.loads((ES_DIR / "index-template.json").read_text(encoding="utf-8"))
    assert rec.state["/_index_template/apollonia-logs"] == template
    settings = rec.state["/tracing-jaeger-*/_settings"]
    assert settings == {"index": {"lifecycle": {"name": "apollonia-traces"}}}
    assert ("PUT", "/tracing-jaeger-*/_settings?allow_no_indices=true&expand_wildcards=open") in (
        rec.requests
    )


@pytest.mark.parametrize("shell", sorted({s for s in ("dash", "bash") if shutil.which(s)}))
def test_second_run_converges_to_the_same_state(tmp_path, es, shell):
    rec, url = es
    assert run_setup(tmp_path, url, shell=shell).returncode == 0
    first = json.dumps(rec.state, sort_keys=True)
    puts_first = [r for r in rec.requests if r[0] == "PUT"]
    rec.requests.clear()
    second_run = run_setup(tmp_path, url, shell=shell)
    assert second_run.returncode == 0, second_run.stderr
    assert json.dumps(rec.state, sort_keys=True) == first
    assert [r for r in rec.requests if r[0] == "PUT"] == puts_first
    assert "done" in second_run.stdout


def test_password_never_on_the_command_line_nor_in_a_file(tmp_path, es):
    _, url = es
    result = run_setup(tmp_path, url, ES_URL=url, ES_SETUP_DIR=str(ES_DIR))
    assert result.returncode == 0
    words = SCRIPT.read_text(encoding="utf-8").split()
    assert "-u" not in words, "curl -u shows in ps"
    assert "mktemp" not in words, "compose runs the script on a read-only root filesystem"
    assert PASSWORD not in result.stdout + result.stderr


def test_wrong_password_fails_fast_with_one_line(tmp_path, es):
    _, url = es
    result = run_setup(tmp_path, url, password="not-the-password")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "HTTP 401" in lines[0]
    assert str(tmp_path / "elasticsearch_password") in lines[0]


def test_missing_password_file_is_named(tmp_path, es):
    rec, url = es
    result = run_setup(tmp_path, url, password=None)
    assert result.returncode == 1
    assert str(tmp_path / "elasticsearch_password") in result.stderr
    assert rec.requests == [], "nothing may be sent without credentials"


@pytest.mark.parametrize("value", ["0", "abc", "-1", "7d", ""])
def test_bad_retention_is_rejected(tmp_path, es, value):
    rec, url = es
    result = run_setup(tmp_path, url, LOGS_RETENTION_DAYS=value)
    if value == "":  # empty means "use the default"
        assert result.returncode == 0, result.stderr
        assert (
            rec.state["/_ilm/policy/apollonia-logs"]["policy"]["phases"]["delete"]["min_age"]
            == "7d"
        )
        return
    assert result.returncode == 1
    assert "LOGS_RETENTION_DAYS" in result.stderr and rec.requests == []


def test_unreachable_elasticsearch_gives_up_after_the_wait(tmp_path):
    # Port 9 (discard) on loopback: nothing listens, connection refused at once.
    result = run_setup(tmp_path, "http://127.0.0.1:9", ES_WAIT_SECONDS="1")
    assert result.returncode == 1
    assert "not ready after 1s" in result.stderr


def test_repeat_mode_keeps_reapplying_and_survives_a_failed_round(tmp_path, es):
    rec, url = es
    rec.unready_answers = 2  # the first round meets a cluster that is still starting
    pw_file = tmp_path / "elasticsearch_password"
    pw_file.write_text(PASSWORD, encoding="utf-8")
    env = {
        "PATH": "/usr/bin:/bin",
        "ES_URL": url,
        "ES_PASSWORD_FILE": str(pw_file),
        "ES_WAIT_SECONDS": "1",  # so the first round gives up: a failed round
        "ES_RETRY_SECONDS": "1",
        "ES_SETUP_REPEAT_SECONDS": "1",
    }
    proc = subprocess.Popen(
        [SHELL, str(SCRIPT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    template_puts = 0
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and template_puts < 2:
            template_puts = rec.requests.count(("PUT", "/_index_template/apollonia-logs"))
            time.sleep(0.1)
        assert proc.poll() is None, "repeat mode must keep running"
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert template_puts >= 2, out + err
    assert "round failed" in out and "not ready after 1s" in err


POLICY = "/_ilm/policy/apollonia-logs"
TEMPLATE = "/_index_template/apollonia-logs"


def test_put_retries_transient_failures_then_succeeds(tmp_path, es):
    """A 503 or a connection reset during a PUT (Elasticsearch restarting, a shard not yet
    active) is tried again, ES_RETRY_SECONDS apart, instead of failing the whole setup."""
    rec, url = es
    rec.put_faults = {POLICY: [503, "reset"], TEMPLATE: [502]}
    result = run_setup(tmp_path, url)
    assert result.returncode == 0, result.stderr
    assert rec.requests.count(("PUT", POLICY)) == 3
    assert rec.requests.count(("PUT", TEMPLATE)) == 2
    assert rec.state[TEMPLATE] == json.loads((ES_DIR / "index-template.json").read_text())
    assert "try 1 of 5 failed" in result.stdout


def test_put_gives_up_after_the_attempts_with_one_line(tmp_path, es):
    rec, url = es
    rec.put_faults = {POLICY: [503] * 10}
    result = run_setup(tmp_path, url, ES_PUT_ATTEMPTS="3")
    assert result.returncode == 1
    assert rec.requests.count(("PUT", POLICY)) == 3, "bounded: exactly ES_PUT_ATTEMPTS tries"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "HTTP 503 after 3 tries" in lines[0]
    assert TEMPLATE not in rec.state, "nothing after a failed PUT: no half-applied setup"


def test_put_does_not_retry_a_client_error(tmp_path, es):
    rec, url = es
    rec.put_faults = {POLICY: [400]}
    result = run_setup(tmp_path, url)
    assert result.returncode == 1
    assert rec.requests.count(("PUT", POLICY)) == 1, "a 4xx will not change on retry"
    assert "HTTP 400 after 1 tries" in result.stderr


@pytest.mark.parametrize("value", ["0", "x"])
def test_bad_put_attempts_is_rejected(tmp_path, es, value):
    rec, url = es
    result = run_setup(tmp_path, url, ES_PUT_ATTEMPTS=value)
    assert result.returncode == 1 and "ES_PUT_ATTEMPTS" in result.stderr
    assert rec.requests == []


def test_heartbeat_and_healthcheck(tmp_path, es):
    """The trace-retention service's healthcheck: healthy once a round succeeded, unhealthy
    before, and when the last success is older than two rounds plus the cluster wait."""
    _, url = es
    beat = tmp_path / "last-round"
    env = {"ES_SETUP_HEARTBEAT_FILE": str(beat), "ES_SETUP_REPEAT_SECONDS": "60",
           "ES_WAIT_SECONDS": "10", "PATH": "/usr/bin:/bin"}

    def healthcheck() -> subprocess.CompletedProcess:
        return subprocess.run([SHELL, str(SCRIPT), "--healthcheck"], env=env,
                              capture_output=True, text=True, timeout=10)

    first = healthcheck()
    assert first.returncode == 1 and "no successful round yet" in first.stdout
    assert run_setup(tmp_path, url, ES_SETUP_HEARTBEAT_FILE=str(beat)).returncode == 0
    assert healthcheck().returncode == 0
    beat.write_text(str(int(time.time()) - 131) + "\n")  # older than 2 x 60 + 10 s
    stale = healthcheck()
    assert stale.returncode == 1 and "limit 130s" in stale.stdout
