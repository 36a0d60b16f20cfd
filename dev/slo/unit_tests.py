"""The promtool unit tests of prometheus/rules/slo.yml, generated from the spec.

Every case is one SLO under a traffic schedule (dev/slo/model.py `Phase`); the model
predicts which window pairs fire at each evaluation, and the tests assert those predictions
at the moments that matter: one evaluation before and at the first page or ticket, after a
recovery, at the lone-failure guard (one bad event against two), and wherever a threshold
changed tenfold would give another answer. All cases of a file run side by side in one test group,
told apart by their `env` label (the rules are per env and service), which keeps promtool's
evaluations few. Three files per SLO, tests/rules/slo-<service>-<slo>.<resolution>.test.yml,
by the resolution a case needs:

    page       15 s samples and evaluations: the page's timing, 30 s blips
    sustained  1 m samples, 2 m evaluations: recoveries, burns that take hours (6h/30m),
               one failure at night, the 30-day budget
    ticket     1 m samples, 5 m evaluations, a day of history: tickets
    quiet      1 m samples, 5 m evaluations, up to 3 days of history at 1 request a
               minute: a lone failure pages nobody, a real outage pages
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from .model import (
    MIN_BAD_EVENTS,
    Eval,
    Phase,
    build_series,
    first,
    humanize_percentage,
    simulate,
    threshold,
    values_notation,
)
from .rules import annotations, budget_annotations, group_name, group_order, recorded
from .spec import Pair, Slo, Spec, duration

MARGIN = 1e-6  # a decisive comparison closer than this (relative) makes a flaky test
DAY_RATE = 10.0  # events per second unless a case says otherwise
# Partial burns are 0.01% over their round values (2.1x is 2.1002x): a value that an
# evaluation lands on exactly (4.7125%) would round either way in humanizePercentage.
JITTER = 1.0001


def span(secs: int) -> str:
    """Seconds -> promtool duration, compound: 22215 -> 6h10m15s."""
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if secs >= size:
            out += f"{secs // size}{unit}"
            secs %= size
    return out or "0s"


@dataclass(frozen=True)
class Resolution:
    name: str  # tests/rules/slo-<service>-<slo>.<name>.test.yml
    interval: int  # input samples
    step: int  # evaluations
    history: int  # clean traffic before the incident
    header: str


PAGE = Resolution("page", 15, 15, 3900,
                  "15 s samples and evaluations, 1h05m of clean traffic first (the 1h window "
                  "full). Longer windows hold only that hour here, so only the pair under test "
                  "is asserted (through ALERTS); the other files assert every pair")
SUSTAINED = Resolution("sustained", 60, 120, 6 * 3600,
                       "1 m samples, an evaluation every 2 m, 6h of clean traffic first (the page "
                       "windows full; the 1d and 3d windows hold only those hours, so the tickets "
                       "come earlier than with a full history: the ticket file has a day)")
TICKET = Resolution("ticket", 60, 300, 86400,
                    "1 m samples, an evaluation every 5 m, a day of clean traffic first")
QUIET = Resolution("quiet", 60, 300, 0,
                   "1 m samples, an evaluation every 5 m; traffic of 1 request a minute after "
                   "2 h, 6 h or 3 days of history (each case says which)")
RESOLUTIONS = (PAGE, SUSTAINED, TICKET, QUIET)
QUIET_RATE = 1 / 60  # one request a minute


@dataclass
class Case:
    slo: Slo
    env: str
    phases: list[Phase]
    checks: list[tuple[int, str]]  # (time, why)
    only: str | None = None  # assert only this pair ("1h/5m") or tier ("page"), not every alert
    values_at: int | None = None  # also assert every recorded series here
    proof_at: int | None = None  # show the page pair's windows are over the line here


@dataclass
class Group:
    """One scenario; its cases are told apart by `env` (the slug, plus a variant)."""

    slug: str
    title: str
    comment: str
    cases: list[Case] = field(default_factory=list)


def _pair(spec: Spec, tier: str, speed: str) -> Pair:
    return next(p for p in spec.pairs if p.tier == tier and p.speed == speed)


def _until(case: Case) -> int:
    return sum(p.seconds for p in case.phases)


def _evals(spec: Spec, res: Resolution, case: Case) -> dict[int, Eval]:
    return {e.t: e for e in simulate(spec, case.slo, case.phases, res.interval, res.step,
                                     _until(case))}


def _first(spec: Spec, res: Resolution, slo: Slo, phases: list[Phase],
           cond: Callable[[Eval], bool]) -> int:
    evals = simulate(spec, slo, phases, res.interval, res.step, sum(p.seconds for p in phases))
    return first(evals, res.history, cond).t


def _hist(res: Resolution, *rest: tuple[int, float, float], rate: float = DAY_RATE) -> list[Phase]:
    return [Phase(res.history, rate, 0.0), *[_phase(s, r, b) for s, r, b in rest]]


def _phase(seconds: int, rate: float, bad: float) -> Phase:
    return Phase(seconds, rate, bad if bad in (0.0, 1.0) else bad * JITTER)


def _outage(pair: Pair, slo: Slo) -> int:
    """Seconds of a full outage to search for `pair`'s first alert in: its long window
    crosses once factor x budget of it is bad (longer for large budgets), plus room."""
    return max(3 * 3600, int(min(1.0, threshold(pair, slo) * 1.25) * pair.long) + 1800)


def test_file(slo: Slo, res: Resolution) -> str:
    """The file of one SLO at one resolution (tests/rules/mutate.py relies on the prefix:
    the rule group's name)."""
    return f"{group_name(slo)}.{res.name}.test.yml"


def groups(spec: Spec, res: Resolution, slos: tuple[Slo, ...]) -> list[Group]:
    quick, slow = _pair(spec, "page", "quick"), _pair(spec, "page", "slow")
    tq, ts = _pair(spec, "ticket", "quick"), _pair(spec, "ticket", "slow")
    t0, step = res.history, res.step
    out: list[Group] = []

    def group(slug: str, title: str, comment: str) -> Group:
        out.append(Group(slug, title, comment))
        return out[-1]

    def fires(pair: Pair) -> Callable[[Eval], bool]:
        return lambda e: pair.label in e.firing

    if res is PAGE:
        g = group("outage", "a full outage pages within a minute of the workbook's figure",
                  f"Every event bad from {span(t0)} on. The {duration(quick.long)} ratio passes "
                  f"{quick.factor:g} x the budget once factor x budget x "
                  f"{duration(quick.long)} of errors are in it (the workbook's figure: "
                  + ", ".join(f"{s.service} {s.name} {quick.factor * s.budget * quick.long:g} s"
                              for s in slos)
                  + f"); the first {step} s evaluation after that pages.")
        for slo in slos:
            at = _first(spec, res, slo, _hist(res, (_outage(quick, slo), DAY_RATE, 1.0)),
                        fires(quick))
            g.cases.append(Case(slo, "compose", _hist(res, (at - t0 + 60, DAY_RATE, 1.0)),
                                [(at - step, "one evaluation before: not yet"),
                                 (at, f"the page, {at - t0} s into the outage")],
                                only=quick.label))
        g = group("blip", "a 30-second blip pages nobody",
                  f"30 s of bad events: the {duration(quick.short)} window is far over the "
                  f"page line, the {duration(quick.long)} window ({30 / quick.long:.2%} bad) "
                  "is not.")
        for slo in slos:
            g.cases.append(Case(slo, "compose", _hist(res, (30, DAY_RATE, 1.0),
                                                      (600, DAY_RATE, 0.0)),
                                [(t0 + 30, "during the blip"), (t0 + 300, "5 minutes on"),
                                 (t0 + 600, "10 minutes on")], only=quick.label,
                                proof_at=t0 + 30))

    if res is SUSTAINED:
        g = group("blip", "a short blip pages nobody",
                  "One minute at 50% bad events (the 30 s blip of the page file at this "
                  "resolution), now with the 6h window full: no pair fires.")
        for slo in slos:
            g.cases.append(Case(slo, "compose", _hist(res, (60, DAY_RATE, 0.5),
                                                      (3600, DAY_RATE, 0.0)),
                                [(t0 + 120, "just after"), (t0 + 600, "10 minutes on"),
                                 (t0 + 3600, "an hour on")], only="page"))

        g = group("outage", "a full outage pages, with the exact alert",
                  "The same outage as in the page file at 1 m resolution, with 6 hours of "
                  "history: every pair asserted, and every recorded series' value.")
        for slo in slos:
            at = _first(spec, res, slo, _hist(res, (_outage(quick, slo), DAY_RATE, 1.0)),
                        fires(quick))
            g.cases.append(Case(slo, "compose", _hist(res, (at - t0 + 120, DAY_RATE, 1.0)),
                                [(at - step, "one evaluation before"), (at, "the page")],
                                values_at=at))

        g = group("recovery",
                  f"the {duration(quick.short)} window ends the page after a recovery",
                  f"An outage until {quick.label} pages plus 5 minutes, then 0.45 times the "
                  f"{quick.label} line of bad events: the {duration(quick.long)} window stays "
                  f"over the line, the {duration(quick.short)} one drops under it within 5 "
                  "minutes and the page resolves (the 6h/30m pair may still page).")
        for slo in slos:
            at = _first(spec, res, slo, _hist(res, (_outage(quick, slo), DAY_RATE, 1.0)),
                        fires(quick))
            outage = at - t0 + 300
            half = 0.45 * threshold(quick, slo)
            end = t0 + outage
            g.cases.append(Case(slo, "compose",
                                _hist(res, (outage, DAY_RATE, 1.0), (2400, DAY_RATE, half)),
                                [(end + 120, "2 minutes after the recovery: still paging"),
                                 (end + quick.short + step, f"{quick.label} resolved")]))

        g = group("burn2q", f"a steady burn of 2.1 times the {quick.label} line pages "
                  f"through {quick.label}",
                  f"2.1 x {quick.factor:g} x the budget in both windows (or, where that is more "
                  "than every event, halfway between the line and every event): the page "
                  f"comes when the {duration(quick.long)} window is half full of it.")
        for slo in slos:
            burn = min(2.1 * threshold(quick, slo), (1 + threshold(quick, slo)) / 2)
            at = _first(spec, res, slo, _hist(res, (3 * 3600, DAY_RATE, burn)), fires(quick))
            g.cases.append(Case(slo, "compose", _hist(res, (at - t0 + 120, DAY_RATE, burn)),
                                [(at - step, "one evaluation before"), (at, "the page")]))

        g = group("burn10x", f"a steady 9.7x burn pages only through {slow.label}, and the "
                  f"{duration(slow.short)} window ends it",
                  f"Under the {quick.label} line ({quick.factor:g}x), over {slow.label} "
                  f"({slow.factor:g}x). The {duration(slow.long)} window is the mean of the "
                  f"recorded 5-minute rates: it lags the raw window by up to 5 minutes, so the "
                  f"page comes a few minutes after {span(int(slow.factor / 10 * slow.long))} of "
                  f"burn. Then {slow.factor * 0.45:g}x: the {duration(slow.short)} window ends it.")
        for slo in slos:
            burn = 9.7 * slo.budget
            at = _first(spec, res, slo, _hist(res, (6 * 3600, DAY_RATE, burn)), fires(slow))
            burned = at - t0 + 1800
            cool = 0.45 * threshold(slow, slo)
            g.cases.append(Case(slo, "compose",
                                _hist(res, (burned, DAY_RATE, burn), (2700, DAY_RATE, cool)),
                                [(at - step, "one evaluation before"), (at, "the page"),
                                 (t0 + burned + slow.short + 600, "after the cool-down")]))

        g = group("night", "one failed request out of two at night pages nobody",
                  "Traffic drops to 2 requests per hour for 75 minutes, then one request "
                  f"fails: both {quick.label} windows are far over the line, but the short one "
                  f"holds fewer than {MIN_BAD_EVENTS} bad events.")
        for slo in slos:
            night = 2 / 3600
            fail = t0 + 4500 + res.interval
            g.cases.append(Case(slo, "compose",
                                _hist(res, (4500, night, 0.0), (res.interval, 1 / res.interval,
                                                                 1.0), (900, night, 0.0)),
                                [(fail + 60, "a minute after the failure"),
                                 (fail + 600, "ten minutes after")], proof_at=fail + 60))

        g = group("budget", "the budget left after 2 hours of a steady burn",
                  "env = the share of the budget left: 50% (its value asserted), 5 points "
                  "under and over the alert's line; the alert waits 15 minutes.")
        for slo in slos:
            if not slo.budget_alert:
                continue
            limit = slo.budget_alert.remaining_below
            for left in (0.5, limit - 0.05, limit + 0.05):
                phases = [Phase(2 * 3600, DAY_RATE, (1 - left) * slo.budget)]
                evals = simulate(spec, slo, phases, res.interval, step, 7200)
                low = [e.t for e in evals
                       if e.budget_remaining is not None and e.budget_remaining < limit]
                checks = [(low[0] + 900 - step, "pending"), (low[0] + 900, "after `for`")] \
                    if low else []
                g.cases.append(Case(slo, f"{left * 100:.0f}left", phases,
                                    [*checks, (7200, "after 2 hours")],
                                    values_at=7200 if left == 0.5 else None))

    if res is TICKET:
        g = group("outage", f"a full outage opens a {tq.label} ticket",
                  "Every event bad from 1d on; the pages fire as well (later than at 15 s "
                  "resolution) and Alertmanager inhibits the ticket while they do.")
        for slo in slos:
            at = _first(spec, res, slo, _hist(res, (_outage(tq, slo), DAY_RATE, 1.0)),
                        fires(tq))
            g.cases.append(Case(slo, "compose", _hist(res, (at - t0 + 600, DAY_RATE, 1.0)),
                                [(at - step, "one evaluation before"), (at, "the ticket")]))

        g = group("steady", "steady burns: 5.2x opens both tickets and never pages, 2.1x only the "
                  f"{ts.label} ticket, 0.93x nothing",
                  "From the start, for a day (env = the burn rate).")
        for slo in slos:
            for factor in (5.2, 2.1, 0.93):
                g.cases.append(Case(slo, f"{factor:g}x",
                                    [_phase(30 * 3600, DAY_RATE, factor * slo.budget)],
                                    [(86400, "after a day")]))

        g = group("dropped", "burns that dropped: the short windows close the tickets",
                  f"2.1x for 18h then 0.45x for 7h: the {duration(ts.long)} window still holds "
                  f"the burn, the {duration(ts.short)} one not (env 2.1x-0.45x). 5.2x for 21h then "
                  f"1.3x for 3h: the same for {duration(tq.long)} and {duration(tq.short)} "
                  "(env 5.2x-1.3x).")
        for slo in slos:
            b = slo.budget
            g.cases.append(Case(slo, "2.1x-0.45x", [_phase(18 * 3600, DAY_RATE, 2.1 * b),
                                                    _phase(7 * 3600, DAY_RATE, 0.45 * b)],
                                [(25 * 3600, "7 hours after the drop")]))
            g.cases.append(Case(slo, "5.2x-1.3x", [_phase(21 * 3600, DAY_RATE, 5.2 * b),
                                                   _phase(4 * 3600, DAY_RATE, 1.3 * b)],
                                [(24 * 3600, "3 hours after the drop")]))

        g = group("burst", "a recent 11.7x burst the long windows have not confirmed yet",
                  f"75 minutes at 11.7x after a clean day: the short windows are over the ticket "
                  f"lines, the {duration(tq.long)} and {duration(ts.long)} windows are not.")
        for slo in slos:
            g.cases.append(Case(slo, "compose", [Phase(86400 - 4500, DAY_RATE, 0.0),
                                                 _phase(4500, DAY_RATE, 11.7 * slo.budget)],
                                [(86400, "at the end of the burst")]))

        g = group("blip", "a 30-second blip opens no ticket", "One minute at 50% bad events.")
        for slo in slos:
            g.cases.append(Case(slo, "compose", _hist(res, (60, DAY_RATE, 0.5),
                                                      (3600, DAY_RATE, 0.0)),
                                [(t0 + 300, "just after"), (t0 + 3600, "an hour on")]))

        g = group("guard", "one failure opens no ticket at 1 request in 10 minutes, two do",
                  f"A day at 1 request every 10 minutes, then one failed request (env one) or "
                  f"two 10 minutes apart (env two): one bad event is over the {tq.label} "
                  f"line in both windows but under {MIN_BAD_EVENTS} bad events in "
                  f"{duration(tq.short)}; two are not.")
        slow_rate = 1 / 600
        for slo in slos:
            # Each failure is the sample taken at an evaluation (see lonely()).
            g.cases.append(Case(slo, "one", [Phase(86400 + 240, slow_rate, 0.0),
                                             Phase(60, 1 / 60, 1.0),
                                             Phase(7200, slow_rate, 0.0)],
                                [(86400 + 900, "10 minutes after"),
                                 (86400 + 3600, "55 minutes after")]))
            g.cases.append(Case(slo, "two", [Phase(86400 + 240, slow_rate, 0.0),
                                             Phase(60, 1 / 60, 1.0), Phase(540, slow_rate, 0.0),
                                             Phase(60, 1 / 60, 1.0), Phase(7200, slow_rate, 0.0)],
                                [(86400 + 900, "at the second"),
                                 (86400 + 3600, "45 minutes after the second")]))

    if res is QUIET:
        lonely(spec, group, slos)

    return out


HISTORIES = ((2 * 3600, "2h"), (6 * 3600, "6h"), (3 * 86400, "3d"))


def lonely(spec: Spec, group: Callable[[str, str, str], Group], slos: tuple[Slo, ...]) -> None:
    """The quiet file: 1 request a minute after 2 h, 6 h and 3 days of history."""
    g = group("lonely", "one failed request at 1 request a minute pages nobody",
              "History of 2 h, 6 h or 3 days (env = its length) at 1 request a minute, then "
              "one request fails: the 1h window holds 1 bad in 60 (1.7%, over the page line of "
              "a 0.1% budget) and the 6h one 1 in 126 or 360, but no short window holds "
              f"{MIN_BAD_EVENTS} bad events, so no pair fires, however young the series.")
    # The failed request is the sample taken at an evaluation: the 5m window of that
    # evaluation (and so the recorded 5-minute rate) holds it; at a 5 m evaluation interval
    # an event just after an evaluation would be in no 5m window at all.
    for history, name in HISTORIES:
        for slo in slos:
            g.cases.append(Case(slo, name, [Phase(history + 240, QUIET_RATE, 0.0),
                                            Phase(60, QUIET_RATE, 1.0),
                                            Phase(3 * 3600, QUIET_RATE, 0.0)],
                                [(history + 300, "at the failure"),
                                 (history + 1800, "25 minutes after"),
                                 (history + 3 * 3600, "3 hours after")]))
    g = group("pair", "two failures a minute apart at 1 request a minute",
              f"After 6 h of history: {MIN_BAD_EVENTS} bad events in 5 minutes. The model says "
              "whether that is over a page line (it is for a 0.1% budget: 2 in 60 is 3.3%, "
              "over 1.44%).")
    for slo in slos:
        g.cases.append(Case(slo, "6h", [Phase(6 * 3600 + 180, QUIET_RATE, 0.0),
                                        Phase(120, QUIET_RATE, 1.0),
                                        Phase(3600, QUIET_RATE, 0.0)],
                            [(6 * 3600 + 300, "at the second failure"),
                             (6 * 3600 + 3600, "an hour later")]))
    g = group("outage", "a real outage at 1 request a minute still pages",
              "History of 2 h, 6 h or 3 days (env) at 1 request a minute, then every request "
              "fails for 2 hours: checked one evaluation before the first page and at it.")
    for history, name in HISTORIES:
        for slo in slos:
            phases = [Phase(history, QUIET_RATE, 0.0), Phase(2 * 3600, QUIET_RATE, 1.0)]
            evals = simulate(spec, slo, phases, QUIET.interval, QUIET.step, history + 2 * 3600)
            at = first(evals, history, lambda e: any(
                p.tier == "page" and p.label in e.firing for p in spec.pairs)).t
            g.cases.append(Case(slo, name, phases, [(at - QUIET.step, "one evaluation before"),
                                                    (at, f"the page, {span(at - history)} in")]))


# --- rendering ---------------------------------------------------------------------------------


_TEMPLATE = re.compile(r"{{(-?)\s*(\$labels\.|\.Labels\.)?([^}|]*?)(\s*\|\s*humanizePercentage)?"
                       r"\s*(-?)}}")


def _render(template: str, labels: dict[str, str], value: float) -> str:
    """The templates the spec may use (spec.py checks them), as Prometheus expands them: a
    missing label is empty, `{{-` and `-}}` trim the whitespace beside them."""
    out, pos = [], 0
    for m in _TEMPLATE.finditer(template):
        before = template[pos:m.start()]
        out.append(before.rstrip() if m.group(1) else before)
        if m.group(2):
            out.append(labels.get(m.group(3).strip(), ""))
        else:
            out.append(humanize_percentage(value))
        pos = m.end()
        if m.group(5):
            rest = template[pos:]
            pos += len(rest) - len(rest.lstrip())
    out.append(template[pos:])
    return "".join(out)


def _base(case: Case) -> dict[str, str]:
    return {**case.slo.labels, "env": case.env, "service": case.slo.service,
            "slo": case.slo.name}


def _inner(labels: dict[str, str]) -> str:
    return ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))


