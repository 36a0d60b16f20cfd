"""Read and validate prometheus/slos.yml (Sloth's prometheus/v1 format, see that file).

`load()` returns a `Spec` or raises `SpecError` with one line naming the file, the
document and the problem; nothing is generated from a spec that fails validation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import promql_parser
import yaml

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "prometheus/slos.yml"
WINDOW_VAR = "{{.window}}"

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class SpecError(ValueError):
    """A problem in the spec, as one line: `<file>: <where>: <what>`."""


def seconds(text: str) -> int:
    """Prometheus duration ("1h30m") -> whole seconds; ValueError if it is not one."""
    parts = _DURATION.findall(str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        raise ValueError(f"not a duration: {text!r}")
    return int(sum(int(n) * _UNIT[u] for n, u in parts))


def duration(secs: int) -> str:
    """Seconds -> the shortest Prometheus duration (86400 -> 1d, 5400 -> 90m)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"


@dataclass(frozen=True)
class Pair:
    """One multiwindow tier: fires when the long and the short window both burn > factor."""

    tier: str  # page | ticket
    speed: str  # quick | slow
    budget_percent: float  # share of the period's budget spent per long window
    long: int  # seconds
    short: int
    factor: float  # burn rate = budget_percent/100 x period / long

    @property
    def label(self) -> str:
        """The `window` label of its alerts: "1h/5m"."""
        return f"{duration(self.long)}/{duration(self.short)}"


@dataclass(frozen=True)
class Alert:
    labels: dict[str, str]
    annotations: dict[str, str]


@dataclass(frozen=True)
class BudgetAlert:
    name: str
    remaining_below: float
    labels: dict[str, str]
    annotations: dict[str, str]


@dataclass(frozen=True)
class Slo:
    service: str
    name: str
    objective_percent: float
    description: str
    error_query: str  # with {{.window}}
    total_query: str
    alert_name: str
    min_events: int
    annotations: dict[str, str]
    page: Alert
    ticket: Alert
    budget_alert: BudgetAlert | None
    good_events: tuple[str, ...]
    bad_events: tuple[str, ...]

    @property
    def objective(self) -> float:
        return round(self.objective_percent / 100, 12)

    @property
    def budget(self) -> float:
        """Share of events allowed to be bad (1 - objective)."""
        return round(1 - self.objective, 12)

    @property
    def key(self) -> str:
        return f"{self.service}-{self.name}"

    def errors(self, window: str) -> str:
        return self.error_query.replace(WINDOW_VAR, window)

    def total(self, window: str) -> str:
        return self.total_query.replace(WINDOW_VAR, window)

    def alert(self, pair: Pair) -> Alert:
        return self.page if pair.tier == "page" else self.ticket


@dataclass(frozen=True)
class Spec:
    path: Path
    period: int
    pairs: tuple[Pair, ...]
    slos: tuple[Slo, ...] = field(default_factory=tuple)

    def windows(self) -> list[int]:
        """Every window the rules compute, short to long."""
        return sorted({w for p in self.pairs for w in (p.long, p.short)})

    def long_windows(self) -> list[int]:
        return sorted({p.long for p in self.pairs})


# --- validation ----------------------------------------------------------------------------


