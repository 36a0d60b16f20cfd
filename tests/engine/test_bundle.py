"""`make up` on the private engine: every container of compose.yaml with the demo profile comes up
healthy, and `make smoke` passes against it (its tests that reach a stand-in say so)."""

from __future__ import annotations

import re

from dev.engine import daemon
from tests.engine.conftest import ENGINE_OVERRIDE, ROOT, Compose, make, unhealthy


def test_make_up_starts_every_service_healthy(bundle: Compose) -> None:
    services = set(bundle.run("config", "--services").stdout.split())
    containers = bundle.containers()
    assert services == {c["Service"] for c in containers}, "a service has no container"
    assert not unhealthy(containers)


def test_the_engine_is_the_one_users_run(engine: daemon.Engine) -> None:
    assert engine.server_version().startswith("28.5.2"), engine.server_version()


def test_make_smoke_passes(engine: daemon.Engine, bundle: Compose) -> None:
    proc = make(engine, "smoke", files=[ROOT / "compose.yaml", ENGINE_OVERRIDE], timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    summary = re.findall(r"=+ (.*(?:passed|failed).*) =+", out)
    print(f"\nmake smoke on the engine: {summary[-1] if summary else '?'}")
    stand_ins = [line for line in out.splitlines() if "stand-in" in line]
    print("\n".join(stand_ins))
    assert "passed" in (summary[-1] if summary else ""), out[-3000:]
