"""The engine's own fluentd log driver (compose.yaml, x-demo-logging) ships the demo containers'
output to Fluent Bit's forward input: sub-second timestamps (fluentd-sub-second-precision) and
the container name as the tag (`tag: "{{.Name}}"`). The driver is dockerd's, so this part is
real; Fluent Bit is a stand-in here that records what arrives (GET /standin/records)."""

from __future__ import annotations

import json

from tests.engine.conftest import Compose, wait_for

READ = ("import urllib.request; print(urllib.request.urlopen("
        "'http://127.0.0.1:2020/standin/records?raw=1&limit=2000').read().decode())")


def _records(bundle: Compose) -> list[dict]:
    cid = bundle.container("fluent-bit")
    out = bundle.engine.docker("exec", cid, "python3", "-c", READ).stdout
    return json.loads(out)


def test_demo_lines_arrive_with_sub_second_times_and_the_container_name(bundle: Compose) -> None:
    api = bundle.inspect("api")["Name"].lstrip("/")
    lines = wait_for("lines of the api container at Fluent Bit", lambda: [
        r for r in _records(bundle) if r["tag"].endswith(api)], timeout=60)
    assert all(r["record"].get("container_name") == f"/{api}" for r in lines), lines[:2]
    assert {r["record"].get("source") for r in lines} <= {"stdout", "stderr"}, lines[:2]
    fractional = [r for r in lines if float(r["time"]) % 1]
    # Whole seconds are what the driver sends without sub-second precision; a line logged at
    # exactly .000000000 happens, so most (not all) must carry a fraction.
    assert len(fractional) >= 0.9 * len(lines), [r["time"] for r in lines[:10]]
    assert all(json.loads(r["record"]["log"]).get("service") == "api"
               for r in lines if r["record"].get("log", "").startswith("{")), lines[:2]
