"""tools/doctor.py: runs here (no Docker engine) and each check fails when it should."""

from __future__ import annotations

import copy
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import namedtuple
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
    checks = [line for line in lines if line.startswith(("PASS  ", "FAIL  ", "SKIP  "))]
    names = [line[6:].split(":")[0] for line in checks]
    assert names == [
        "docker engine",
        "docker compose",
        "compose config",
        "memory",
        "disk",
        "vm.max_map_count",
        "ports",
        "host",
        "node-exporter mounts",
        "docker root",
        "docker socket",
        "secrets",
        "file permissions",
    ]
    assert all(" -> fix: " in line for line in checks if line.startswith("FAIL"))
    assert lines[-1].startswith("doctor: ")
    if not _engine_reachable():
        assert checks[0].startswith("FAIL  docker engine: no Docker engine reachable")
        assert proc.returncode == 1
        # The engine is the cause; what needs it is skipped, not failed a second time.
        skipped = [line[6:].split(":")[0] for line in checks if line.startswith("SKIP")]
        assert skipped == ["host", "node-exporter mounts", "docker root", "docker socket"]


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


def test_port_a_closed_connection_left_in_time_wait_is_free() -> None:
    """A server's side of a connection it closed first stays in TIME_WAIT for a minute with the
    port as its local address; docker-proxy binds anyway (SO_REUSEADDR), so must the check, or
    `make up` right after `make down` (or a backup's API calls) fails on its own ports."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        conn.close()  # the server closes first: TIME_WAIT on 127.0.0.1:<port>
        client.close()
    time.sleep(0.2)
    assert doctor.check_ports([("prometheus", "127.0.0.1", port)]).ok


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


def test_missing_compose_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert doctor.main(["--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "compose.yaml: not found" in err


# --- the host's kind and the checks that depend on it (fake `docker info`) -------------------

Usage = namedtuple("Usage", "total used free")
GB = 1000**3
LINUX_INFO = {
    "ServerVersion": "28.3.0",
    "OperatingSystem": "Ubuntu 24.04.3 LTS",
    "KernelVersion": "6.8.0-71-generic",
    "SecurityOptions": ["name=apparmor"],
    "DockerRootDir": "/var/lib/docker",
    "MemTotal": 4 * 1024**3,
}
DESKTOP_INFO = {
    **LINUX_INFO,
    "OperatingSystem": "Docker Desktop",
    "KernelVersion": "6.10.14-linuxkit",
}
ROOTLESS_INFO = {
    **LINUX_INFO,
    "SecurityOptions": ["name=seccomp,profile=builtin", "name=rootless", "name=cgroupns"],
    "DockerRootDir": "/home/ana/.local/share/docker",
}
WSL_INFO = {**LINUX_INFO, "KernelVersion": "5.15.167.4-microsoft-standard-WSL2"}
# /proc/1/mountinfo root lines: systemd makes / shared; a container runtime VM may not.
SHARED_ROOT = "23 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
PRIVATE_ROOT = "23 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"


def _host(info: dict, **kw) -> doctor.Host:
    defaults = {
        "meminfo": VM_4GB,
        "max_map_count": "262144\n",
        "mountinfo": SHARED_ROOT,
        "proc_version": "Linux version 6.8.0",
        "disk_usage": lambda p: Usage(500 * GB, 200 * GB, 300 * GB),
    }
    return doctor.Host(info=info, **{**defaults, **kw})


@pytest.mark.parametrize(
    "info,kind",
    [
        (LINUX_INFO, "linux"),
        (DESKTOP_INFO, "docker-desktop"),
        (ROOTLESS_INFO, "rootless"),
        (WSL_INFO, "wsl"),
        ({}, "unknown"),
    ],
)
def test_host_kind_from_docker_info(info: dict, kind: str) -> None:
    assert doctor.host_kind(_host(info)) == kind


@pytest.mark.parametrize("mode", ["rprivate", "rslave", "rshared"])
def test_an_explicit_propagation_fails(local_config: dict, mode: str) -> None:
    """Any explicit mode fails on some host: rprivate on every one (the bind contains the
    engine's data root), rslave/rshared where / is not shared (tests/engine proves both)."""
    cfg = copy.deepcopy(local_config)
    bind = next(v for v in cfg["services"]["node-exporter"]["volumes"] if v["target"] == "/host")
    bind.setdefault("bind", {})["propagation"] = mode
    result = doctor.check_propagation(cfg, _host(LINUX_INFO))
    assert not result.ok and "remove the propagation" in result.fix, result


def test_the_engines_propagation_works_everywhere(local_config: dict) -> None:
    for info in (LINUX_INFO, DESKTOP_INFO, ROOTLESS_INFO, WSL_INFO):
        assert doctor.check_propagation(local_config, _host(info)).ok, info
    assert "rslave" in doctor.check_propagation(local_config, _host(LINUX_INFO)).detail
    private = doctor.check_propagation(local_config, _host(LINUX_INFO, mountinfo=PRIVATE_ROOT))
    assert "private" in private.detail


def test_docker_root_must_be_the_engines(local_config: dict, tmp_path: Path) -> None:
    snap = {**LINUX_INFO, "DockerRootDir": "/var/snap/docker/common/var-lib-docker"}
    wrong = doctor.check_docker_root(local_config, _host(snap))
    assert not wrong.ok
    assert wrong.fix == "set DOCKER_ROOT_DIR=/var/snap/docker/common/var-lib-docker in .env"
    moved = rules.render([REPO / "compose.yaml"], env={"DOCKER_ROOT_DIR": str(tmp_path)})
    ok = doctor.check_docker_root(moved, _host({**LINUX_INFO, "DockerRootDir": str(tmp_path)}))
    assert ok.ok, ok
    assert doctor.check_docker_root(local_config, _host(DESKTOP_INFO)).ok


def test_rootless_socket_fix(local_config: dict) -> None:
    result = doctor.check_docker_socket(local_config, _host(ROOTLESS_INFO))
    if Path("/var/run/docker.sock").exists():
        pytest.skip("this machine has /var/run/docker.sock")
    assert not result.ok and "XDG_RUNTIME_DIR" in result.fix


def test_laptop_disk_keeps_new_primaries_assigned(local_config: dict) -> None:
    """A 500 GB laptop disk 91 % full (45 GB free): with Elasticsearch's default 90 %
    high watermark new primaries stay unassigned; compose's free-space watermarks
    must allow them, and the doctor passes it."""
    total, free = 500 * GB, 45 * GB
    marks = doctor.watermarks(local_config)
    assert free >= doctor.required_free(marks["high"], total), marks
    assert free >= doctor.required_free(marks["flood_stage"], total)
    assert free < doctor.required_free(doctor.ES_DEFAULT_WATERMARKS["high"], total)
    laptop = doctor.check_disk(Path("/var/lib/docker"), marks, Usage(total, total - free, free))
    assert laptop.ok, laptop


def test_disk_fails_below_the_watermarks(local_config: dict, staging_config: dict) -> None:
    total = 500 * GB
    small = doctor.check_disk(
        Path("/d"), doctor.watermarks(local_config), Usage(total, total - 8 * GB, 8 * GB)
    )
    assert not small.ok and "/d: 7.5 GiB free" in small.detail and "free space" in small.fix
    # The staging overlay restores Elasticsearch's percentages: 91 % used fails there.
    staging = doctor.check_disk(
        Path("/d"), doctor.watermarks(staging_config), Usage(total, total - 45 * GB, 45 * GB)
    )
    assert not staging.ok and "low 85%" in staging.detail
    assert doctor.check_disk(Path("/d"), {}, None, "docker-desktop").ok


@pytest.mark.parametrize(
    "text,total,free",
    [("90%", 1000, 100), ("0.85", 1000, 150), ("1gb", 0, 1024**3), ("512mb", 0, 512 * 1024**2)],
)
def test_watermark_values(text: str, total: int, free: int) -> None:
    assert doctor.required_free(text, total) == free


def test_this_stacks_own_ports_do_not_block_make_up() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert doctor.check_ports([("grafana", "127.0.0.1", port)], own={port}).ok
        assert not doctor.check_ports([("grafana", "127.0.0.1", port)], own=set()).ok


def test_engine_memory_and_vm_map_count_on_docker_desktop(local_config: dict) -> None:
    """On macOS there is no /proc: the engine's MemTotal (the VM's) is what counts."""
    host = _host(DESKTOP_INFO, meminfo=None, max_map_count=None)
    checks = {r.name: r for r in doctor.host_checks(local_config, host, REPO)}
    assert checks["memory"].ok and "(engine)" in checks["memory"].detail
    assert checks["vm.max_map_count"].ok
    small = doctor.check_memory(local_config, None, engine_total=2 * 1024**3)
    assert not small.ok


def test_make_up_stops_on_a_failed_preflight(tmp_path: Path) -> None:
    """`make up-compose` runs the doctor first and starts nothing when a line fails
    (here: no Docker engine); the compose command is a marker that must not run."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in tracked:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, tmp_path / rel)
    (tmp_path / ".tools").symlink_to(REPO / ".tools")
    marker = tmp_path / "compose-ran"
    fake = tmp_path / "fake-compose"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\n")
    fake.chmod(0o755)
    proc = subprocess.run(
        ["make", "--no-print-directory", "up-compose", f"COMPOSE_BIN={fake}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock"},
    )
    assert proc.returncode != 0
    assert not marker.exists(), "compose ran although the preflight failed"
    assert "make up: stopped before starting anything" in proc.stderr
    fails = [line for line in proc.stdout.splitlines() if line.startswith("FAIL")]
    assert fails and all(" -> fix: " in line for line in fails), proc.stdout


def test_binds_only_root_with_dac_read_search_reads_need_no_world_read(tmp_path: Path) -> None:
    """cAdvisor (root, CAP_DAC_READ_SEARCH) reads Docker's data root whatever its mode; the
    engine suite keeps that root in the checkout, where the doctor used to ask for o+rX."""
    private = tmp_path / "engine-root"
    private.mkdir(mode=0o700)
    shared = tmp_path / "config.yml"
    shared.write_text("x: 1\n")
    cfg = {"services": {
        "cadvisor": {"user": "0:0", "cap_add": ["DAC_READ_SEARCH"],
                     "volumes": [{"type": "bind", "source": str(private)}]},
        "prometheus": {"user": "65534:65534",
                       "volumes": [{"type": "bind", "source": str(shared)}]},
    }}
    assert doctor.mounted_paths(cfg, tmp_path) == [shared]
    cfg["services"]["cadvisor"]["cap_add"] = []
    assert private in doctor.mounted_paths(cfg, tmp_path)
