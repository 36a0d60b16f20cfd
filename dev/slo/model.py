"""An independent model of the generated SLO rules, for the promtool tests' expectations.

Given a traffic schedule (events per second and the share of bad events, phase by phase),
it builds the raw counter samples the test feeds promtool and predicts, at every evaluation,
what prometheus/rules/slo.yml computes: the SLI rates and ratios per window, the burn-rate
alerts per window pair, the 30-day budget and its alert. It re-implements the arithmetic
(the SRE workbook's thresholds; Prometheus' rate() extrapolation from
promql/functions.go `extrapolatedRate` at v3.5.3; left-open range windows (t-w, t]) rather
than running Prometheus, so promtool checks the rules against something they did not
produce.

The spec's error_query / total_query are evaluated for the restricted shape the spec allows
(sums of rate() of counters, combined with + - * /), over the test's own series.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import promql_parser

from .spec import Pair, Slo, Spec, duration

# Windows up to this length are computed from raw samples; longer ones from the recorded
# 5-minute rates (see rules.py for why). Shared with rules.py.
RAW_MAX = 3600
BUDGET_FOR = 900  # `for` of the budget alert (15m)
# A window pair fires only while its short window holds at least this many bad events, so
# that no lone failure pages (docs/alerting.md, "The lone-failure guard"). Shared with
# rules.py. The rules compare with GUARD, halfway between one event and two: rate()
# extrapolates a lone event to at most 1.25 (a 5m window, a scrape a minute) and counts two
# as at least 2, so neither lands on the line.
MIN_BAD_EVENTS = 2
GUARD = MIN_BAD_EVENTS - 0.5
TARGET = {"job": "slo-test", "instance": "slo-test:9"}


@dataclass(frozen=True)
class Phase:
    seconds: int
    rate: float  # events per second
    bad: float  # share of bad events, 0..1


@dataclass
class Series:
    text: str  # promtool input series, e.g. 'm{a="b"}'
    name: str
    labels: dict[str, str]
    values: list[float] = field(default_factory=list)  # one per input interval, from t=0
    segments: list[tuple[float, float, int]] = field(default_factory=list)  # start, step, n


def _selector(text: str) -> tuple[str, dict[str, str]]:
    node = promql_parser.parse(text)
    return node.name, {m.name: m.value for m in node.matchers.matchers}


def build_series(slo: Slo, phases: list[Phase], interval: int, env: str) -> list[Series]:
    """The raw input series of a scenario: counters of good and bad events, accumulated
    sample by sample exactly as promtool expands `a+bxn` (repeated float additions)."""
    kinds: dict[str, set[str]] = {}
    for kind, texts in (("good", slo.good_events), ("bad", slo.bad_events)):
        for text in texts:
            kinds.setdefault(text, set()).add(kind)
    out = []
    for text, which in kinds.items():
        name, labels = _selector(text)
        labels = {**TARGET, "env": env, "service": slo.service, **labels}
        inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
        series = Series(f"{name}{{{inner}}}", name, labels)
        value = 0.0
        series.values.append(value)
        series.segments.append((value, 0.0, 0))
        for phase in phases:
            per_sample = phase.rate * interval
            inc = (per_sample * (1 - phase.bad) if "good" in which else 0.0) + (
                per_sample * phase.bad if "bad" in which else 0.0)
            n = phase.seconds // interval
            if not n:
                continue
            # promtool expands `a+bxn` by repeated additions: a, a+b, (a+b)+b, ...
            series.segments.append((value + inc, inc, n - 1))
            for _ in range(n):
                value += inc
                series.values.append(value)
        out.append(series)
    return out


def values_notation(series: Series) -> str:
    """promtool's expanding notation of the series: 'a+bxn c+dxm ...', one segment per
    phase. Starts are written exactly (repr round-trips a float64) and promtool adds the
    step n times, as build_series did, so both hold the identical floats."""
    parts = []
    for start, step, n in series.segments:
        parts.append(f"{_num(start)}+{_num(step)}x{n}" if n else _num(start))
    return " ".join(parts)


def _num(v: float) -> str:
    v = float(v)
    if v.is_integer() and abs(v) < 2**53:
        return str(int(v))
    return repr(v).replace("e+", "e")


# --- PromQL subset -------------------------------------------------------------------------


def _matches(labels: dict[str, str], name: str, node: Any) -> bool:
    if node.name and node.name != name:
        return False
    for m in node.matchers.matchers:
        actual = name if m.name == "__name__" else labels.get(m.name, "")
        op = str(m.op)
        ok = {
            "MatchOp.Equal": lambda a, v: a == v,
            "MatchOp.NotEqual": lambda a, v: a != v,
            "MatchOp.Re": lambda a, v: re.fullmatch(v, a) is not None,
            "MatchOp.NotRe": lambda a, v: re.fullmatch(v, a) is None,
        }[op](actual, m.value)
        if not ok:
            return False
    return True


def extrapolated_rate(values: list[float], lo: int, hi: int, interval: int, start: float,
                      end: float, window: float) -> float | None:
    """Prometheus' rate() of a counter whose samples values[lo..hi] (taken every `interval`
    seconds from t=0) are those in the range (start, end]."""
    if hi - lo < 1:
        return None
    first_t, last_t = lo * interval, hi * interval
    first_v, last_v = values[lo], values[hi]
    result = last_v - first_v
    prev = first_v
    for v in values[lo + 1:hi + 1]:
        if v < prev:  # a counter reset (the test counters have none, but be exact)
            result += prev
        prev = v
    to_start, to_end = first_t - start, end - last_t
    sampled = last_t - first_t
    average = sampled / (hi - lo)
    threshold = average * 1.1
    extrapolate_to = sampled
    if to_start >= threshold:
        to_start = average / 2
    if result > 0 and first_v >= 0:
        to_zero = sampled * (first_v / result)
        if to_zero < to_start:
            to_start = to_zero
    extrapolate_to += to_start
    if to_end >= threshold:
        to_end = average / 2
    extrapolate_to += to_end
    return result * (extrapolate_to / sampled) / window


class QueryModel:
    """Evaluates one spec query (after {{.window}} substitution) over the test series."""

    def __init__(self, text: str, series: list[Series], interval: int) -> None:
        self.node = promql_parser.parse(text)
        self.series = series
        self.interval = interval
        self.matching: dict[str, list[Series]] = {}  # selector text -> the series it selects

    def at(self, t: float) -> float | None:
        return self._eval(self.node, t)

    def _eval(self, node: Any, t: float) -> float | None:
        kind = type(node).__name__
        if kind == "ParenExpr":
            return self._eval(node.expr, t)
        if kind == "NumberLiteral":
            return float(node.val)
        if kind == "BinaryExpr":
            a, b = self._eval(node.lhs, t), self._eval(node.rhs, t)
            if a is None or b is None:
                return None
            op = str(node.op)
            if op == "/":
                return a / b if b else (float("nan") if not a else float("inf") * a)
            return {"+": a + b, "-": a - b, "*": a * b}[op]
        if kind == "AggregateExpr" and str(node.op) == "sum":
            rates = [r for r in self._rates(node.expr, t) if r is not None]
            return sum(rates) if rates else None
        raise ValueError(f"unsupported in an SLI query: {node}")

    def _rates(self, node: Any, t: float) -> list[float | None]:
        while type(node).__name__ == "ParenExpr":
            node = node.expr
        if type(node).__name__ != "Call" or str(node.func.name) != "rate":
            raise ValueError(f"SLI queries must sum rate() of counters: {node}")
        ms = node.args[0]
        window = ms.range.total_seconds()
        vs = ms.vector_selector
        key = str(vs)
        if key not in self.matching:
            self.matching[key] = [s for s in self.series if _matches(s.labels, s.name, vs)]
        out = []
        first = max(0, math.floor((t - window) / self.interval) + 1)
        for s in self.matching[key]:
            last = min(len(s.values) - 1, math.floor(t / self.interval))
            out.append(extrapolated_rate(s.values, first, last, self.interval, t - window, t,
                                         window))
        return out


# --- the generated rules ---------------------------------------------------------------------


@dataclass
class Eval:
    """What the rules hold for one SLO at one evaluation."""

    t: int
    requests: dict[int, float | None] = field(default_factory=dict)  # window -> rate
    errors: dict[int, float | None] = field(default_factory=dict)
    ratio: dict[int, float | None] = field(default_factory=dict)
    firing: dict[str, float] = field(default_factory=dict)  # pair label -> $value
    budget_remaining: float | None = None
    budget_alert: float | None = None  # $value when the budget alert fires
    margins: list[tuple[str, float, float]] = field(default_factory=list)


def threshold(pair: Pair, slo: Slo) -> float:
    return round(pair.factor * slo.budget, 12)


_CACHE: dict[tuple, list[Eval]] = {}


def simulate(spec: Spec, slo: Slo, phases: list[Phase], interval: int, step: int,
             until: int) -> list[Eval]:
    """Every evaluation from t=0 to `until` (promtool starts at 0, every `step` seconds)."""
    key = (id(spec), slo.key, tuple(phases), interval, step, until)
    if key not in _CACHE:
        _CACHE[key] = _simulate(spec, slo, phases, interval, step, until)
    return _CACHE[key]


def _simulate(spec: Spec, slo: Slo, phases: list[Phase], interval: int, step: int,
              until: int) -> list[Eval]:
    series = build_series(slo, phases, interval, "model")
    raw = [w for w in spec.windows() if w <= RAW_MAX]
    q_tot = {w: QueryModel(slo.total(duration(w)), series, interval) for w in raw}
    q_err = {w: QueryModel(slo.errors(duration(w)), series, interval) for w in raw}
    # Recorded 5-minute rates so far, with running sums for the windowed means.
    times: list[int] = []
    sum_err, sum_req = [0.0], [0.0]
    pending_since: int | None = None
    evals = []
    for t in range(0, until + 1, step):
        ev = Eval(t)
        for w in raw:
            req = q_tot[w].at(t)
            err = q_err[w].at(t)
            if err is None and req is not None:  # `or on (env, service) 0 * requests`
                err = 0.0
            ev.requests[w], ev.errors[w] = req, err
            ev.ratio[w] = err / req if req is not None and err is not None and req > 0 else None
        if ev.requests[300] is not None and ev.errors[300] is not None:
            times.append(t)
            sum_err.append(sum_err[-1] + ev.errors[300])
            sum_req.append(sum_req[-1] + ev.requests[300])

        def since(start: int) -> int:
            """Index of the first recorded sample after `start`."""
            return bisect.bisect_right(times, start)

        for w in spec.windows():
            if w in raw:
                continue
            lo, hi = since(t - w), len(times)
            if lo == hi:
                ev.requests[w] = ev.errors[w] = ev.ratio[w] = None
                continue
            req = (sum_req[hi] - sum_req[lo]) / (hi - lo)
            err = (sum_err[hi] - sum_err[lo]) / (hi - lo)
            ev.requests[w], ev.errors[w] = req, err
            ev.ratio[w] = err / req if req > 0 else None
        for pair in spec.pairs:
            thr = threshold(pair, slo)
            long_r, short_r = ev.ratio[pair.long], ev.ratio[pair.short]
            bad = _bad_events(ev, pair.short, t, times, sum_err, since)
            if long_r is None or short_r is None or bad is None:
                continue
            # A comparison can flip the alert only while the other two hold: only those
            # count as margins (the tests refuse an expectation that a last bit decides).
            parts = [(f"{pair.label} long", long_r, thr), (f"{pair.label} short", short_r, thr),
                     (f"{pair.label} bad events", bad, GUARD)]
            for i, part in enumerate(parts):
                if all(v > limit for j, (_, v, limit) in enumerate(parts) if j != i):
                    ev.margins.append(part)
            if long_r > thr and short_r > thr and bad > GUARD:
                ev.firing[pair.label] = long_r
        lo, hi = since(t - spec.period), len(times)
        total = sum_req[hi] - sum_req[lo]
        if hi > lo and total > 0:
            ev.budget_remaining = 1 - ((sum_err[hi] - sum_err[lo]) / total) / slo.budget
        if slo.budget_alert and ev.budget_remaining is not None:
            limit = slo.budget_alert.remaining_below
            ev.margins.append(("budget", ev.budget_remaining, limit))
            if ev.budget_remaining < limit:
                pending_since = t if pending_since is None else pending_since
                if t - pending_since >= BUDGET_FOR:
                    ev.budget_alert = ev.budget_remaining
            else:
                pending_since = None
        evals.append(ev)
    return evals


def _bad_events(ev: Eval, window: int, t: int, times: list[int], sum_err: list[float],
                since: Callable[[int], int]) -> float | None:
    """Bad events in a short window as the rules count them (rules.py bad_events): a raw
    window's error rate x its length; else the sum of the recorded 5-minute error rates in
    the window x 300 / the number of them in the last 5 minutes."""
    if window <= RAW_MAX:
        err = ev.errors.get(window)
        return None if err is None else err * window
    lo, hi, recent = since(t - window), len(times), since(t - 300)
    if hi in (lo, recent):
        return None
    return (sum_err[hi] - sum_err[lo]) * 300 / (hi - recent)


def first(evals: list[Eval], after: int, cond: Callable[[Eval], bool]) -> Eval:
    for ev in evals:
        if ev.t >= after and cond(ev):
            return ev
    raise ValueError("the condition never holds in this scenario")


def humanize_percentage(v: float) -> str:
    """Prometheus' template function humanizePercentage: fmt.Sprintf("%.4g%%", v*100)."""
    return "%.4g%%" % (v * 100)  # noqa: UP031 - the same verb as Go's
