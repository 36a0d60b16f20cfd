"""tools/doctor.py: runs here (no Docker engine) and each check fails when it should."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.policy import rules
from tools import doctor

REPO = rules.REPO
# /proc/meminfo of a VM sold as 4 GB: the kernel keeps some, MemTotal shows ~3.8 GiB.
VM_4GB = "MemTotal:        3995124 kB\nMemAvailable:    3600000 kB\n"
VM_2GB = "MemTotal:        1995124 kB\nMemAvailable:    1800000 kB\n"


def _engine_reachable() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=15).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_doctor_runs_here_one_line_per_check() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.doctor"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PROFILES": "demo"},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    checks = [line for line in lines if line.startswith(("PASS  ", "FAIL  "))]
    names = [line[6:].split(":")[0] for line in checks]
    assert names == [
        "docker engine",
        "docker compose",
        "compose config",
        "memory",
        "disk",
        "vm.max_map_count",
        "ports",
        "secrets",
        "file permissions",
    ]
    assert all(" -> fix: " in line for line in checks if line.startswith("FAIL"))
    assert lines[-1].startswith("doctor: ")
    if not _engine_reachable():
        assert checks[0].startswith("FAIL  docker engine: no Docker engine reachable")
        assert proc.returncode == 1


def test_stack_fits_a_4gb_vm(local_config: dict) -> None:
    assert doctor.check_memory(local_config, VM_4GB).ok, doctor.check_memory(local_config, VM_4GB)
    small = doctor.check_memory(local_config, VM_2GB)
    assert not small.ok and "more memory" in small.fix


def test_max_map_count() -> None:
    low = doctor.check_max_map_count("65530\n")
    assert not low.ok and "sysctl -w vm.max_map_count=262144" in low.line()
    assert doctor.check_max_map_count("262144\n").ok


def test_busy_port_is_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        busy = doctor.check_ports([("grafana", "127.0.0.1", port)])
        assert not busy.ok and f"127.0.0.1:{port} (grafana)" in busy.detail
    assert doctor.check_ports([("grafana", "127.0.0.1", port)]).ok


def test_unreadable_config_is_reported(tmp_path: Path) -> None:
    conf = tmp_path / "prometheus.yml"
    conf.write_text("global: {}\n")
    conf.chmod(0o600)
    bad = doctor.check_ownership([conf], tmp_path)
    assert not bad.ok and "prometheus.yml" in bad.detail and "chmod" in bad.fix
    conf.chmod(0o644)
    assert doctor.check_ownership([conf], tmp_path).ok


def test_missing_secrets_are_reported(tmp_path: Path) -> None:
    wanted = [tmp_path / "secrets" / "grafana_admin_password", tmp_path / "grafana.ini"]
    missing = doctor.check_secrets(wanted, tmp_path)
    assert not missing.ok and missing.detail == "missing secrets/grafana_admin_password"
    assert "make secrets" in missing.fix
    (tmp_path / "secrets").mkdir()
    wanted[0].write_text("x" * 32)
    assert doctor.check_secrets(wanted, tmp_path).ok


def test_disk_line_names_the_watermark(tmp_path: Path) -> None:
    result = doctor.check_disk(tmp_path)
    assert str(tmp_path) in result.detail and "85%" in result.detail


def test_missing_compose_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert doctor.main(["--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "compose.yaml: not found" in err
