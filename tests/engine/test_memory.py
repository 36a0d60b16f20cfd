"""Each container's memory against its compose limit, measured on the engine: at rest (the load
generator paused) and under the demo's load (the load generator running). Working set as the
engine reports it (`docker stats`: usage minus inactive file cache, the figure the kernel's
OOM killer and cAdvisor's container_memory_working_set_bytes follow). The table is printed and
written to .engine/memory.md; README's memory table quotes a run of it. A stand-in's figure
is the stand-in's, not the real program's: those rows say so and are not held to the limit.
"""

from __future__ import annotations

import json
import statistics
import time

from dev.engine.daemon import STATE
from tests.engine.conftest import Compose

UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "kB": 1e3, "MB": 1e6, "GB": 1e9}
SAMPLES, INTERVAL_S = 3, 2


def _bytes(text: str) -> float:
    number = text.rstrip("BKMGikb")
    return float(number) * UNITS[text[len(number):]]


def _stats(compose: Compose) -> dict[str, tuple[float, float]]:
    """service -> (working set, limit) in bytes, from one `docker stats` sample."""
    names = {c["Name"]: c["Service"] for c in compose.containers() if c.get("State") == "running"}
    out = compose.engine.docker("stats", "--no-stream", "--format", "{{json .}}",
                                *names, timeout=60).stdout.decode()
    found = {}
    for line in out.splitlines():
        row = json.loads(line)
        used, limit = (part.strip() for part in row["MemUsage"].split("/"))
        found[names[row["Name"]]] = (_bytes(used), _bytes(limit))
    return found


def _measure(compose: Compose) -> dict[str, tuple[float, float]]:
    samples = []
    for _ in range(SAMPLES):
        samples.append(_stats(compose))
        time.sleep(INTERVAL_S)
    return {svc: (max(s[svc][0] for s in samples if svc in s), samples[-1][svc][1])
            for svc in samples[-1]}


def test_every_container_stays_under_its_limit(bundle: Compose) -> None:
    bundle.run("pause", "loadgen")
    try:
        time.sleep(5)
        rest = _measure(bundle)
    finally:
        bundle.run("unpause", "loadgen")
    time.sleep(10)
    load = _measure(bundle)
    rows = ["| service | limit | at rest | under the demo load | share of the limit |",
            "| --- | ---: | ---: | ---: | ---: |"]
    over = []
    mib = 2**20
    standins = {c["Service"] for c in bundle.containers()
                if bundle.inspect(c["Service"])["Config"]["Labels"].get("org.apollonia.standin")}
    for svc in sorted(load):
        used, limit = load[svc]
        idle = "paused" if svc == "loadgen" else f"{rest.get(svc, (0.0, limit))[0] / mib:.0f} MiB"
        name = f"{svc} (stand-in)" if svc in standins else svc
        rows.append(f"| {name} | {limit / mib:.0f} MiB | {idle} | "
                    f"{used / mib:.0f} MiB | {100 * used / limit:.0f} % |")
        if used >= limit and svc not in standins:
            over.append(svc)
    real = [s for s in load if s not in standins]
    share = statistics.mean(load[s][0] / load[s][1] for s in real)
    table = "\n".join(rows)
    (STATE / "memory.md").write_text(table + "\n")
    print(f"\n{table}\nmean share of the limit under load (real programs): {100 * share:.0f} %")
    assert not over, f"at or over their memory limit: {over}\n{table}"
