"""A throwaway copy of the repository to run the user-facing commands in, with fakes for
what must never run for real in a test: the Docker CLI (an engine that is stopped, denies
its socket, or answers), Compose's `up`, the native run and `make bootstrap` (which would
rewrite the shared .tools/). And small HTTP servers for `make diagnose` and `make reload`.
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PATH = "/usr/bin:/bin"  # no /usr/local/bin: the real docker CLI lives there

# docker's own messages (docker 28): the daemon stopped, the socket not readable.
STOPPED = ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
           "Is the docker daemon running?")
DENIED = ("permission denied while trying to connect to the Docker daemon socket at "
          "unix:///var/run/docker.sock: Get "
          '"http://%2Fvar%2Frun%2Fdocker.sock/v1.47/info": dial unix '
          "/var/run/docker.sock: connect: permission denied")
INFO_UP = json.dumps({"ServerVersion": "28.2.2", "DockerRootDir": "/",
                      "OperatingSystem": "Debian GNU/Linux 12", "MemTotal": 17179869184,
                      "KernelVersion": "6.1.0", "SecurityOptions": []})
INFO_ERRORS = json.dumps({"ServerVersion": "", "ServerErrors": [STOPPED]})

FAKE_DOCKER = f"""#!/bin/sh
# A Docker CLI whose engine is $FAKE_DOCKER: stopped | denied | servererrors | up.
# `compose` is the plugin only when $FAKE_COMPOSE names a compose binary to run.
case "$1" in
  info)
    case "$FAKE_DOCKER" in
      stopped) echo '{STOPPED}' >&2; exit 1 ;;
      denied) echo '{DENIED}' >&2; exit 1 ;;
      servererrors) echo '{INFO_ERRORS}'; exit 0 ;;
      up) echo '{INFO_UP}'; exit 0 ;;
    esac ;;
  compose)
    if [ -n "$FAKE_COMPOSE" ]; then shift; exec "$FAKE_COMPOSE" "$@"; fi
    echo "unknown flag: $2" >&2
    echo "See 'docker --help'." >&2
    exit 125 ;;
  ps) exit 0 ;;
esac
echo "fake docker: unexpected: $*" >&2
exit 1
"""

# Compose that renders (the real standalone build) but never starts anything.
FAKE_COMPOSE = """#!/bin/sh
for a in "$@"; do
  case "$a" in
    up|down|start|run|create) echo "fake compose: $*" >> "$COMPOSE_LOG"; exit 0 ;;
  esac
done
exec "{real}" "$@"
"""

NATIVE_STUB = '''"""Stands in for the native run in command tests: records that it ran."""
import pathlib
import sys

pathlib.Path(".native-ran").write_text(" ".join(sys.argv[1:]))
print("native stub: " + " ".join(sys.argv[1:]))
'''


@dataclass
class Repo:
    path: Path
    bin: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *cmd: str, stdin: bytes | None = None, timeout: float = 240,
            cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(list(cmd), cwd=cwd or self.path, env=self.env, input=stdin,
                              capture_output=True, timeout=timeout)

    def write(self, rel: str, data: str | bytes) -> Path:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data)
        return p

    def edit(self, rel: str, old: str, new: str) -> None:
        p = self.path / rel
        text = p.read_text()
        assert old in text, f"{rel}: {old!r} not found"
        p.write_text(text.replace(old, new, 1))

    def git_commit(self) -> None:
        for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "commit",
                     "-qm", "test copy"]):
            subprocess.run(cmd, cwd=self.path, check=True, capture_output=True)


def copy_repo(dest: Path) -> Path:
    """Tracked and new (not ignored) files, with their mtimes (make compares them)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if not src.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    (dest / ".tools").symlink_to(ROOT / ".tools")
    (dest / ".venv").symlink_to(ROOT / ".venv")
    bootstrap = dest / "dev" / "bootstrap.sh"
    bootstrap.write_text("#!/bin/sh\n# test copy: the shared .tools/ is left alone\nexit 0\n")
    bootstrap.chmod(0o755)
    (dest / "native" / "__main__.py").write_text(NATIVE_STUB)
    return dest


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    path = copy_repo(tmp_path / "repo")
    fake = tmp_path / "bin"
    fake.mkdir()
    docker = fake / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    compose = fake / "compose-wrapper"
    compose.write_text(FAKE_COMPOSE.replace("{real}", str(ROOT / ".tools/bin/docker-compose")))
    compose.chmod(0o755)
    env = {"PATH": f"{fake}:{SYSTEM_PATH}", "HOME": str(tmp_path / "home"),
           "FAKE_DOCKER": "stopped", "COMPOSE_LOG": str(tmp_path / "compose.log"),
           "DOCKER_HOST": "unix:///nonexistent.sock", "LC_ALL": "C.UTF-8"}
    return Repo(path, fake, env)


class FakeServer:
    """An HTTP server on an ephemeral port of 127.0.0.1; `answer(method, path)` decides."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None]] = []
        self.answer: Callable[[str, str], tuple[int, str, bytes]] = \
            lambda method, path: (200, "application/json", b"{}")
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _handle(self) -> None:
                server.requests.append((self.command, self.path,
                                        self.headers.get("Authorization")))
                code, kind, body = server.answer(self.command, self.path)
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                if code == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="prometheus"')
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    s = FakeServer()
    yield s
    s.close()


def prometheus_json(result: list | None = None) -> bytes:
    return json.dumps({"status": "success",
                       "data": {"resultType": "vector", "result": result or []}}).encode()


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
