"""The engine suite: compose.yaml and its overlays run on a private Docker engine.

    make test-engine          (part of make test; ENGINE_KEEP=1 leaves the engine and stack up)

Fixtures:
  engine    the private engine (dev/engine/daemon.py: sid's Docker 28.5.2, own data root under
            .engine/, own socket), with every facsimile and stand-in image built from
            tests/policy/images.yml; started once, stopped at the end with nothing left behind.
  bundle    `make up` against that engine (doctor, secrets, `compose up --build --wait`, demo
            profile) from clean volumes: a Compose handle for the project. Its files are
            compose.yaml plus tests/engine/compose.engine.yaml (the workload's build steps use the
            host's network: the engine gives containers none beyond this machine).

Every test that uses `engine` is marked `engine`: `make test-engine` selects them and the other
suites deselect them. Without root or the engine's binaries they skip with the reason; with
CI=true that is a failure instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from dev.engine import daemon, facsimile

ROOT = Path(__file__).resolve().parents[2]
ENGINE_OVERRIDE = ROOT / "tests" / "engine" / "compose.engine.yaml"
COMPOSE_BIN = ROOT / ".tools" / "bin" / "docker-compose"
PROJECT = "apollonia"
PROMETHEUS = "http://127.0.0.1:9090"
ALERTMANAGER = "http://127.0.0.1:9093"
SINK = "http://127.0.0.1:5001"
# Elasticsearch refuses to start below this (its bootstrap check; the doctor checks it): the
# suite raises the host's value for its run and puts the old one back.
MAX_MAP_COUNT = 262144


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


# The order the engine suite runs in: what needs no stack, then the stack's checks, then what
# stops, kills or replaces it (faults, the overlays), so a later test starts from a known state.
ORDER = ("test_standins", "test_node_exporter", "test_bundle", "test_facsimiles",
         "test_alert_path", "test_fluentd_driver", "test_signal_truth", "test_memory",
         "test_faults", "test_overlays")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "engine" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.engine)

    def rank(item: pytest.Item) -> int:
        module = item.path.stem
        return ORDER.index(module) + 1 if module in ORDER else 0

    items.sort(key=rank)


@dataclass
class Compose:
    """docker-compose for one project on the private engine."""

    engine: daemon.Engine
    files: list[Path]
    profiles: list[str] = field(default_factory=lambda: ["demo"])
    project: str = PROJECT
    env: dict[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        env = self.engine.env()
        env.update({
            # cAdvisor binds the engine's data root and socket (compose.yaml, cadvisor).
            "DOCKER_ROOT_DIR": str(self.engine.data_root),
            "DOCKER_SOCKET": str(self.engine.socket),
        })
        env.update(self.env)
        return env

    def args(self) -> list[str]:
        args = [str(COMPOSE_BIN), "--project-name", self.project]
        for f in self.files:
            args += ["-f", str(f)]
        for p in self.profiles:
            args += ["--profile", p]
        return args

    def run(self, *args: str, timeout: float = 300, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*self.args(), *args], cwd=ROOT, env=self.environment(),
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def containers(self) -> list[dict[str, Any]]:
        out = self.run("ps", "--all", "--format", "json").stdout.strip()
        if not out:
            return []
        if out.startswith("["):
            return json.loads(out)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def container(self, service: str) -> str:
        return self.run("ps", "--all", "--quiet", service).stdout.strip().splitlines()[0]

    def inspect(self, service: str) -> dict[str, Any]:
        out = self.engine.docker("inspect", self.container(service)).stdout
        return json.loads(out)[0]

    def logs(self, service: str, tail: int = 60) -> str:
        proc = self.run("logs", "--no-color", "--tail", str(tail), service, check=False)
        return proc.stdout + proc.stderr

    def wait_healthy(self, services: list[str] | None = None, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        state: list[str] = []
        while time.monotonic() < deadline:
            state = unhealthy(self.containers(), services)
            if not state:
                return
            time.sleep(3)
        raise AssertionError(f"not healthy after {timeout:.0f}s: {state}")


def unhealthy(containers: list[dict[str, Any]], services: list[str] | None = None) -> list[str]:
    """Services not running healthy (one-shots: not exited 0)."""
    bad = []
    for c in containers:
        if services and c["Service"] not in services:
            continue
        state, health = c.get("State"), c.get("Health", "")
        one_shot = c["Service"] in ("volume-init", "elasticsearch-setup", "vmstorage-init")
        if one_shot:
            if state != "exited" or int(c.get("ExitCode", -1)) != 0:
                bad.append(f"{c['Service']}: {state} exit {c.get('ExitCode')}")
        elif state != "running" or health not in ("healthy", ""):
            bad.append(f"{c['Service']}: {state} {health}")
    return bad


@contextlib.contextmanager
def _max_map_count() -> Iterator[None]:
    path = Path("/proc/sys/vm/max_map_count")
    old = int(path.read_text())
    if old < MAX_MAP_COUNT:
        path.write_text(f"{MAX_MAP_COUNT}\n")
    try:
        yield
    finally:
        if old < MAX_MAP_COUNT:
            path.write_text(f"{old}\n")


@pytest.fixture(scope="session")
def engine() -> Iterator[daemon.Engine]:
    try:
        eng = daemon.start("main")
        facsimile.build_all(eng)
    except daemon.EngineError as exc:
        if _ci():
            pytest.fail(f"CI=true and the private Docker engine is unavailable: {exc}",
                        pytrace=False)
        pytest.skip(f"private Docker engine unavailable: {exc}")
    with _max_map_count():
        yield eng
    if not os.environ.get("ENGINE_KEEP"):
        daemon.stop("main")
        daemon.stop("shared")


def make(engine: daemon.Engine, *targets: str, files: list[Path], profiles: str = "demo",
         timeout: float = 900, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    """Run the Makefile's own targets (the README's commands) against the private engine."""
    compose = Compose(engine, files)
    menv = compose.environment()
    menv.update(env or {})
    menv["COMPOSE_FILES"] = " ".join(f"-f {f.relative_to(ROOT)}" for f in files)
    menv["PROFILES"] = profiles
    # The Makefile picks `docker compose` when the CLI has the plugin, else .tools' build.
    menv["COMPOSE_BIN"] = str(COMPOSE_BIN)
    return subprocess.run(["make", "--no-print-directory", *targets], cwd=ROOT, env=menv,
                          capture_output=True, text=True, timeout=timeout)


def _busy(ports: list[int]) -> list[int]:
    busy = []
    for port in ports:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                busy.append(port)
    return busy


def wait_ports_free(compose: Compose, timeout: float = 120) -> None:
    """The ports this stack publishes, free (another stack on this machine may be stopping:
    the suite shares 127.0.0.1 with the native run and other checkouts' engines)."""
    config = json.loads(compose.run("config", "--format", "json").stdout)
    ports = sorted({int(p["published"]) for svc in config["services"].values()
                    for p in svc.get("ports") or [] if p.get("published")})
    deadline = time.monotonic() + timeout
    while (busy := _busy(ports)) and time.monotonic() < deadline:
        time.sleep(2)
    if busy:
        who = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout \
            if shutil.which("ss") else ""
        users = [line for line in who.splitlines()
                 if any(f"127.0.0.1:{p} " in line for p in busy)]
        raise AssertionError(f"ports {busy} still in use after {timeout:.0f}s: {users}")


@pytest.fixture(scope="session")
def bundle(engine: daemon.Engine) -> Iterator[Compose]:
    """The stack as `make up` starts it, from clean volumes."""
    files = [ROOT / "compose.yaml", ENGINE_OVERRIDE]
    compose = Compose(engine, files)
    compose.run("down", "--volumes", "--remove-orphans", timeout=180)
    wait_ports_free(compose)
    started = time.monotonic()
    proc = make(engine, "up", files=files)
    took = time.monotonic() - started
    if proc.returncode != 0:
        raise AssertionError(f"make up failed after {took:.0f}s:\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}\n{unhealthy(compose.containers())}")
    print(f"\nmake up on the private engine: healthy after {took:.1f}s")
    yield compose
    if not os.environ.get("ENGINE_KEEP"):
        compose.run("down", "--volumes", "--remove-orphans", timeout=180, check=False)


def prom_query(expr: str, url: str = PROMETHEUS) -> list[dict[str, Any]]:
    resp = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    resp.raise_for_status()
    return resp.json()["data"]["result"]


def wait_for(what: str, check: Any, timeout: float, interval: float = 2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {last!r})")
