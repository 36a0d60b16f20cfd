"""Conventions every rule in prometheus/rules/ follows, read from the files themselves.

Alerts: CamelCase names; severity critical|warning|info; a `service` label on every firing
alert; a static one-sentence summary; a templated description that uses humanizePercentage
only on 0..1 ratios; a runbook_url whose anchor exists in docs/runbook.md.
All rules: rate()/increase() windows >= 4x the scrape interval of the job they select (read
from prometheus/prometheus.yml); `for` >= 2x that interval on absent() alerts;
histogram_quantile over buckets summed `by (le, ...)`; no grouping by unbounded labels.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import promql_parser as pp
import pytest

from tests.rules import ruleset

SEVERITIES = {"critical", "warning", "info"}
RUNBOOK_BASE = "https://github.com/apollonia/apollonia-observability/blob/main/docs/runbook.md#"
# Labels with one value per user/request: grouping by them explodes the series count.
HIGH_CARDINALITY = {"user_id", "request_id", "trace_id", "span_id", "session_id", "email", "ip"}
COMPARISONS = {">", "<", ">=", "<=", "==", "!="}

ALERTS = ruleset.alerts()
RULES = ruleset.rules()


def _ids(rules: list[ruleset.Rule]) -> list[str]:
    return [r.key for r in rules]


# --- PromQL walking -------------------------------------------------------------------------


def children(node: object) -> list[object]:
    kind = type(node).__name__
    if kind == "BinaryExpr":
        return [node.lhs, node.rhs]
    if kind in ("AggregateExpr",):
        return [node.expr] + ([node.param] if node.param is not None else [])
    if kind in ("ParenExpr", "UnaryExpr", "SubqueryExpr"):
        return [node.expr]
    if kind == "Call":
        return list(node.args)
    if kind == "MatrixSelector":
        return [node.vector_selector]
    return []


def walk(node: object) -> Iterator[object]:
    yield node
    for child in children(node):
        yield from walk(child)


def matchers(vs: object) -> dict[str, str]:
    return {m.name: m.value for m in vs.matchers.matchers if str(m.op) in ("MatchOp.Equal",
                                                                         "MatchOp.Re")}


def selector_interval(vs: object) -> float:
    """Scrape interval (s) of the slowest job a selector can read from."""
    name = vs.name or ""
    if ":" in name:  # a recording rule: written every evaluation interval
        return ruleset.evaluation_interval()
    intervals = ruleset.scrape_intervals()
    return max(intervals[j] for j in ruleset.jobs_for_metric(name, matchers(vs)))


def is_ratio(node: object) -> bool:
    """Does the value of this expression (the one an alert's $value shows) lie in 0..1?"""
    kind = type(node).__name__
    if kind == "ParenExpr":
        return is_ratio(node.expr)
    if kind == "AggregateExpr":
        return str(node.op) in ("sum", "min", "max", "avg") and is_ratio(node.expr)
    if kind == "BinaryExpr":
        op = str(node.op)
        if op in COMPARISONS and not (node.modifier and node.modifier.return_bool):
            return is_ratio(node.lhs)  # a filter keeps the left-hand values
        if op in ("and", "unless"):
            return is_ratio(node.lhs)
        if op == "or":
            return is_ratio(node.lhs) and is_ratio(node.rhs)
        if op == "/":
            return True  # part / whole; dimension checks are the unit tests' job
        if op == "-":
            lhs = node.lhs
            return type(lhs).__name__ == "NumberLiteral" and lhs.val == 1 and is_ratio(node.rhs)
        return False
    if kind == "VectorSelector":
        return "ratio" in (node.name or "")
    if kind == "Call":
        # busy/idle CPU seconds per second per CPU
        return str(node.func.name) == "rate" and "cpu_seconds_total" in str(node.args[0])
    return False


# --- names, labels, annotations -----------------------------------------------------------------


@pytest.mark.parametrize("rule", ALERTS, ids=_ids(ALERTS))
def test_alert_name_and_severity(rule: ruleset.Rule) -> None:
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", rule.name), f"{rule.where()}: not CamelCase"
    assert rule.severity in SEVERITIES, f"{rule.where()}: severity {rule.severity!r}"


@pytest.mark.parametrize("rule", ALERTS, ids=_ids(ALERTS))
def test_summary_is_one_static_sentence(rule: ruleset.Rule) -> None:
    summary = rule.raw.get("annotations", {}).get("summary", "")
    assert summary, f"{rule.where()}: no summary"
    assert "{{" not in summary, f"{rule.where()}: summary must be static (group titles)"
    assert "\n" not in summary.strip() and summary.endswith("."), f"{rule.where()}: {summary!r}"
    assert not re.search(r"[.!?]\s", summary), f"{rule.where()}: more than one sentence"


@pytest.mark.parametrize("rule", ALERTS, ids=_ids(ALERTS))
def test_description_is_templated_and_percentages_are_ratios(rule: ruleset.Rule) -> None:
    description = rule.raw.get("annotations", {}).get("description", "")
    assert "{{" in description, f"{rule.where()}: description is not templated"
    if "humanizePercentage" in description:
        assert is_ratio(pp.parse(rule.expr)), (
            f"{rule.where()}: humanizePercentage on a value that is not a 0..1 ratio"
        )


def _anchors(markdown: str) -> set[str]:
    """GitHub heading anchors: lower case, punctuation dropped, spaces to dashes."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
            out.add(text.replace(" ", "-"))
    return out


@pytest.mark.parametrize("rule", ALERTS, ids=_ids(ALERTS))
def test_runbook_url_points_at_an_existing_section(rule: ruleset.Rule) -> None:
    url = rule.raw.get("annotations", {}).get("runbook_url", "")
    assert url.startswith(RUNBOOK_BASE), f"{rule.where()}: runbook_url {url!r}"
    anchor = url[len(RUNBOOK_BASE):]
    assert anchor in _anchors(ruleset.RUNBOOK.read_text()), (
        f"{rule.where()}: no section #{anchor} in docs/runbook.md"
    )


def test_every_firing_alert_in_the_tests_has_a_service_label() -> None:
    """Static rules cannot know which labels a series brings, so check the unit tests'
    expectations: every firing alert they assert (all alerts fire in some test) has `service`."""
    seen = 0
    for tf in ruleset.test_files():
        for group in ruleset.load_yaml(tf).get("tests", []):
            for case in group.get("alert_rule_test", []) or []:
                for exp in case.get("exp_alerts") or []:
                    seen += 1
                    assert exp.get("exp_labels", {}).get("service"), (
                        f"{tf.name}: {case['alertname']} fires without a service label"
                    )
    assert seen >= len(ALERTS)


# --- PromQL ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", RULES, ids=_ids(RULES))
def test_rate_windows_cover_four_scrapes(rule: ruleset.Rule) -> None:
    for node in walk(pp.parse(rule.expr)):
        if type(node).__name__ != "Call" or str(node.func.name) not in ("rate", "increase"):
            continue
        ms = node.args[0]
        assert type(ms).__name__ == "MatrixSelector", f"{rule.where()}: rate over a subquery"
        need = 4 * selector_interval(ms.vector_selector)
        window = ms.range.total_seconds()
        assert window >= need, (
            f"{rule.where()}: {node.func.name}(...[{window:.0f}s]) of "
            f"{ms.vector_selector.name} needs >= {need:.0f}s (4 scrapes)"
        )


@pytest.mark.parametrize("rule", ALERTS, ids=_ids(ALERTS))
def test_absent_alerts_wait_two_scrapes(rule: ruleset.Rule) -> None:
    hold = ruleset.seconds(rule.raw.get("for"))
    for node in walk(pp.parse(rule.expr)):
        if type(node).__name__ == "Call" and str(node.func.name) == "absent":
            need = 2 * selector_interval(node.args[0])
            assert hold >= need, f"{rule.where()}: absent() with for {hold}s < {need}s"


@pytest.mark.parametrize("rule", RULES, ids=_ids(RULES))
def test_quantiles_sum_buckets_by_le(rule: ruleset.Rule) -> None:
    for node in walk(pp.parse(rule.expr)):
        if type(node).__name__ == "Call" and str(node.func.name) == "histogram_quantile":
            inner = node.args[1]
            while type(inner).__name__ == "ParenExpr":
                inner = inner.expr
            assert type(inner).__name__ == "AggregateExpr" and str(inner.op) == "sum", (
                f"{rule.where()}: histogram_quantile needs sum by (le, ...) of bucket rates"
            )
            assert "le" in inner.modifier.labels, f"{rule.where()}: buckets not kept by le"


@pytest.mark.parametrize("rule", RULES, ids=_ids(RULES))
def test_no_grouping_by_unbounded_labels(rule: ruleset.Rule) -> None:
    for node in walk(pp.parse(rule.expr)):
        if type(node).__name__ == "AggregateExpr" and node.modifier is not None:
            bad = HIGH_CARDINALITY & set(node.modifier.labels)
            assert not bad, f"{rule.where()}: groups by {sorted(bad)}"


# --- the checks themselves can fail ------------------------------------------------------------


def test_checkers_reject_the_guides_bugs() -> None:
    # The guide's HighErrorRate printed an absolute rate as a percentage.
    assert not is_ratio(pp.parse('rate(http_requests_total{status_code=~"5.."}[5m]) > 0.1'))
    assert is_ratio(pp.parse("service:http_requests_error_ratio:rate5m > 0.1"))
    # The guide's quantile without sum by (le).
    node = pp.parse("histogram_quantile(0.95, rate(x_bucket[5m]))")
    assert type(node.args[1]).__name__ == "Call"
    # A 1m window over the analyzer (30s scrapes) holds two samples only.
    vs = pp.parse("rate(ml_processing_errors_total[1m])").args[0]
    assert vs.range < timedelta(seconds=4 * selector_interval(vs.vector_selector))
    assert _anchors("## HighErrorRate\n### A b-c!\n") == {"higherrorrate", "a-b-c"}