class _Doc:
    """A mapping being read, with its place in the file for error messages."""

    def __init__(self, path: Path, where: str, data: Any) -> None:
        self.path, self.where = path, where
        if not isinstance(data, dict):
            self.fail(f"expected a mapping, got {type(data).__name__}")
        self.data: dict[str, Any] = data

    def fail(self, what: str) -> None:
        rel = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        raise SpecError(f"{rel}: {self.where}: {what}")

    def only(self, *keys: str) -> None:
        unknown = sorted(set(self.data) - set(keys))
        if unknown:
            self.fail(f"unknown key {unknown[0]!r} (expected one of: {', '.join(keys)})")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.data or self.data[key] is None:
            if default is ...:
                self.fail(f"missing {key!r}")
            return default
        value = self.data[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            self.fail(f"{key!r} must be a {names}, got {value!r}")
        return value

    def sub(self, key: str, default: Any = ...) -> _Doc:
        return _Doc(self.path, f"{self.where}.{key}", self.get(key, dict, default))

    def strings(self, key: str) -> dict[str, str]:
        raw = self.get(key, dict, {})
        bad = [k for k, v in raw.items() if not isinstance(v, str | int | float)]
        if bad:
            self.fail(f"{key}.{bad[0]} must be a string")
        return {str(k): str(v) for k, v in raw.items()}

    def duration(self, key: str) -> int:
        text = self.get(key, str)
        try:
            return seconds(text)
        except ValueError:
            self.fail(f"{key} {text!r} is not a Prometheus duration (e.g. 5m, 1h, 3d)")
        raise AssertionError  # unreachable


def _windows(doc: _Doc) -> tuple[int, tuple[Pair, ...]]:
    doc.only("apiVersion", "kind", "spec")
    if doc.get("apiVersion", str) != "sloth.slok.dev/v1":
        doc.fail("apiVersion must be sloth.slok.dev/v1")
    spec = doc.sub("spec")
    spec.only("sloPeriod", "page", "ticket")
    period = spec.duration("sloPeriod")
    pairs = []
    for tier in ("page", "ticket"):
        t = spec.sub(tier)
        t.only("quick", "slow")
        for speed in ("quick", "slow"):
            w = t.sub(speed)
            w.only("errorBudgetPercent", "shortWindow", "longWindow")
            percent = float(w.get("errorBudgetPercent", (int, float)))
            long, short = w.duration("longWindow"), w.duration("shortWindow")
            if not 0 < percent <= 100:
                w.fail(f"errorBudgetPercent {percent} must be in (0, 100]")
            if not 0 < short < long <= period:
                w.fail("needs 0 < shortWindow < longWindow <= sloPeriod")
            if short % 300:
                w.fail("shortWindow must be a multiple of 5m (the recorded rates' window)")
            pairs.append(Pair(tier, speed, percent, long, short,
                              round(percent / 100 * period / long, 9)))
    return period, tuple(pairs)


def _selectors(node: Any) -> list[Any]:
    kind = type(node).__name__
    if kind == "VectorSelector":
        return [node]
    out = []
    for attr in ("lhs", "rhs", "expr", "param", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, str | int | float):
            out += _selectors(child)
    for arg in getattr(node, "args", None) or []:
        out += _selectors(arg)
    return out


def _check_query(doc: _Doc, key: str, text: str, service: str) -> None:
    if WINDOW_VAR not in text:
        doc.fail(f"{key} must use {WINDOW_VAR} as its range (Sloth's convention)")
    try:
        node = promql_parser.parse(text.replace(WINDOW_VAR, "5m"))
    except ValueError as exc:
        doc.fail(f"{key} is not valid PromQL: {' '.join(str(exc).split())}")
        raise AssertionError from exc  # unreachable
    for agg in _top_aggregations(node):
        labels = set(agg.modifier.labels) if agg.modifier else set()
        if not {"env", "service"} <= labels or str(agg.modifier.type) != "AggModifierType.By":
            doc.fail(f"{key}: every aggregation must keep `by (env, service)` "
                     "(alerts and dashboards are per environment and service)")
    for vs in _selectors(node):
        pinned = [m for m in vs.matchers.matchers
                  if m.name == "service" and str(m.op) == "MatchOp.Equal"]
        if not pinned or pinned[0].value != service:
            doc.fail(f'{key}: every selector must pin service="{service}" (the rules label '
                     "their series with the document's service)")


def _top_aggregations(node: Any) -> list[Any]:
    kind = type(node).__name__
    if kind == "ParenExpr":
        return _top_aggregations(node.expr)
    if kind == "BinaryExpr":
        return _top_aggregations(node.lhs) + _top_aggregations(node.rhs)
    if kind == "AggregateExpr":
        return [node]
    return [node] if kind != "NumberLiteral" else []


def _events(doc: _Doc, key: str) -> tuple[str, ...]:
    raw = doc.get(key, list)
    if not raw:
        doc.fail(f"{key} must list at least one series")
    for text in raw:
        try:
            node = promql_parser.parse(str(text))
        except ValueError:
            node = None
        if type(node).__name__ != "VectorSelector" or not node.name:
            doc.fail(f"{key}: {text!r} is not a series selector like metric{{label=\"value\"}}")
    return tuple(str(t) for t in raw)


def _alert(doc: _Doc, common: dict[str, str]) -> Alert:
    doc.only("labels", "annotations", "disable")
    if doc.get("disable", bool, False):
        doc.fail("disabling a tier is not supported: every SLO pages and tickets")
    labels = doc.strings("labels")
    if labels.get("severity") not in ("critical", "warning"):
        doc.fail("labels.severity must be critical (page) or warning (ticket)")
    annotations = {**common, **doc.strings("annotations")}
    for need in ("summary", "runbook_url"):
        if need not in annotations:
            doc.fail(f"annotations.{need} missing (here or in alerting.annotations)")
    return Alert(labels, annotations)


def _slo(doc: _Doc, service: str) -> Slo:
    doc.only("name", "objective", "description", "sli", "alerting", "test_events", "labels")
    if doc.get("labels", dict, {}):
        doc.fail("labels are not supported: rules take env and service from the series")
    name = doc.get("name", str)
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        doc.fail(f"name {name!r} must be a lower-case label value ([a-z][a-z0-9_]*)")
    objective = float(doc.get("objective", (int, float)))
    if not 0 < objective < 100:
        doc.fail(f"objective {objective} must be a percentage in (0, 100), e.g. 99.9")
    sli = doc.sub("sli")
    sli.only("events", "raw", "plugin")
    if "events" not in sli.data:
        sli.fail("only the `events` SLI (error_query / total_query) is supported")
    events = sli.sub("events")
    events.only("error_query", "total_query")
    error_query = " ".join(events.get("error_query", str).split())
    total_query = " ".join(events.get("total_query", str).split())
    _check_query(events, "error_query", error_query, service)
    _check_query(events, "total_query", total_query, service)
    alerting = doc.sub("alerting")
    alerting.only("name", "labels", "annotations", "page_alert", "ticket_alert",
                  "min_events", "budget_alert")
    alert_name = alerting.get("name", str)
    if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", alert_name):
        alerting.fail(f"name {alert_name!r} must be CamelCase")
    if alerting.get("labels", dict, {}):
        alerting.fail("labels: put them on page_alert / ticket_alert")
    min_events = alerting.get("min_events", int)
    if min_events < 1:
        alerting.fail("min_events must be >= 1")
    common = alerting.strings("annotations")
    budget = None
    if "budget_alert" in alerting.data:
        b = alerting.sub("budget_alert")
        b.only("name", "remaining_below", "labels", "annotations")
        remaining = float(b.get("remaining_below", (int, float)))
        if not 0 < remaining < 1:
            b.fail("remaining_below must be a share of the budget in (0, 1)")
        annotations = {**common, **b.strings("annotations")}
        if "summary" not in annotations or "runbook_url" not in annotations:
            b.fail("annotations need summary and runbook_url")
        budget = BudgetAlert(b.get("name", str), remaining, b.strings("labels"), annotations)
    tests = doc.sub("test_events")
    tests.only("good", "bad")
    return Slo(
        service=service, name=name, objective_percent=objective,
        description=doc.get("description", str), error_query=error_query,
        total_query=total_query, alert_name=alert_name, min_events=min_events,
        annotations=common,
        page=_alert(alerting.sub("page_alert"), common),
        ticket=_alert(alerting.sub("ticket_alert"), common),
        budget_alert=budget,
        good_events=_events(tests, "good"), bad_events=_events(tests, "bad"),
    )


def load(path: Path = SPEC) -> Spec:
    """Parse and validate the spec; SpecError (one line) on any problem."""
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except OSError as exc:
        raise SpecError(f"{rel}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{rel}: not valid YAML{where}: {problem}") from exc
    windows = [d for d in docs if isinstance(d, dict) and d.get("kind") == "AlertWindows"]
    if len(windows) != 1:
        raise SpecError(f"{rel}: needs exactly one `kind: AlertWindows` document, "
                        f"found {len(windows)}")
    period, pairs = _windows(_Doc(path, "AlertWindows", windows[0]))
    slos: list[Slo] = []
    for i, raw in enumerate(docs, start=1):
        if raw is windows[0]:
            continue
        doc = _Doc(path, f"document {i}", raw)
        doc.only("version", "service", "labels", "slos")
        if doc.get("version", str) != "prometheus/v1":
            doc.fail("version must be prometheus/v1 (Sloth's spec)")
        service = doc.get("service", str)
        doc.where = f"service {service}"
        if doc.get("labels", dict, {}):
            doc.fail("labels are not supported: rules take env and service from the series")
        items = doc.get("slos", list)
        if not items:
            doc.fail("slos is empty")
        for j, item in enumerate(items):
            slo = _slo(_Doc(path, f"service {service}: slos[{j}]", item), service)
            if any(s.key == slo.key for s in slos):
                doc.fail(f"two SLOs named {slo.name!r}")
            slos.append(slo)
    if not slos:
        raise SpecError(f"{rel}: no SLO defined")
    return Spec(path, period, pairs, tuple(slos))
