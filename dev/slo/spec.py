"""Read and validate prometheus/slos.yml (Sloth's prometheus/v1 format, see that file).

`load()` returns a `Spec` or raises `SpecError` with one line naming the file, the
document and the problem; nothing is generated from a spec that fails validation.

What of Sloth's format is accepted, what is refused (each with one line) and why:
docs/alerting.md, "The spec and Sloth". Sloth's own rules, carried over as facts:
names match `^[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]$` (slok/sloth@v0.16.0:
pkg/common/conventions/conventions.go), an objective is in (0, 100] and queries hold
`{{ .window }}` (slok/sloth@v0.16.0:pkg/common/validation/slo.go).
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
_WINDOW_ANY = re.compile(r"{{ *\.window *}}")  # Sloth accepts spaces inside the braces
# slok/sloth@v0.16.0:pkg/common/conventions/conventions.go NameRegexpStr
NAME = re.compile(r"[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
ALERT_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# Labels the rules set themselves: a spec label of that name would break their matching.
RESERVED_LABELS = ("env", "service", "slo", "window", "alertname", "alertstate")
# Templates in annotations the generated promtool tests can render (exactly as Prometheus
# does): the alert's labels and its value as humanizePercentage.
_TEMPLATE = re.compile(r"{{(.*?)}}", re.S)
_TEMPLATE_OK = re.compile(
    r"-?\s*(\$labels\.[a-zA-Z_][a-zA-Z0-9_]*|\.Labels\.[a-zA-Z_][a-zA-Z0-9_]*|"
    r"\$value\s*\|\s*humanizePercentage)\s*-?")
# Spec keys of Sloth v0.16.0 (slok/sloth@v0.16.0:pkg/prometheus/api/v1/v1.go) this
# generator refuses, with what to do instead.
REFUSED = {
    "slo_plugins": "Sloth's SLO plugins are not supported: the rules and their tests are "
                   "generated here, not by plugins",
    "plugins": "Sloth's SLO plugins are not supported: the rules and their tests are "
               "generated here, not by plugins",
    "raw": "a raw SLI (error_ratio_query) is not supported: the rules need bad and total "
           "events separately (sli.events: error_query and total_query)",
    "plugin": "an SLI plugin is not supported: write the queries as sli.events "
              "(error_query and total_query)",
    "min_events": "min_events was replaced: every window pair now requires at least 2 bad "
                  "events in its short window (docs/alerting.md); remove the key",
}

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
    labels: dict[str, str]  # the service's and the SLO's labels, on every series and alert
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
        unknown = sorted((k for k in self.data if k not in keys), key=str)
        for key in unknown:
            if key in REFUSED:
                self.fail(f"{key}: {REFUSED[key]}")
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

    def number(self, key: str) -> float:
        value = self.get(key, (int, float))
        try:
            number = float(value)
        except OverflowError:
            number = float("inf")
        if number != number:  # NaN
            self.fail(f"{key!r} must be a number, got {value!r}")
        return number

    def sub(self, key: str, default: Any = ...) -> _Doc:
        return _Doc(self.path, f"{self.where}.{key}", self.get(key, dict, default))

    def strings(self, key: str) -> dict[str, str]:
        raw = self.get(key, dict, {})
        bad = [k for k, v in raw.items() if not isinstance(v, str | int | float)]
        if bad:
            self.fail(f"{key}.{bad[0]} must be a string")
        # YAML's true/false as Go's YAML (and so Sloth) would write them.
        return {str(k): (str(v).lower() if isinstance(v, bool) else str(v))
                for k, v in raw.items()}

    def labels(self, key: str) -> dict[str, str]:
        """A label set of the spec: valid Prometheus label names, none the rules set."""
        labels = self.strings(key)
        for name in labels:
            if not LABEL_NAME.fullmatch(name) or name.startswith("__"):
                self.fail(f"{key}: {name!r} is not a Prometheus label name "
                          "([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)")
            if name in RESERVED_LABELS:
                self.fail(f"{key}: {name!r} is set by the generated rules themselves "
                          f"(reserved: {', '.join(RESERVED_LABELS)})")
        return labels

    def annotations(self, key: str) -> dict[str, str]:
        """Annotations whose templates the generated promtool tests can render."""
        out = self.strings(key)
        for name, text in out.items():
            for inner in _TEMPLATE.findall(text):
                if not _TEMPLATE_OK.fullmatch(inner.strip()):
                    self.fail(f"{key}.{name}: template {{{{{inner}}}}} is not one the generated "
                              "promtool tests can predict (use {{ $labels.<name> }} or "
                              "{{ $value | humanizePercentage }})")
            if "{{" in _TEMPLATE.sub("", text):
                self.fail(f"{key}.{name}: an unclosed {{{{ (Prometheus would fail to expand it)")
        return out

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
            percent = w.number("errorBudgetPercent")
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


PROBE = "7777s"  # stands for {{.window}} while parsing: every range must be this one
SHAPE = ("`sum by (env, service) (rate(metric{service=\"...\"}[{{.window}}]))`, such sums "
         "combined with + - * / and numbers")


def parse_promql(text: str) -> Any:
    """promql_parser.parse; ValueError (never a panic of the Rust parser) on bad input."""
    try:
        return promql_parser.parse(text)
    except ValueError:
        raise
    except BaseException as exc:  # pyo3 turns a parser panic into a BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise ValueError(f"the PromQL parser gave up: {type(exc).__name__}") from exc


def _shape(node: Any, service: str) -> str | None:
    """Why the query is outside the shape the rules and the test model compute, or None.
    The model (dev/slo/model.py QueryModel) evaluates exactly this shape."""
    kind = type(node).__name__
    if kind == "ParenExpr":
        return _shape(node.expr, service)
    if kind == "NumberLiteral":
        return None
    if kind == "BinaryExpr":
        if str(node.op) not in ("+", "-", "*", "/"):
            return f"the operator `{node.op}` (only + - * / combine the sums)"
        if node.modifier is not None and (node.modifier.matching is not None
                                          or node.modifier.return_bool):
            return f"`{node.modifier}` (the sums already match on env and service)"
        return _shape(node.lhs, service) or _shape(node.rhs, service)
    if kind == "AggregateExpr":
        mod = node.modifier
        labels = set(mod.labels) if mod else set()
        if str(node.op) != "sum":
            return f"the aggregation `{node.op}` (only sum adds up events)"
        if labels != {"env", "service"} or str(mod.type) != "AggModifierType.By":
            return ("an aggregation that does not keep exactly `by (env, service)` (alerts "
                    "and dashboards are per environment and service)")
        inner = node.expr
        while type(inner).__name__ == "ParenExpr":
            inner = inner.expr
        if type(inner).__name__ != "Call" or str(inner.func.name) != "rate":
            what = (f"{inner.func.name}()" if type(inner).__name__ == "Call"
                    else type(inner).__name__)
            hint = (" (use rate(): the rules record per-second rates and average them)"
                    if what == "increase()" else "")
            return f"sum of {what}{hint}"
        ms = inner.args[0]
        if type(ms).__name__ != "MatrixSelector":
            return "rate() of a subquery"
        if int(ms.range.total_seconds()) != seconds(PROBE):
            return f"a range other than {WINDOW_VAR} ({ms.range})"
        vs = ms.vector_selector
        if vs.offset is not None or vs.at is not None:
            return "an offset or @ modifier (the windows end now)"
        pinned = [m for m in vs.matchers.matchers
                  if m.name == "service" and str(m.op) == "MatchOp.Equal"]
        if not pinned or pinned[0].value != service:
            return (f'a selector without service="{service}" (the rules label their series '
                    "with the document's service)")
        return None
    if kind == "Call":
        return f"the function {node.func.name}() at the top (sum its rate() inside instead)"
    return f"a bare {kind} (sum its rate() by (env, service))"


def _check_query(doc: _Doc, key: str, text: str, service: str) -> None:
    if WINDOW_VAR not in text:
        doc.fail(f"{key} must use {WINDOW_VAR} as its range (Sloth's convention)")
    try:
        node = parse_promql(text.replace(WINDOW_VAR, PROBE))
    except ValueError as exc:
        doc.fail(f"{key} is not valid PromQL: {' '.join(str(exc).split())}")
        raise AssertionError from exc  # unreachable
    problem = _shape(node, service)
    if problem:
        doc.fail(f"{key}: {problem} is not supported; write {SHAPE}")


def _events(doc: _Doc, key: str) -> tuple[str, ...]:
    raw = doc.get(key, list)
    if not raw:
        doc.fail(f"{key} must list at least one series")
    for text in raw:
        try:
            node = parse_promql(str(text))
        except ValueError:
            node = None
        if type(node).__name__ != "VectorSelector" or not node.name:
            doc.fail(f"{key}: {text!r} is not a series selector like metric{{label=\"value\"}}")
    return tuple(str(t) for t in raw)


def _alert_name(doc: _Doc, key: str = "name") -> str:
    name = doc.get(key, str)
    if not ALERT_NAME.fullmatch(name):
        doc.fail(f"{key} {name!r} is not a Prometheus alert name ([a-zA-Z_:][a-zA-Z0-9_:]*)")
    return name


def _alert(doc: _Doc, common_labels: dict[str, str], common: dict[str, str],
           default_summary: str) -> Alert:
    doc.only("labels", "annotations", "disable")
    if doc.get("disable", bool, False):
        doc.fail("disable: true is not supported: every SLO pages and tickets (the generated "
                 "tests and the runbook assume both tiers); remove the key")
    labels = {**common_labels, **doc.labels("labels")}
    annotations = {"summary": default_summary, **common, **doc.annotations("annotations")}
    return Alert(labels, annotations)


def _name(doc: _Doc, key: str) -> str:
    name = doc.get(key, str)
    if not NAME.fullmatch(name):
        doc.fail(f"{key} {name!r} must start and end with a letter or digit and hold only "
                 "letters, digits, '.', '_' and '-' (Sloth's rule)")
    return name


def _slo(doc: _Doc, service: str, service_labels: dict[str, str],
         pairs: tuple[Pair, ...]) -> Slo:
    doc.only("name", "objective", "description", "sli", "alerting", "test_events", "labels")
    name = _name(doc, "name")
    doc.where = f"{doc.where} ({name})"
    labels = {**service_labels, **doc.labels("labels")}
    objective = doc.number("objective")
    if not 0 < objective < 100:
        doc.fail(f"objective {objective:g} must be a percentage in (0, 100), e.g. 99.9 "
                 "(100 leaves no error budget to burn)")
    budget = round(1 - round(objective / 100, 12), 12)
    for pair in pairs:
        if pair.factor * budget >= 1:
            lowest = 100 * (1 - 1 / pair.factor)
            doc.fail(f"objective {objective:g} leaves a {budget * 100:.4g}% budget: the "
                     f"{pair.label} {pair.tier} would need {pair.factor:g} x {budget * 100:.4g}"
                     f"% = {pair.factor * budget * 100:.4g}% bad events and can never fire; "
                     f"use an objective above {lowest:.4g}% (or windows with a lower factor)")
    sli = doc.sub("sli")
    sli.only("events")
    events = sli.sub("events")
    events.only("error_query", "total_query")
    error_query = _WINDOW_ANY.sub(WINDOW_VAR, " ".join(events.get("error_query", str).split()))
    total_query = _WINDOW_ANY.sub(WINDOW_VAR, " ".join(events.get("total_query", str).split()))
    if error_query == total_query:
        events.fail("error_query and total_query are the same query")
    _check_query(events, "error_query", error_query, service)
    _check_query(events, "total_query", total_query, service)
    alerting = doc.sub("alerting")
    alerting.only("name", "labels", "annotations", "page_alert", "ticket_alert",
                  "budget_alert")
    alert_name = _alert_name(alerting)
    common_labels = alerting.labels("labels")
    common = alerting.annotations("annotations")
    budget_alert = None
    if "budget_alert" in alerting.data:
        b = alerting.sub("budget_alert")
        b.only("name", "remaining_below", "labels", "annotations")
        remaining = b.number("remaining_below")
        if not 0 < remaining < 1:
            b.fail("remaining_below must be a share of the budget in (0, 1)")
        annotations = {"summary": f"Little of the {name} SLO's error budget of {service} is "
                                  "left.", **common, **b.annotations("annotations")}
        budget_alert = BudgetAlert(_alert_name(b), remaining, b.labels("labels"), annotations)
    if "test_events" not in doc.data:
        doc.fail("test_events missing: one good and one bad raw series, which the generated "
                 "promtool tests replay (this bundle's extension of Sloth's format)")
    tests = doc.sub("test_events")
    tests.only("good", "bad")
    summary = f"The {name} SLO of {service} burns its error budget too fast"
    return Slo(
        service=service, name=name, objective_percent=objective,
        description=doc.get("description", str, ""), error_query=error_query,
        total_query=total_query, alert_name=alert_name, labels=labels,
        annotations=common,
        page=_alert(alerting.sub("page_alert", {}), common_labels, common, summary + " (page)."),
        ticket=_alert(alerting.sub("ticket_alert", {}), common_labels, common,
                      summary + " (ticket)."),
        budget_alert=budget_alert,
        good_events=_events(tests, "good"), bad_events=_events(tests, "bad"),
    )


def _documents(path: Path, rel: Path | str) -> list[Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{rel}: cannot read: {exc.strerror}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise SpecError(f"{rel}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
                        "save it as UTF-8") from exc
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{rel}: not valid YAML{where}: {' '.join(str(problem).split())}") \
            from exc
    except RecursionError as exc:
        raise SpecError(f"{rel}: not valid YAML: nested too deeply") from exc


def load(path: Path = SPEC) -> Spec:
    """Parse and validate the spec; SpecError (one line) on any problem."""
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    if path.is_dir():
        raise SpecError(f"{rel}: is a directory, not the SLO spec file")
    docs = _documents(path, rel)
    windows = [d for d in docs if isinstance(d, dict) and d.get("kind") == "AlertWindows"]
    if len(windows) != 1:
        raise SpecError(f"{rel}: needs exactly one `kind: AlertWindows` document (the alert "
                        f"windows and tiers, see docs/alerting.md), found {len(windows)}")
    period, pairs = _windows(_Doc(path, "AlertWindows", windows[0]))
    slos: list[Slo] = []
    for i, raw in enumerate(docs, start=1):
        if raw is windows[0]:
            continue
        doc = _Doc(path, f"document {i}", raw)
        doc.only("version", "service", "labels", "slos")
        if doc.get("version", str) != "prometheus/v1":
            doc.fail("version must be prometheus/v1 (Sloth's spec)")
        service = _name(doc, "service")
        doc.where = f"service {service}"
        labels = doc.labels("labels")
        items = doc.get("slos", list)
        if not items:
            doc.fail("slos is empty")
        for j, item in enumerate(items):
            slo = _slo(_Doc(path, f"service {service}: slos[{j}]", item), service, labels,
                       pairs)
            for other in slos:
                if other.key != slo.key:
                    continue
                if other.service == slo.service:
                    doc.fail(f"two SLOs named {slo.name!r}")
                doc.fail(f"the SLO {slo.name!r} and the SLO {other.name!r} of service "
                         f"{other.service} both make the rule group slo-{slo.key}; rename one")
            slos.append(slo)
    if not slos:
        raise SpecError(f"{rel}: no SLO defined")
    return Spec(path, period, pairs, tuple(slos))
