"""Which dashboard panels return data on a running Prometheus, and which need components
the native run does not start.

    .venv/bin/python -m tests.grafana.live_panels [--prometheus URL] [--wait SECONDS]
                                                    [--env native|compose|staging]

prints one line per panel (ok / NO DATA / needs <component>) and a summary. The native
suite (test_panels_live.py) runs the same check against the native stack.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field

import httpx

from dev.slo.spec import load as load_slos
from tests.grafana import components
from tests.grafana.model import Target, all_targets, seconds
from tests.metrics_catalog import metric_names

# Values a user would pick in the native run; multi-value variables -> everything.
VARIABLE_VALUES = {
    "env": "native",
    "service": ".*",
    "job": ".*",
    "instance": ".*",
    "model": ".*",
}
# The SLO dashboard's single-value service and slo variables: checked with every SLO of
# prometheus/slos.yml.
SLOS = tuple((s.service, s.name) for s in load_slos().slos)
SCRAPE_INTERVAL = 15  # the data source's timeInterval


def rate_interval(min_step: str) -> int:
    """Grafana's $__rate_interval at a fine resolution: 4 x (min step or scrape interval)."""
    step = max(SCRAPE_INTERVAL, seconds(min_step) if min_step else 0)
    return 4 * step


def concrete(target: Target, env: str = "native") -> list[str]:
    """The panel's PromQL with its template variables replaced (one per SLO where it uses
    the SLO dashboard's $service and $slo)."""
    expr = target.expr.replace("$__rate_interval", f"{rate_interval(target.min_step)}s")
    variants = [expr]
    if "$slo" in expr:
        variants = [expr.replace("$service", service).replace("$slo", slo)
                    for service, slo in SLOS]

    def value(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name == "env":
            return env
        if name not in VARIABLE_VALUES:
            raise KeyError(f"{target.where}: no value for variable ${name}")
        return VARIABLE_VALUES[name]

    return [re.sub(r"\$\{(\w+)\}|\$(\w+)", value, v) for v in variants]


@dataclass
class PanelCheck:
    where: str
    queries: list[str] = field(default_factory=list)  # concrete PromQL, native-only
    needs: set[str] = field(default_factory=set)  # components outside the native run
    empty: set[str] = field(default_factory=set)  # queries without data (so far)

    @property
    def checked(self) -> bool:
        return bool(self.queries)


# Compose services that a stand-in replaces on the engine suite's private engine -> the
# components (tests/grafana/components.py) whose metrics that stand-in, not the real program,
# would emit. Elasticsearch's metrics come from the real exporter: they stay checked.
STANDIN_COMPONENTS = {
    "cadvisor": {"cadvisor"}, "fluent-bit": {"fluent-bit", "fluent-bit-logs"},
    "jaeger": {"jaeger"}, "grafana": {"grafana"},
}


def standin_components(project: str = "apollonia") -> set[str]:
    """Components emitted by stand-ins in the running compose project (image label
    org.apollonia.standin): their panels are listed, not checked."""
    docker = shutil.which("docker")
    if docker is None:
        return set()
    found: set[str] = set()
    for service, comps in STANDIN_COMPONENTS.items():
        ids = subprocess.run(
            [docker, "ps", "-q", "--filter", f"label=com.docker.compose.project={project}",
             "--filter", f"label=com.docker.compose.service={service}"],
            capture_output=True, text=True, timeout=30).stdout.split()
        if not ids:
            continue
        label = subprocess.run(
            [docker, "inspect", "--format", '{{index .Config.Labels "org.apollonia.standin"}}',
             ids[0]], capture_output=True, text=True, timeout=30).stdout.strip()
        if label not in ("", "<no value>"):
            found |= comps
    return found


def plan(env: str = "native", standins: frozenset[str] = frozenset()) -> dict[str, PanelCheck]:
    """Panel -> what to check; Prometheus panels only (logs panels need Elasticsearch).

    env="native": only queries whose metrics all come from components the native run
    starts; any other env (compose): every Prometheus query, except those whose metrics
    come from a component in `standins` (listed as needing the real program)."""
    panels: dict[str, PanelCheck] = {}
    for t in all_targets():
        check = panels.setdefault(t.where, PanelCheck(t.where))
        if t.ds_type != "prometheus":
            check.needs |= {"elasticsearch", "fluent-bit"}
            continue
        names = metric_names(t.expr)
        by_standin = {c for m in names for c in components.components_of(m)} & standins
        missing = components.needs_outside_native(names)
        if by_standin:
            check.needs |= {f"{c} (a stand-in here)" for c in by_standin}
        elif missing and env == "native":
            check.needs |= missing
        else:
            for q in concrete(t, env):
                check.queries.append(q)
                check.empty.add(q)
    return panels


def run(prometheus: str, wait: float, poll: float = 5.0,
        env: str = "native") -> dict[str, PanelCheck]:
    """Query every planned panel query until it returns data or `wait` runs out."""
    panels = plan(env, frozenset(standin_components()) if env != "native" else frozenset())
    deadline = time.monotonic() + wait
    with httpx.Client(timeout=10) as client:
        while True:
            for check in panels.values():
                for q in sorted(check.empty):
                    resp = client.get(f"{prometheus}/api/v1/query", params={"query": q})
                    resp.raise_for_status()
                    if resp.json()["data"]["result"]:
                        check.empty.discard(q)
            if not any(c.empty for c in panels.values()) or time.monotonic() > deadline:
                return panels
            time.sleep(poll)


def summary(panels: dict[str, PanelCheck]) -> tuple[str, list[str]]:
    lines = []
    for where, c in sorted(panels.items()):
        if c.empty:
            lines.append(f"NO DATA  {where}: " + " | ".join(sorted(c.empty)))
        elif c.checked:
            extra = f" (other queries need {', '.join(sorted(c.needs))})" if c.needs else ""
            lines.append(f"ok       {where}{extra}")
        else:
            lines.append(f"needs    {where}: {', '.join(sorted(c.needs))}")
    checked = [c for c in panels.values() if c.checked]
    with_data = [c for c in checked if not c.empty]
    head = (f"{len(panels)} panels with queries; {len(checked)} checked, "
            f"{len(with_data)} with data; {len(panels) - len(checked)} not checked (need "
            f"components this run does not start or runs as stand-ins, or Elasticsearch)")
    return head, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--env", default="native",
                        help="env label of the run (native: skip components it lacks)")
    parser.add_argument("--wait", type=float, default=0.0,
                        help="keep polling empty queries this many seconds")
    args = parser.parse_args(argv)
    try:
        panels = run(args.prometheus, args.wait, env=args.env)
    except httpx.HTTPError as exc:
        print(f"{args.prometheus}: {exc}", file=sys.stderr)
        return 2
    head, lines = summary(panels)
    print("\n".join(lines))
    print(head)
    return 1 if any(c.empty for c in panels.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