def _safe(what: str, value: float, limit: float | None = None) -> None:
    """Refuse expectations that a last-bit difference could flip."""
    if limit is not None and limit and abs(value - limit) <= MARGIN * abs(limit):
        raise ValueError(f"{what} = {value!r} is at its threshold {limit!r}")
    if limit is None and humanize_percentage(value * (1 + 1e-9)) != humanize_percentage(
            value * (1 - 1e-9)):
        raise ValueError(f"{what} = {value!r} rounds either way in humanizePercentage")


def _alerts(spec: Spec, case: Case, ev: Eval, every: bool = False) -> dict[str, list[dict]]:
    """alertname -> the alerts the model expects firing for this case at ev.t (only those
    the case asserts, unless `every`)."""
    only = None if every else case.only
    slo, where = case.slo, f"{case.slo.key} env {case.env} at {span(ev.t)}"
    for what, value, limit in ev.margins:
        _safe(f"{where}: {what}", value, limit)
    out: dict[str, list[dict]] = {slo.alert_name: []}
    for pair in spec.pairs:
        if pair.label not in ev.firing or (only and only not in (pair.label, pair.tier)):
            continue
        alert = slo.alert(pair)
        labels = {**_base(case), **alert.labels, "slo": slo.name, "window": pair.label}
        _safe(f"{where}: {pair.label} $value", ev.firing[pair.label])
        out[slo.alert_name].append({"exp_labels": labels, "exp_annotations": {
            k: _render(v, labels, ev.firing[pair.label])
            for k, v in annotations(spec, slo, pair).items()}})
    b = slo.budget_alert
    if b and not only:
        out[b.name] = []
        if ev.budget_alert is not None:
            labels = {**_base(case), **b.labels}
            _safe(f"{where}: budget $value", ev.budget_alert)
            out[b.name].append({"exp_labels": labels, "exp_annotations": {
                k: _render(v, labels, ev.budget_alert)
                for k, v in budget_annotations(spec, b.annotations).items()}})
    return out


