"""Helpers for the live alerting tests: the repo's rules and Alertmanager routes as data.

Waits are derived from the configuration actually loaded (scrape and evaluation intervals,
the rule's `for`, the route's group_wait) plus a margin, never from hard-coded guesses, so a
config change moves the deadlines with it and a test still fails when a step is late.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests import prometheus_config as prometheus_config_file
from tests.rules.ruleset import seconds as duration_seconds

ROOT = Path(__file__).resolve().parents[2]
AMTOOL = ROOT / ".tools/bin/amtool"

def seconds(duration: str | int | float | None, default: float = 0.0) -> float:
    """Prometheus duration ("1m30s") or a number of seconds -> seconds."""
    if duration is None:
        return default
    if isinstance(duration, int | float):
        return float(duration)
    return duration_seconds(duration)


@dataclass(frozen=True)
class AlertRule:
    name: str
    expr: str
    hold: float  # `for`, seconds
    labels: dict[str, str]
    group: str
    interval: float  # group evaluation interval, seconds


def prometheus_config() -> dict[str, Any]:
    """prometheus.yml with the jobs of scrape-configs.yml merged in."""
    return prometheus_config_file.load()


def scrape_interval(job: str) -> float:
    cfg = prometheus_config()
    default = seconds(cfg.get("global", {}).get("scrape_interval"), 60)
    for sc in cfg.get("scrape_configs", []):
        if sc["job_name"] == job:
            return seconds(sc.get("scrape_interval"), default)
    raise KeyError(job)


def evaluation_interval() -> float:
    return seconds(prometheus_config().get("global", {}).get("evaluation_interval"), 60)


def prometheus_flag(name: str, command: str | None = None) -> str | None:
    """Value of a `--name=value` flag in the native run's Prometheus command."""
    if command is None:
        from native import stack as native

        command = native.component("prometheus").command
    for word in command.split():
        if word.startswith(f"{name}="):
            return word.split("=", 1)[1]
    return None


def resend_delay() -> float:
    """--rules.alert.resend-delay of the native run (Prometheus' default: 1m)."""
    return seconds(prometheus_flag("--rules.alert.resend-delay"), 60)


def alert_rules(rules_dir: Path = ROOT / "prometheus/rules") -> list[AlertRule]:
    out = []
    default_interval = evaluation_interval()
    for path in sorted(rules_dir.glob("*.yml")):
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            interval = seconds(group.get("interval"), default_interval)
            for rule in group.get("rules", []):
                if "alert" in rule:
                    out.append(AlertRule(
                        rule["alert"], str(rule["expr"]), seconds(rule.get("for"), 0),
                        {**group.get("labels", {}), **rule.get("labels", {})},
                        group["name"], interval,
                    ))
    return out


def alert_rule(name: str, **labels: str) -> AlertRule:
    for rule in alert_rules():
        if rule.name == name and all(rule.labels.get(k) == v for k, v in labels.items()):
            return rule
    raise LookupError(f"no alerting rule {name} with {labels} in prometheus/rules/")


# --- Alertmanager routing tree ----------------------------------------------------------------

_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')


def _matches(matchers: list[str], labels: dict[str, str]) -> bool:
    for text in matchers:
        m = _MATCHER.match(text)
        if not m:
            raise ValueError(f"cannot read matcher {text!r}")
        name, op, value = m.groups()
        actual = labels.get(name, "")
        ok = {
            "=": actual == value,
            "!=": actual != value,
            "=~": re.fullmatch(value, actual) is not None,
            "!~": re.fullmatch(value, actual) is None,
        }[op]
        if not ok:
            return False
    return True


@dataclass(frozen=True)
class Route:
    receiver: str
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float


def am_config(path: Path = ROOT / ".run/alertmanager/alertmanager.yml") -> dict[str, Any]:
    """The config the native Alertmanager runs (a link to alertmanager/alertmanager.yml)."""
    return yaml.safe_load(path.read_text())


def routes_for(labels: dict[str, str], config: dict[str, Any] | None = None) -> list[Route]:
    """Routes an alert with `labels` ends in, with inherited timings (Alertmanager semantics)."""
    cfg = config or am_config()
    root = cfg["route"]
    defaults = Route(
        root.get("receiver", ""), tuple(root.get("group_by", [])),
        seconds(root.get("group_wait"), 30), seconds(root.get("group_interval"), 300),
        seconds(root.get("repeat_interval"), 14400),
    )

    def inherit(node: dict[str, Any], parent: Route) -> Route:
        return Route(
            node.get("receiver", parent.receiver),
            tuple(node.get("group_by", parent.group_by)),
            seconds(node.get("group_wait"), parent.group_wait),
            seconds(node.get("group_interval"), parent.group_interval),
            seconds(node.get("repeat_interval"), parent.repeat_interval),
        )

    def walk(node: dict[str, Any], current: Route) -> list[Route]:
        found: list[Route] = []
        for child in node.get("routes", []) or []:
            if not _matches(child.get("matchers", []) or [], labels):
                continue
            route = inherit(child, current)
            found.extend(walk(child, route) or [route])
            if not child.get("continue", False):
                break
        return found

    return walk(root, defaults) or [defaults]


def amtool_receivers(config_file: Path, labels: dict[str, str]) -> list[str]:
    """The receivers Alertmanager's own routing code picks (amtool config routes test)."""
    args = [f"{k}={v}" for k, v in labels.items()]
    proc = subprocess.run(
        [str(AMTOOL), "config", "routes", "test", f"--config.file={config_file}", *args],
        capture_output=True, text=True, timeout=30,
    )
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"amtool failed: {proc.stderr.strip()}")
    return [r.strip() for r in proc.stdout.strip().split(",") if r.strip()]


def webhook_receivers(config: dict[str, Any] | None = None) -> set[str]:
    """Receivers that have at least one webhook (the ones that reach the sink natively)."""
    cfg = config or am_config()
    return {r["name"] for r in cfg.get("receivers", []) if r.get("webhook_configs")}


# --- waiting ------------------------------------------------------------------------------------


def wait_for(
    check: Callable[[], Any], timeout: float, interval: float = 1.0, what: str = "condition"
) -> Any:
    """Poll `check` until it returns something truthy; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
