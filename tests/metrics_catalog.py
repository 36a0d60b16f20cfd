"""No dangling metric names: every metric a query mentions must have series somewhere.

Shared by the native integration suite (against the live native Prometheus), the compose smoke
suite and the Grafana tests. Queries come from:

* alerting and recording rules   prometheus/rules/*.yml             (`expr` of every rule)
* dashboards                     grafana/dashboards/**/*.json       (panel targets, also inside
                                                                     rows; templating queries)
* diagnosis queries              tools/diagnose.py DIAGNOSES         (check and breakdown queries)
                                 docs/*.md fenced ```promql blocks  (one query per non-empty,
                                                                     non-comment line)

Metric names are extracted with a real PromQL parser (promql-parser), not regexes, after
replacing Grafana's template variables ($__rate_interval, $service, ...) with valid PromQL.

Typical use::

    queries = repo_queries()
    present = live_metric_names("http://127.0.0.1:9090")
    problems = dangling(queries, present, ignore_prefixes=NATIVE_ABSENT_PREFIXES)
    assert not problems, format_dangling(problems)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import promql_parser
import yaml

ROOT = Path(__file__).resolve().parent.parent

# Series Prometheus synthesises itself (they exist only while something is pending/firing).
SYNTHETIC = {"ALERTS", "ALERTS_FOR_STATE"}

# Exporters that only run with a Docker host: their metrics cannot exist in the native run.
# (PostgreSQL, Redis and RabbitMQ with their exporters run natively: pg_, redis_, rabbitmq_
# and erlang_ names are checked.)
NATIVE_ABSENT_PREFIXES: tuple[str, ...] = (
    "container_",  # cAdvisor
    "cadvisor_",
    "machine_",  # cAdvisor machine info
    "grafana_",
    "elasticsearch_",
    "es_",
)

# Fluent Bit, Jaeger and the Elasticsearch exporter do not run natively either, but their
# names are not waved through by prefix: they must be among the series the pinned versions
# really expose, recorded from the real Fluent Bit 5.1.1 binary, derived from Jaeger v2.20.0's
# source (no Go 1.26 here) and from elasticsearch_exporter v1.9.0's own collector tests.
FIXTURES = ROOT / "tests" / "fixtures"
EXPOSITIONS: dict[str, Path] = {
    "fluent-bit": FIXTURES / "fluent-bit-5.1.1" / "api-v2-metrics-prometheus.txt",
    "fluent-bit-logs": FIXTURES / "fluent-bit-5.1.1" / "exporter-2021-metrics.txt",
    "jaeger": FIXTURES / "jaeger-2.20.0" / "metrics-8888.txt",
    "elasticsearch-exporter": FIXTURES / "elasticsearch-exporter-1.9.0" / "metrics-9114.txt",
}
EXPOSITION_PREFIXES = ("fluentbit_", "apollonia_log_", "otelcol_", "jaeger_", "elasticsearch_")


_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+\S+")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="(?:[^"\\]|\\.)*"')


def exposition_series(component: str) -> dict[str, set[frozenset[str]]]:
    """Sample name -> the label-name sets it has, in a component's recorded exposition.

    Read verbatim, as Prometheus stores the text format (prometheus_client's parser would
    add a _total that Jaeger's counters do not have)."""
    out: dict[str, set[frozenset[str]]] = {}
    for line in EXPOSITIONS[component].read_text().splitlines():
        if m := _SAMPLE.match(line):
            labels = frozenset(_LABEL.findall(m.group(2) or "")) - {"le"}
            out.setdefault(m.group(1), set()).add(labels)
    return out


def exposed_names() -> set[str]:
    """Every sample name the recorded expositions contain."""
    return {name for c in EXPOSITIONS for name in exposition_series(c)}


@dataclass(frozen=True)
class Query:
    source: str  # "prometheus/rules/api.yml: alert HighErrorRate"
    expr: str


# --- Grafana variables -> PromQL -----------------------------------------------------------

_DURATION_VARS = re.compile(r"\$\{?__(rate_interval|interval|range|auto)\}?")
_NUMBER_VARS = re.compile(r"\$\{?__(interval_ms|range_s|range_ms)\}?")
_RANGE_WITH_VAR = re.compile(r"\[\s*\$\{?\w+(?::\w+)?\}?\s*(?=[:\]])")
_VAR = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana template variables with values that keep the query valid PromQL."""
    expr = _DURATION_VARS.sub("5m", expr)
    expr = _NUMBER_VARS.sub("60", expr)
    expr = _RANGE_WITH_VAR.sub("[5m", expr)
    return _VAR.sub(lambda m: "var_" + (m.group(1) or m.group(2) or m.group(3)), expr)


_LABEL_VALUES = re.compile(r"^\s*label_values\((.*)\)\s*$", re.S)
_QUERY_RESULT = re.compile(r"^\s*query_result\((.*)\)\s*$", re.S)


def _templating_expr(query: str) -> str | None:
    """The PromQL inside a Grafana variable query, or None when it names no metric."""
    if m := _LABEL_VALUES.match(query):
        inner = m.group(1)
        if "," not in inner:
            return None  # label_values(label): no metric
        return inner.rsplit(",", 1)[0]
    if m := _QUERY_RESULT.match(query):
        return m.group(1)
    if query.strip().startswith(("label_names(", "metrics(")):
        return None
    return query


# --- extraction ----------------------------------------------------------------------------


class QueryError(ValueError):
    pass


def metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL (or Grafana-templated PromQL) expression."""
    try:
        ast = promql_parser.parse(grafana_to_promql(expr))
    except Exception as exc:  # the parser raises ValueError and friends
        raise QueryError(f"does not parse: {exc}: {expr!r}") from exc
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            else:
                for m in node.matchers.matchers:
                    if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal:
                        names.add(m.value)

    promql_parser.walk(ast, pre_visit=visit)
    return names


def rule_queries(paths: Iterable[Path]) -> list[Query]:
    out = []
    for path in paths:
        doc = yaml.safe_load(path.read_text()) or {}
        for group in doc.get("groups", []):
            for rule in group.get("rules", []):
                kind = f"alert {rule['alert']}" if "alert" in rule else f"record {rule['record']}"
                out.append(Query(f"{_rel(path)}: {kind}", str(rule["expr"])))
    return out


def _panels(items: list[dict]) -> Iterator[dict]:
    for panel in items or []:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows keep their panels inside


def dashboard_queries(paths: Iterable[Path]) -> list[Query]:
    out = []
    for path in paths:
        dash = json.loads(path.read_text())
        for panel in _panels(dash.get("panels", [])):
            for target in panel.get("targets", []) or []:
                expr = target.get("expr")
                if expr and not target.get("hide"):
                    title = panel.get("title", panel.get("id"))
                    out.append(Query(f"{_rel(path)}: panel {title!r}", expr))
        for var in dash.get("templating", {}).get("list", []):
            if var.get("type") != "query":
                continue
            raw = var.get("query")
            if isinstance(raw, dict):
                raw = raw.get("query")
            expr = _templating_expr(raw) if isinstance(raw, str) and raw else None
            if expr:
                out.append(Query(f"{_rel(path)}: variable {var.get('name')}", expr))
    return out


_PROMQL_FENCE = re.compile(r"^```promql[^\n]*\n(.*?)^```", re.S | re.M)


def markdown_queries(paths: Iterable[Path]) -> list[Query]:
    out = []
    for path in paths:
        for block in _PROMQL_FENCE.findall(path.read_text()):
            for line in block.splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    out.append(Query(f"{_rel(path)}: diagnosis query", line))
    return out


def diagnosis_queries() -> list[Query]:
    """The queries `python -m tools.diagnose` runs (empty if the tool is absent)."""
    try:
        from tools.diagnose import DIAGNOSES
    except ImportError:
        return []
    out = []
    for diag in DIAGNOSES:
        out.append(Query(f"tools/diagnose.py: {diag.name}", diag.query))
        for title, expr in diag.breakdowns.items():
            out.append(Query(f"tools/diagnose.py: {diag.name} / {title}", expr))
    return out


def repo_queries(root: Path = ROOT) -> list[Query]:
    """Every query the bundle ships: rules, dashboards and diagnosis queries."""
    return (
        rule_queries(sorted((root / "prometheus/rules").glob("*.yml")))
        + dashboard_queries(sorted((root / "grafana/dashboards").glob("**/*.json")))
        + diagnosis_queries()
        + markdown_queries(sorted((root / "docs").glob("*.md")))
    )


def recorded_names(root: Path = ROOT) -> set[str]:
    names = set()
    for path in sorted((root / "prometheus/rules").glob("*.yml")):
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            names |= {r["record"] for r in group.get("rules", []) if "record" in r}
    return names


# --- comparison ----------------------------------------------------------------------------


def live_metric_names(prom_url: str, timeout: float = 10.0) -> set[str]:
    """Names of every metric with series in the live Prometheus (head block and recent data)."""
    resp = httpx.get(f"{prom_url.rstrip('/')}/api/v1/label/__name__/values", timeout=timeout)
    resp.raise_for_status()
    return set(resp.json()["data"])


def dangling(
    queries: Iterable[Query],
    present: set[str],
    ignore_prefixes: tuple[str, ...] = (),
    ignore: Iterable[str] = SYNTHETIC,
) -> dict[str, list[str]]:
    """Metric name -> sources that reference it, for every name without series in `present`.

    Queries that do not parse are reported under the key "<parse error>".
    """
    skip = set(ignore)
    problems: dict[str, list[str]] = {}
    for query in queries:
        try:
            names = metric_names(query.expr)
        except QueryError as exc:
            problems.setdefault("<parse error>", []).append(f"{query.source}: {exc}")
            continue
        for name in names:
            if name in present or name in skip or name.startswith(ignore_prefixes):
                continue
            problems.setdefault(name, []).append(query.source)
    return problems


def format_dangling(problems: dict[str, list[str]]) -> str:
    lines = [f"{len(problems)} metric name(s) without series:"]
    for name, sources in sorted(problems.items()):
        lines.append(f"  {name}: " + "; ".join(sorted(set(sources))))
    return "\n".join(lines)


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
