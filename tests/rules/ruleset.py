"""The repo's alert/recording rules and their promtool unit tests, loaded as data.

Shared by the coverage, conventions and mutation tests in this directory.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "prometheus/rules"
TESTS_DIR = ROOT / "tests/rules"
PROMETHEUS_YML = ROOT / "prometheus/prometheus.yml"
RUNBOOK = ROOT / "docs/runbook.md"
PROMTOOL = ROOT / ".tools/bin/promtool"
AMTOOL = ROOT / ".tools/bin/amtool"
ALERTMANAGER = ROOT / ".tools/bin/alertmanager"
AM_DIR = ROOT / "alertmanager"

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration: str | None) -> float:
    """Prometheus duration ("1h30m") -> seconds; None -> 0."""
    if not duration:
        return 0.0
    text = str(duration)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * _UNIT[u] for n, u in parts)


@dataclass(frozen=True)
class Rule:
    file: Path
    group: str
    index: int  # position inside the group
    raw: dict[str, Any] = field(hash=False, compare=False)

    @property
    def is_alert(self) -> bool:
        return "alert" in self.raw

    @property
    def name(self) -> str:
        return self.raw.get("alert") or self.raw["record"]

    @property
    def severity(self) -> str | None:
        return self.raw.get("labels", {}).get("severity")

    @property
    def expr(self) -> str:
        return str(self.raw["expr"])

    @property
    def identity(self) -> dict[str, str]:
        """The static labels that tell rules of one alert name apart: the severity (an alert
        may have a page and a ticket tier) and, for SLO burn-rate alerts, `slo` and `window`
        (one rule per SLO and window pair)."""
        labels = self.raw.get("labels", {}) or {}
        return {k: str(labels[k]) for k in ("severity", "slo", "window") if k in labels}

    @property
    def key(self) -> str:
        """Unique handle: `Name[severity]`, plus `{slo=..., window=...}` for burn-rate rules."""
        if not self.is_alert:
            return self.name
        extra = {k: v for k, v in self.identity.items() if k != "severity"}
        tail = "{" + ", ".join(f"{k}={v}" for k, v in extra.items()) + "}" if extra else ""
        return f"{self.name}[{self.severity}]{tail}"

    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}: group {self.group}: {self.key}"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def rules(paths: list[Path] | None = None) -> list[Rule]:
    out = []
    for path in paths if paths is not None else rule_files():
        for group in (load_yaml(path) or {}).get("groups", []):
            for i, raw in enumerate(group.get("rules", [])):
                out.append(Rule(path, group["name"], i, raw))
    return out


def alerts() -> list[Rule]:
    return [r for r in rules() if r.is_alert]


def recordings() -> list[Rule]:
    return [r for r in rules() if not r.is_alert]


def test_files() -> list[Path]:
    return sorted(TESTS_DIR.glob("*.test.yml"))


def loaded_rule_files(test_file: Path) -> dict[str, list[Path]]:
    """Each `rule_files` entry of a promtool test file -> the files it matches."""
    spec = load_yaml(test_file)
    return {
        pattern: sorted(Path(p).resolve() for p in test_file.parent.glob(pattern))
        for pattern in spec.get("rule_files", [])
    }


# --- scrape intervals ------------------------------------------------------------------


def scrape_intervals() -> dict[str, float]:
    """job -> scrape interval in seconds, read from prometheus/prometheus.yml (its jobs are in
    scrape-configs.yml)."""
    from tests import prometheus_config

    cfg = prometheus_config.load(PROMETHEUS_YML)
    default = seconds(cfg.get("global", {}).get("scrape_interval", "1m"))
    return {
        sc["job_name"]: seconds(sc.get("scrape_interval")) or default
        for sc in cfg.get("scrape_configs", [])
    }


def evaluation_interval() -> float:
    cfg = load_yaml(PROMETHEUS_YML)
    return seconds(cfg.get("global", {}).get("evaluation_interval", "1m"))


# Which jobs expose a metric, by name prefix (the workload contract and the exporters).
# A selector with a `job` matcher uses that; a metric not listed here is assumed to come
# from the slowest job (the conservative choice).
_APP_BOTH = ("http_", "process_", "python_")
_API_ONLY = ("media_upload_", "media_files_", "database_", "cache_", "queue_", "active_users")
_ANALYZER_ONLY = ("ml_", "media_processing_")
_EXPORTERS = {
    "node_": "node", "container_": "cadvisor", "machine_": "cadvisor",
    "prometheus_": "prometheus", "alertmanager_": "alertmanager", "grafana_": "grafana",
    "fluentbit_": "fluent-bit", "elasticsearch_": "elasticsearch", "otelcol_": "jaeger",
    "pg_": "postgres", "redis_": "redis", "rabbitmq_detailed_": "rabbitmq-queues",
    "rabbitmq_": "rabbitmq", "probe_": "blackbox-http",
}


def jobs_for_metric(metric: str, matchers: dict[str, str]) -> list[str]:
    intervals = scrape_intervals()
    if "job" in matchers:
        jobs = [j for j in intervals if re.fullmatch(matchers["job"], j)]
        if jobs:
            return jobs
    if metric.startswith(_APP_BOTH):
        svc = matchers.get("service")
        if svc == "api":
            return ["apollonia-api"]
        if svc == "analyzer":
            return ["apollonia-analyzer"]
        return ["apollonia-api", "apollonia-analyzer"]
    if metric.startswith(_API_ONLY):
        return ["apollonia-api"]
    if metric.startswith(_ANALYZER_ONLY):
        return ["apollonia-analyzer"]
    for prefix, job in _EXPORTERS.items():
        if metric.startswith(prefix):
            return [job]
    return list(intervals)


# --- promtool ----------------------------------------------------------------------------


def promtool(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(PROMTOOL), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
