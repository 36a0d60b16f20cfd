"""Smoke checks that need the compose stack on a Docker host (`make smoke`).

They run only with --backend=compose and a reachable Docker engine; otherwise every test here
is skipped with the reason. With both, a stack that is not up is a failure, not a skip.

Stand-ins: on the engine suite's private engine (tests/engine) Grafana, Elasticsearch, Jaeger,
Fluent Bit and cAdvisor are stand-ins (their image carries the label org.apollonia.standin).
A test whose client fixture (es, grafana, jaeger) reaches one says so in the summary; a test
whose claim only the real program can make (`real("fluent-bit", why)`) is skipped there with
that reason, and runs for real in the bundle's CI workflow on a hosted runner.

On failure the report gets `docker compose logs --tail 100 <service>` of every service the
test watched (`compose.watch("fluent-bit", ...)`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRETS = ROOT / "secrets"
LOG_TAIL = 100

ES_URL = "http://127.0.0.1:9200"
JAEGER_URL = "http://127.0.0.1:16686"
GRAFANA_URL = "http://127.0.0.1:3000"
API_URL = "http://127.0.0.1:8000"


def compose_command() -> list[str] | None:
    """`docker compose` (plugin) if the CLI has it, else a standalone docker-compose."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=20)
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose") or ROOT / ".tools" / "bin" / "docker-compose"
    return [str(standalone)] if Path(standalone).exists() else None


def docker_engine_reachable() -> bool:
    docker = shutil.which("docker")
    if not docker:
        return False
    try:
        info = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, timeout=15
        )
    except subprocess.TimeoutExpired:
        return False
    return info.returncode == 0


class ComposeStack:
    """Thin wrapper over the compose CLI for the project in the repository root."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.watched: list[str] = []
        self._standins: dict[str, str | None] = {}

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )

    def watch(self, *services: str) -> None:
        self.watched.extend(s for s in services if s not in self.watched)

    def containers(self) -> list[dict[str, Any]]:
        """`compose ps --all` as dicts (Service, State, Health, ExitCode, ...)."""
        out = self.run("ps", "--all", "--format", "json").stdout.strip()
        if not out:
            return []
        if out.startswith("["):  # older compose: one JSON array
            return json.loads(out)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def logs(self, service: str, tail: int = LOG_TAIL) -> str:
        proc = self.run("logs", "--no-color", "--tail", str(tail), service, timeout=60)
        return proc.stdout + proc.stderr

    def standin(self, service: str) -> str | None:
        """What stands in for `service` here (its image's org.apollonia.standin), or None."""
        if service not in self._standins:
            ids = self.run("ps", "--quiet", service).stdout.split()
            label = None
            if ids:
                docker = shutil.which("docker") or "docker"
                out = subprocess.run([docker, "inspect", "--format",
                                      '{{index .Config.Labels "org.apollonia.standin"}}', ids[0]],
                                     capture_output=True, text=True, timeout=30).stdout.strip()
                label = out if out and out != "<no value>" else None
            self._standins[service] = label
        return self._standins[service]

    def wait_healthy(self, service: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = next((c for c in self.containers() if c["Service"] == service), {})
            if state.get("State") == "running" and state.get("Health") in ("healthy", ""):
                return
            time.sleep(3)
        pytest.fail(f"{service} not healthy after {timeout:.0f}s: {state}", pytrace=False)


@pytest.fixture(scope="session")
def compose_session(backend: str) -> ComposeStack:
    if not docker_engine_reachable():
        pytest.skip("no Docker engine reachable")
    if backend != "compose":
        pytest.skip("compose smoke checks run with --backend=compose (make smoke)")
    command = compose_command()
    if command is None:
        pytest.skip("no docker compose CLI found")
    stack = ComposeStack(command)
    if not any(c.get("State") == "running" for c in stack.containers()):
        pytest.fail("the compose stack is not running: start it with `make up`", pytrace=False)
    return stack


@pytest.fixture
def compose(compose_session: ComposeStack) -> Iterator[ComposeStack]:
    compose_session.watched = []
    yield compose_session


def secret(name: str) -> str:
    path = SECRETS / name
    if not path.is_file():
        pytest.fail(f"{path} missing: run `make secrets` (and `make up`)", pytrace=False)
    return path.read_text(encoding="utf-8").strip()


STANDINS_REACHED = pytest.StashKey[dict[str, set[str]]]()


def _note_standin(request: pytest.FixtureRequest, compose: ComposeStack, service: str) -> None:
    label = compose.standin(service)
    if label:
        reached = request.config.stash.setdefault(STANDINS_REACHED, {})
        reached.setdefault(request.node.nodeid, set()).add(f"{service}: {label}")


@pytest.fixture
def real(compose: ComposeStack) -> Callable[[str, str], None]:
    """`real(service, why)`: skip when `service` is a stand-in here, saying why it matters."""

    def need(service: str, why: str) -> None:
        label = compose.standin(service)
        if label:
            pytest.skip(f"{service} is a stand-in on this engine ({label}): {why}")

    return need


@pytest.fixture
def es(compose: ComposeStack, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    _note_standin(request, compose, "elasticsearch")
    auth = ("elastic", secret("elasticsearch_password"))
    with httpx.Client(base_url=ES_URL, auth=auth, timeout=15) as client:
        yield client


@pytest.fixture
def grafana(compose: ComposeStack, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    _note_standin(request, compose, "grafana")
    auth = ("admin", secret("grafana_admin_password"))
    with httpx.Client(base_url=GRAFANA_URL, auth=auth, timeout=15) as client:
        yield client


@pytest.fixture
def jaeger(compose: ComposeStack, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    _note_standin(request, compose, "jaeger")
    with httpx.Client(base_url=JAEGER_URL, timeout=15) as client:
        yield client


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    reached = config.stash.get(STANDINS_REACHED, {})
    if reached:
        terminalreporter.section("tests that reached a stand-in")
        for nodeid, what in sorted(reached.items()):
            terminalreporter.write_line(f"{nodeid}: stand-in {'; '.join(sorted(what))}")


@pytest.fixture
def api(compose: ComposeStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=API_URL, timeout=15) as client:
        yield client


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    stack = getattr(item, "funcargs", {}).get("compose")
    if not isinstance(stack, ComposeStack):
        return
    for service in stack.watched:
        cmd = " ".join([*stack.command, "logs", "--tail", str(LOG_TAIL), service])
        try:
            text = stack.logs(service)
        except (OSError, subprocess.SubprocessError) as exc:
            text = f"(could not read logs: {exc})"
        report.sections.append((f"$ {cmd}", text))
