"""The smoke suite's own wiring, proven without a Docker engine: a stand-in `docker` CLI on
PATH answers like Docker does, and the real smoke tests run against it in a child pytest.

Checked: the skip reason when no engine answers, and that a failing check prints
`docker compose logs` of the failing service.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.logs_traces.conftest import ROOT

CONTAINERS = [
    {"Service": "api", "State": "running", "Health": "healthy", "ExitCode": 0},
    {"Service": "fluent-bit", "State": "running", "Health": "unhealthy", "ExitCode": 0},
    {"Service": "elasticsearch-setup", "State": "exited", "Health": "", "ExitCode": 0},
]

FAKE_DOCKER = """#!{python}
import json, sys
args = sys.argv[1:]
if args[:1] == ["info"]:
    if {engine}:
        print("27.3.1")
        sys.exit(0)
    print("Cannot connect to the Docker daemon", file=sys.stderr)
    sys.exit(1)
if args[:2] == ["compose", "version"]:
    print("Docker Compose version v2.40.3")
elif args[:2] == ["compose", "ps"]:
    for c in {containers}:
        print(json.dumps(c))
elif args[:2] == ["compose", "logs"]:
    print("FAKE LOG LINE of " + args[-1])
else:
    sys.exit(2)
"""


def run_smoke(tmp_path: Path, engine: bool) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(
        FAKE_DOCKER.format(python=sys.executable, engine=engine, containers=CONTAINERS),
        encoding="utf-8",
    )
    docker.chmod(docker.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    return subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q",
            "tests/smoke/test_containers.py::test_every_container_healthy",
            "--backend=compose",
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_no_engine_means_skip_with_reason(tmp_path):
    result = run_smoke(tmp_path, engine=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no Docker engine reachable" in result.stdout
    assert "1 skipped" in result.stdout


def test_failure_prints_compose_logs_of_the_failing_service(tmp_path):
    result = run_smoke(tmp_path, engine=True)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "fluent-bit: running, health unhealthy" in out
    assert "logs --tail 100 fluent-bit" in out
    assert "FAKE LOG LINE of fluent-bit" in out
    # Healthy and completed services are not blamed.
    assert "FAKE LOG LINE of api" not in out
    assert "FAKE LOG LINE of elasticsearch-setup" not in out
    assert json.dumps(CONTAINERS[0]) not in out