def _round(v: float, to: float = 1e-6) -> float:
    """PromQL round(v, to): floor(v * (1/to) + 0.5) / (1/to)."""
    inverse = 1.0 / to
    return math.floor(v * inverse + 0.5) / inverse


def _sample(case: Case, expr_name: str, value: float, t: int) -> dict:
    sel = f'{{env="{case.env}", service="{case.slo.service}", slo="{case.slo.name}"}}'
    return {"expr": f"round({expr_name}{sel}, 0.000001)", "eval_time": span(t),
            "exp_samples": [{"labels": f"{{{_inner(_base(case))}}}", "value": _round(value)}]}


def _values(spec: Spec, case: Case, ev: Eval) -> list[dict]:
    slo = case.slo
    obj = f'slo:objective:ratio{{service="{slo.service}", slo="{slo.name}"}}'
    labels = {**slo.labels, "service": slo.service, "slo": slo.name}
    tests = [{"expr": obj, "eval_time": span(ev.t),
              "exp_samples": [{"labels": f"slo:objective:ratio{{{_inner(labels)}}}",
                               "value": slo.objective}]}]
    names = set(recorded(spec))
    for w in spec.windows():
        d = duration(w)
        for name, table in ((f"slo:sli_requests:rate{d}", ev.requests),
                            (f"slo:sli_errors:rate{d}", ev.errors),
                            (f"slo:sli_error:ratio_rate{d}", ev.ratio)):
            if name in names and table.get(w) is not None:
                tests.append(_sample(case, name, table[w], ev.t))
    if ev.budget_remaining is not None:
        tests.append(_sample(case, f"slo:error_budget_remaining:ratio{duration(spec.period)}",
                             ev.budget_remaining, ev.t))
    return tests


