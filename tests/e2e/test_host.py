"""Host-side checks with pytest-testinfra, shared by both backends.

    --backend=native   testinfra's local backend: the processes supervisor runs, .run/ layout
    --backend=compose  testinfra's docker backend, one host per container (`make smoke`)

The same test functions run against both: only the table of where things live differs
(docs/native.md and the compose file document those places). Published ports are checked on
the local host in both cases: natively the processes bind them, under compose Docker's
port publishing does, and either way they must be bound to loopback only.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import testinfra

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / ".run"


@dataclass(frozen=True)
class Place:
    """Where one component lives on one backend."""

    program: str  # substring of the process command line
    config: str | None  # config file the process reads (absolute path on that host)
    data: str | None  # state directory
    port: int


NATIVE = {
    "prometheus": Place("prometheus", f"{RUN}/prometheus/prometheus.yml",
                        f"{RUN}/prometheus/data", 9090),
    "alertmanager": Place("alertmanager", f"{RUN}/alertmanager/alertmanager.yml",
                          f"{RUN}/alertmanager/data", 9093),
    "node-exporter": Place("node-exporter", None, None, 9100),
    "blackbox-exporter": Place("blackbox", f"{RUN}/blackbox/blackbox.yml", None, 9115),
    "api": Place("apollonia api", None, None, 8000),
    "analyzer": Place("apollonia analyzer", None, None, 8001),
    "webhook-sink": Place("apollonia.webhook_sink", None, None, 5001),
}

COMPOSE = {
    "prometheus": Place("prometheus", "/etc/prometheus/prometheus.yml", "/prometheus", 9090),
    "alertmanager": Place("alertmanager", "/etc/alertmanager/alertmanager.yml", "/alertmanager",
                          9093),
    "node-exporter": Place("node_exporter", None, None, 9100),
    "blackbox-exporter": Place("blackbox_exporter", "/etc/blackbox_exporter/config.yml", None,
                               9115),
    "api": Place("apollonia api", None, None, 8000),
    "analyzer": Place("apollonia analyzer", None, None, 8001),
    "webhook-sink": Place("apollonia.webhook_sink", None, None, 5001),
}

# The workload's servers and their exporters in the native run (native/deps.py); their
# configs are generated (they carry passwords, so 0600) rather than linked from the repo.
NATIVE_DEPENDENCIES = {
    "postgres": Place("postgres -D", None, f"{RUN}/postgres/data", 15432),
    "postgres-exporter": Place("postgres-exporter", None, None, 9187),
    "redis": Place("redis-server", f"{RUN}/redis/redis.conf", None, 16379),
    "redis-exporter": Place("redis-exporter", None, None, 9121),
    "epmd": Place("epmd", None, None, 4370),
    "rabbitmq": Place("rabbitmq-server", f"{RUN}/rabbitmq/rabbitmq.conf",
                      f"{RUN}/rabbitmq/mnesia", 5673),
}
DEPENDENCY_OF = {"postgres": "postgres", "postgres-exporter": "postgres", "redis": "redis",
                 "redis-exporter": "redis", "epmd": "rabbitmq", "rabbitmq": "rabbitmq"}
RABBITMQ_ALSO = [15693, 25673]  # its Prometheus plugin and the Erlang distribution port

# Ports published on the host by each backend (node-exporter and blackbox stay on the compose
# network, unpublished).
PUBLISHED = {
    "native": [p.port for p in NATIVE.values()],
    "compose": [9090, 9093, 8000, 8001, 5001],
}


def published(backend: str) -> list[int]:
    if backend != "native":
        return PUBLISHED[backend]
    from native import deps

    running = {n: p for n, p in NATIVE_DEPENDENCIES.items()
               if DEPENDENCY_OF[n] not in deps.missing()}
    extra = RABBITMQ_ALSO if "rabbitmq" in running else []
    return PUBLISHED["native"] + [p.port for p in running.values()] + extra

COMPONENTS = sorted(NATIVE)


def _places(backend: str) -> dict[str, Place]:
    return NATIVE if backend == "native" else COMPOSE


@pytest.fixture(scope="module")
def hosts(backend: str, stack):  # noqa: ANN001,ARG001 - `stack` makes sure it is running
    """component -> (testinfra host, pid of the component's process on that host)."""
    if backend == "native":
        from native import stack as native

        local = testinfra.get_host("local://")
        out = {}
        for name in COMPONENTS:
            pid = native.ctl("pid", name).stdout.strip()
            out[name] = (local, int(pid) if pid.isdigit() and pid != "0" else None)
        return out
    docker = shutil.which("docker")
    if not docker:
        pytest.skip("compose backend needs the docker client")
    out = {}
    for name in COMPONENTS:
        # By compose labels: independent of which profiles the stack was started with.
        cid = subprocess.run(
            [docker, "ps", "-q", "--filter", "label=com.docker.compose.project=apollonia",
             "--filter", f"label=com.docker.compose.service={name}"],
            capture_output=True, text=True, timeout=30,
        ).stdout.strip().split("\n")[0]
        # PID 1 of the container is the component (no init wrapper in these images).
        out[name] = (testinfra.get_host(f"docker://{cid}"), 1) if cid else (None, None)
    return out


@pytest.mark.parametrize("name", COMPONENTS)
def test_process_runs(name: str, hosts, backend: str) -> None:
    host, pid = hosts[name]
    assert host is not None and pid, f"{name}: no running process/container ({backend})"
    cmdline = host.file(f"/proc/{pid}/cmdline").content_string.replace("\0", " ")
    place = _places(backend)[name]
    assert place.program in cmdline, f"{name}: pid {pid} runs {cmdline!r}"
    if place.config:
        assert place.config in cmdline, (
            f"{name} does not read {place.config}: {cmdline!r}")


WITH_FILES = [n for n in COMPONENTS if NATIVE[n].config or NATIVE[n].data]


@pytest.mark.parametrize("name", WITH_FILES)
def test_config_and_data_where_documented(name: str, hosts, backend: str) -> None:
    host, _ = hosts[name]
    place = _places(backend)[name]
    if place.config:
        cfg = host.file(place.config)
        assert cfg.exists and cfg.is_file, f"{name}: {place.config} missing"
        if backend == "native":
            # natively the bundle's own file is used (a symlink into the repo), never a copy
            assert cfg.is_symlink, f"{place.config} should link to the repo's file"
            assert Path(cfg.linked_to).is_relative_to(ROOT), cfg.linked_to
    if place.data:
        data = host.file(place.data)
        assert data.exists and data.is_directory, f"{name}: state dir {place.data} missing"


def test_ports_listen_only_on_loopback(backend: str, stack) -> None:  # noqa: ANN001,ARG001
    local = testinfra.get_host("local://")
    listening = local.socket.get_listening_sockets()
    problems, missing = [], []
    for port in published(backend):
        binds = [s for s in listening if s.startswith("tcp") and s.rsplit(":", 1)[-1] == str(port)]
        if not binds:
            missing.append(port)
        problems += [s for s in binds if not _loopback(s)]
    assert not missing, f"nothing listens on {missing}"
    assert not problems, f"listening beyond loopback: {problems}"


def _loopback(sock: str) -> bool:
    addr = sock.split("://", 1)[1].rsplit(":", 1)[0].strip("[]")
    return addr.startswith("127.") or addr == "::1"


@pytest.mark.parametrize("name", sorted(NATIVE_DEPENDENCIES))
def test_dependency_runs_with_its_state_under_run(name: str, backend: str, stack) -> None:  # noqa: ANN001,ARG001
    if backend != "native":
        pytest.skip("the compose services are checked by tests/policy and make smoke")
    from native import deps
    from native import stack as native

    dep = DEPENDENCY_OF[name]
    if dep in deps.missing():
        pytest.skip(f"the native run simulates {dep} (make bootstrap says why)")
    place = NATIVE_DEPENDENCIES[name]
    local = testinfra.get_host("local://")
    pid = native.ctl("pid", name).stdout.strip()
    assert pid.isdigit() and pid != "0", f"{name} is not running"
    cmdline = local.file(f"/proc/{pid}/cmdline").content_string.replace("\0", " ")
    assert place.program in cmdline, f"{name}: pid {pid} runs {cmdline!r}"
    if place.data:
        assert place.data in cmdline or name == "rabbitmq", cmdline
        assert local.file(place.data).is_directory, place.data
    if place.config:
        cfg = local.file(place.config)
        assert cfg.is_file and cfg.mode == 0o600, f"{place.config}: {oct(cfg.mode)}"
