"""tools/diagnose.py against a fake Prometheus: the staging password from a file, sent as
basic auth and never printed (issue 20, item 9); the standard library only."""

from __future__ import annotations

import ast
import base64
import subprocess
import sys
from pathlib import Path

from tests.commands.fakes import FakeServer, prometheus_json

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-from-the-file-7c1"


def test_the_password_file_is_sent_as_basic_auth_and_never_printed(tmp_path: Path) -> None:
    token = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    server = FakeServer()
    server.answer = lambda method, path: (
        (200, "application/json", prometheus_json([{"metric": {}, "value": [0, "0.01"]}]))
        if any(auth == token for _, p, auth in server.requests[-1:]) else
        (401, "text/plain", b"Unauthorized"))
    password_file = tmp_path / "basic_auth_password"
    password_file.write_text(PASSWORD + "\n")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tools.diagnose", "--prometheus", server.url,
             "--password-file", str(password_file)],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        server.close()
    out = proc.stdout + proc.stderr
    assert PASSWORD not in out
    assert proc.returncode == 0, out
    assert "ok        high_latency: 0.01 s" in out
    assert server.requests and all(auth == token for _, _, auth in server.requests)


def test_runs_with_the_standard_library_only() -> None:
    """Operators run tools/ on a host without the virtualenv (staging)."""
    stdlib = set(sys.stdlib_module_names) | {"tools"}
    for path in sorted((ROOT / "tools").glob("*.py")):
        tree = ast.parse(path.read_text())
        imported = {n.name.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.Import) for n in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module and not node.level}
        # bcrypt is optional in tools/secrets.py (imported inside a try, with a fallback).
        assert imported - stdlib <= {"bcrypt"}, f"{path.name}: {imported - stdlib}"