def _alerts_series(name: str, alert: dict) -> str:
    labels = {**alert["exp_labels"], "alertname": name, "alertstate": "firing"}
    return f"ALERTS{{{_inner(labels)}}}"


def _test_group(spec: Spec, res: Resolution, scenarios: list[Group],
                title: str) -> tuple[str, dict]:
    """All scenarios of a file as one promtool test group (one evaluation timeline)."""
    cases: list[Case] = []
    for sc in scenarios:
        for case in sc.cases:
            case.env = sc.slug if case.env == "compose" else f"{sc.slug}-{case.env}"
            cases.append(case)
    g = Group("", "", "", cases)
    for case in cases:  # checks fall on evaluations
        case.checks = [(-(-t // res.step) * res.step, why) for t, why in case.checks]
        if case.proof_at is not None:
            case.proof_at = -(-case.proof_at // res.step) * res.step
    # Every case runs until the group's last check: promtool keeps evaluating a series
    # that stopped early (for the 5-minute lookback), which the model would not see.
    end = max(t for c in g.cases for t, _ in c.checks)
    for case in g.cases:
        if _until(case) < end:
            last = case.phases[-1]
            case.phases = [*case.phases, Phase(end - _until(case), last.rate, last.bad)]
    series, times = [], {}
    for case in g.cases:
        series += [{"series": s.text, "values": values_notation(s)}
                   for s in build_series(case.slo, case.phases, res.interval, case.env)]
        for t, why in case.checks:
            times.setdefault(t, []).append((case, why))
    evals = {id(c): _evals(spec, res, c) for c in g.cases}
    rule_tests, exprs = [], []
    lines: dict[int, list[str]] = {id(sc): [] for sc in scenarios}
    owner = {id(c): id(sc) for sc in scenarios for c in sc.cases}
    # Files whose cases all assert one pair (short history) get no alert_rule_test.
    full = g.cases if any(not c.only for c in g.cases) else []
    names = sorted({n for c in full for n in (c.slo.alert_name, c.slo.budget_alert
                                               and c.slo.budget_alert.name) if n})
    for t in sorted(times):
        # Each case's own checks: which of its alerts fire (labels), through ALERTS.
        for case, why in times[t]:
            expected = _alerts(spec, case, evals[id(case)][t])
            fired = ", ".join(a["exp_labels"].get("window", name) for name, alerts in
                              expected.items() for a in alerts) or "nothing"
            lines[owner[id(case)]].append(
                f"{span(t)}  {case.slo.service} {case.slo.name}, env {case.env}: {why} -> {fired}")
            for name, alerts in expected.items():
                extra = ""
                if case.only:
                    windows = [p.label for p in spec.pairs if case.only in (p.label, p.tier)]
                    extra = f', window=~"{"|".join(windows)}"'
                exprs.append({
                    "expr": f'ALERTS{{alertname="{name}", alertstate="firing", env="{case.env}", '
                            f'service="{case.slo.service}", slo="{case.slo.name}"{extra}}}',
                    "eval_time": span(t),
                    "exp_samples": [{"labels": _alerts_series(name, a), "value": 1}
                                    for a in alerts]})
    # The complete alerts with their annotations, as promtool sees them (every case of the
    # file at once): at as few check times as show every alert rule firing, preferring
    # the times when the fewest alerts fire.
    firing: dict[int, dict[str, list[dict]]] = {}
    for t in times:
        firing[t] = {name: [] for name in names}
        for case in full:
            for name, alerts in _alerts(spec, case, evals[id(case)][t], every=True).items():
                firing[t][name].extend(alerts)

    def keys(t: int) -> set[tuple[str, ...]]:
        return {(n, a["exp_labels"]["service"], a["exp_labels"]["slo"],
                 a["exp_labels"].get("window", "budget"))
                for n, alerts in firing[t].items() for a in alerts}

    todo = set().union(*(keys(t) for t in times)) if full else set()
    shown: list[int] = []
    while todo:
        best = max(sorted(times), key=lambda t: len(keys(t) & todo)
                   / (1 + sum(len(a) for a in firing[t].values())))
        todo -= keys(best)
        shown.append(best)
    for name in names:  # and each alert name silent once
        if full and not any(not firing[t][name] for t in shown):
            quiet = [t for t in sorted(times) if not firing[t][name]]
            if quiet:
                shown.append(min(quiet, key=lambda t: sum(len(a) for a in firing[t].values())))
    for t in sorted(shown):
        for name in names:
            rule_tests.append({"eval_time": span(t), "alertname": name,
                               "exp_alerts": firing[t][name]})
    for case in g.cases:
        ev = evals[id(case)]
        if case.proof_at is not None:
            quick = _pair(spec, "page", "quick")
            e = ev[case.proof_at]
            for w in (quick.short, quick.long):
                _safe(f"{case.slo.key} {w}", e.ratio[w], threshold(quick, case.slo))
                sel = f'{{env="{case.env}", service="{case.slo.service}", slo="{case.slo.name}"}}'
                exprs.append({
                    "expr": f"round(slo:sli_error:ratio_rate{duration(w)}{sel}, 0.000001) > "
                            f"{threshold(quick, case.slo):g}",
                    "eval_time": span(case.proof_at),
                    "exp_samples": [{"labels": f"{{{_inner(_base(case))}}}",
                                     "value": _round(e.ratio[w])}]
                    if e.ratio[w] is not None and e.ratio[w] > threshold(quick, case.slo)
                    else []})
        if case.values_at is not None:
            exprs += _values(spec, case, ev[case.values_at])
    group: dict[str, Any] = {"name": f"{title}: {res.name} tests",
                             "interval": span(res.interval), "input_series": series}
    if rule_tests:
        group["alert_rule_test"] = rule_tests
    if exprs:
        group["promql_expr_test"] = exprs
    comment = []
    for sc in scenarios:
        comment += ["#", f"# env {sc.slug}*: {sc.title}.",
                    *[f"#   {line}" for line in _wrap(sc.comment, 88)],
                    *[f"#   - {line}" for line in lines[id(sc)]]]
    return "\n".join(comment), group


def _wrap(text: str, width: int = 92) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


def generate(spec: Spec, res: Resolution, slo: Slo) -> str:
    head = [
        "# GENERATED by `make slo` (python -m dev.slo) from prometheus/slos.yml, with the",
        "# expectations predicted by dev/slo/model.py: edit the spec or the cases in",
        "# dev/slo/unit_tests.py, not this file. Run: promtool test rules tests/rules/*.test.yml",
        "#",
        *[f"# {line}" for line in _wrap(f"Resolution: {res.header}. Traffic "
                                        f"{DAY_RATE:g} events/s unless a case says otherwise; "
                                        "cases of a group are told apart by env.")],
    ]
    doc = {
        "rule_files": ["../../prometheus/rules/slo.yml"],
        "evaluation_interval": span(res.step),
        "fuzzy_compare": True,
        "group_eval_order": group_order(spec),
    }
    title = f"{slo.service} {slo.name} SLO"
    comment, group = _test_group(spec, res, groups(spec, res, (slo,)), title)
    doc["tests"] = [group]
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=10000, allow_unicode=True)
    return "\n".join(["\n".join(head), "#", "# Scenarios, and what the model expects at each "
                      "check:", comment, body.rstrip()]) + "\n"


class _Dumper(yaml.SafeDumper):
    """Block sequences indented under their key, as yamllint's default config wants."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

