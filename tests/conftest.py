"""Shared pytest wiring: which stack the end-to-end tests run against, the live/offline split,
and failure output.

Live and offline tests (`make test` runs both at once, as two pytest processes):
  - a test is live when it is marked `native` or uses the `stack` fixture (directly or through
    another fixture): this conftest marks the latter `native` too, so `pytest -m native` runs
    every live test and `pytest -m "not native"` every other one; a new live test only has to
    use `stack` (or carry the marker) to run in the live process;
  - live tests run in file order, except those marked `live_last` (the dashboard panel check:
    it wants every service up again after the alerting scenario), which run last.

--backend=native (default)  the native run (`python -m native up`): started once per session
                            by the `stack` fixture if it is not running, stopped at the end
                            only if this session started it.
--backend=compose           the compose stack, already started with `make up` on a Docker host
                            (`make smoke`); nothing is started or stopped.

Failure output: tests that use the `probe` fixture record every Prometheus/Alertmanager/sink
API answer they checked; when such a test fails, the report gets the last answers and the
tail of the logs of the processes the test named (`probe.watch("prometheus", ...)`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        choices=("native", "compose"),
        default="native",
        help="stack the e2e tests run against: native processes (default) or compose containers",
    )


@dataclass(frozen=True)
class Endpoints:
    backend: str
    prometheus: str = "http://127.0.0.1:9090"
    alertmanager: str = "http://127.0.0.1:9093"
    sink: str = "http://127.0.0.1:5001"
    api: str = "http://127.0.0.1:8000"
    analyzer: str = "http://127.0.0.1:8001"


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--backend")


@pytest.fixture(scope="session")
def stack(backend: str) -> Iterator[Endpoints]:
    """The running stack's endpoints; starts (and later stops) the native run if needed."""
    endpoints = Endpoints(backend)
    if backend == "compose":
        try:
            httpx.get(f"{endpoints.prometheus}/-/ready", timeout=5).raise_for_status()
        except httpx.HTTPError as exc:
            pytest.skip(f"compose backend: Prometheus not reachable on 127.0.0.1:9090 ({exc})")
        yield endpoints
        return

    from native import stack as native

    if not (native.TOOLS / "prometheus").exists():
        pytest.skip("native backend: .tools/bin/prometheus missing (run `make bootstrap`)")
    started = False
    if native.supervisor_running():
        missing = native.wait_ready(timeout=60)
        if missing:
            pytest.fail(f"native run is up but not ready: {missing}", pytrace=False)
    else:
        try:
            native.up()
        except native.NativeError as exc:
            pytest.fail(f"native run failed to start: {exc}", pytrace=False)
        started = True
    yield endpoints
    if started and not os.environ.get("NATIVE_KEEP"):
        native.down()


# --- failure output -------------------------------------------------------------------------


class Probe:
    """HTTP helper that remembers what it saw, for the failure report."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.seen: dict[str, str] = {}  # last answer per request, in order of last use
        self.processes: list[str] = []
        self.client = httpx.Client(timeout=10)

    def watch(self, *processes: str) -> None:
        """Processes whose log tails belong in the failure report."""
        self.processes.extend(p for p in processes if p not in self.processes)

    def note(self, what: str, value: Any) -> None:
        text = value if isinstance(value, str) else json.dumps(value, indent=1, default=str)
        self.seen.pop(what, None)
        self.seen[what] = text[:3000]
        while len(self.seen) > 6:
            self.seen.pop(next(iter(self.seen)))

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        resp = self.client.request(method, url, **kwargs)
        body = resp.text
        query = f"?{resp.request.url.query.decode()}" if resp.request.url.query else ""
        self.note(f"{method} {url}{query}", f"HTTP {resp.status_code}\n{body}")
        return resp

    def get_json(self, url: str, **kwargs: Any) -> Any:
        resp = self.request("GET", url, **kwargs)
        resp.raise_for_status()
        return resp.json()

    def prom_query(self, prom: str, expr: str) -> list[dict]:
        data = self.get_json(f"{prom}/api/v1/query", params={"query": expr})
        assert data["status"] == "success", data
        return data["data"]["result"]

    def report(self) -> str:
        parts = []
        for what, text in self.seen.items():
            parts.append(f"--- API state checked: {what}\n{text}")
        for name in self.processes:
            parts.append(f"--- tail of {name} log\n{log_tail(self.backend, name)}")
        return "\n".join(parts)


def log_tail(backend: str, name: str, lines: int = 20) -> str:
    if backend == "native":
        from native import stack as native

        # JSON log lines are long: keep the start of each, where time/level/message are
        return "\n".join(line[:300] for line in native.log_tail(name, lines).splitlines())
    compose = shutil.which("docker") and ["docker", "compose"]
    if not compose:
        return "(no docker client to read compose logs)"
    proc = subprocess.run(
        [*compose, "logs", "--no-color", "--tail", str(lines), name],
        capture_output=True, text=True, timeout=30,
    )
    return proc.stdout or proc.stderr


@pytest.fixture
def probe(backend: str) -> Iterator[Probe]:
    p = Probe(backend)
    yield p
    p.client.close()


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("native"):
            item.add_marker(pytest.mark.native)
    items.sort(key=lambda item: item.get_closest_marker("live_last") is not None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        probe = getattr(item, "funcargs", {}).get("probe")
        if isinstance(probe, Probe):
            report.sections.append(("stack state at failure", probe.report()))
