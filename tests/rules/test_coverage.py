"""Every alert and recording rule is unit-tested by a promtool test file.

Coverage rules (checked statically on the *.test.yml files):
- every alert rule (its name and identifying labels: severity, and for SLO burn-rate rules
  slo and window) has an `alert_rule_test` where it fires, asserting its exact labels and its
  summary/description/runbook_url annotations, and one where it stays silent;
- every recording rule appears in a `promql_expr_test` that expects at least one sample;
- every `rule_files` entry of a test file matches a file (promtool only warns), every rule
  file is loaded by some test file, and tests that load several rule groups pin their
  evaluation order with `group_eval_order` (promtool's default order is random, which makes
  rules that read another group's output flaky).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from tests.rules import ruleset

# Alerts that fire by design all the time: there is no state in which they are silent.
ALWAYS_FIRING = {"Watchdog": "vector(1)"}

Coverage = tuple[dict[str, set[str]], dict[str, set[str]], dict[str, set[str]]]


def _coverage(test_files: list[Path] | None = None) -> Coverage:
    """(fires, silent, recorded): rule key -> test files that cover it."""
    fires: dict[str, set[str]] = defaultdict(set)
    silent: dict[str, set[str]] = defaultdict(set)
    recorded: dict[str, set[str]] = defaultdict(set)
    for tf in test_files if test_files is not None else ruleset.test_files():
        loaded = [p for paths in ruleset.loaded_rule_files(tf).values() for p in paths]
        defined = ruleset.rules(loaded)
        by_name: dict[str, list[ruleset.Rule]] = defaultdict(list)
        for r in defined:
            if r.is_alert:
                by_name[r.name].append(r)
        records = {r.name for r in defined if not r.is_alert}
        for group in ruleset.load_yaml(tf).get("tests", []):
            for case in group.get("alert_rule_test", []) or []:
                name = case["alertname"]
                seen = set()
                for exp in case.get("exp_alerts") or []:
                    labels = exp.get("exp_labels", {})
                    ann = exp.get("exp_annotations", {})
                    for r in by_name.get(name, []):
                        if all(labels.get(k) == v for k, v in r.identity.items()):
                            seen.add(r.key)
                            if {"summary", "description", "runbook_url"} <= set(ann):
                                fires[r.key].add(tf.name)
                for r in by_name.get(name, []):
                    if r.key not in seen:
                        silent[r.key].add(tf.name)
            for case in group.get("promql_expr_test", []) or []:
                if not case.get("exp_samples"):
                    continue
                for rec in records:
                    if re.search(rf"(?<![\w:]){re.escape(rec)}(?![\w:])", case["expr"]):
                        recorded[rec].add(tf.name)
    return fires, silent, recorded


def test_every_alert_fires_and_stays_silent_in_some_test() -> None:
    fires, silent, _ = _coverage()
    alerts = ruleset.alerts()
    assert alerts, "no alert rules found"
    for a in alerts:
        if a.name in ALWAYS_FIRING:
            assert a.expr.strip() == ALWAYS_FIRING[a.name], a.where()
    keys = sorted({a.key for a in alerts})
    no_fire = [k for k in keys if k not in fires]
    can_be_silent = [k for k in keys if k.split("[")[0] not in ALWAYS_FIRING]
    no_silent = [k for k in can_be_silent if k not in silent]
    print(
        f"alert coverage: fire {len(keys) - len(no_fire)}/{len(keys)}, "
        f"silent {len(can_be_silent) - len(no_silent)}/{len(can_be_silent)} "
        f"(always firing by design: {sorted(ALWAYS_FIRING)})"
    )
    assert not no_fire, f"alerts without a firing test (labels + annotations): {no_fire}"
    assert not no_silent, f"alerts without a test where they stay silent: {no_silent}"


def test_every_recording_rule_has_an_expression_test() -> None:
    _, _, recorded = _coverage()
    names = sorted({r.name for r in ruleset.recordings()})
    assert names, "no recording rules found"
    missing = [n for n in names if n not in recorded]
    print(f"recording rule coverage: {len(names) - len(missing)}/{len(names)}")
    assert not missing, f"recording rules without a promql_expr_test: {missing}"


def test_rule_files_globs_match_and_every_rule_file_is_tested() -> None:
    tested: set[Path] = set()
    for tf in ruleset.test_files():
        globs = ruleset.loaded_rule_files(tf)
        assert globs, f"{tf.name}: no rule_files"
        for pattern, paths in globs.items():
            assert paths, f"{tf.name}: rule_files entry {pattern!r} matches no file"
            tested.update(paths)
    untested = [p.name for p in ruleset.rule_files() if p.resolve() not in tested]
    assert not untested, f"rule files no test file loads: {untested}"


def test_group_evaluation_order_is_pinned() -> None:
    for tf in ruleset.test_files():
        loaded = [p for paths in ruleset.loaded_rule_files(tf).values() for p in paths]
        groups = sorted({r.group for r in ruleset.rules(loaded)})
        if len(groups) < 2:
            continue
        order = ruleset.load_yaml(tf).get("group_eval_order") or []
        assert sorted(order) == groups, (
            f"{tf.name}: group_eval_order {order} must list every loaded group {groups}"
        )


def test_coverage_check_detects_gaps(tmp_path) -> None:
    """The coverage logic itself: an empty glob, a firing case without annotations and a
    missing silent case are all reported."""
    rules_file = tmp_path / "x.yml"
    rules_file.write_text(
        "groups:\n- name: g\n  rules:\n"
        "  - alert: Foo\n    expr: up == 0\n    labels: {severity: warning}\n"
        "  - record: job:up:sum\n    expr: sum by (job) (up)\n"
    )
    test_file = tmp_path / "x.test.yml"
    test_file.write_text(
        "rule_files: [nothing-here-*.yml, x.yml]\n"
        "tests:\n- input_series: []\n  alert_rule_test:\n"
        "  - eval_time: 1m\n    alertname: Foo\n"
        "    exp_alerts: [{exp_labels: {severity: warning}}]\n"
    )
    globs = ruleset.loaded_rule_files(test_file)
    assert globs["nothing-here-*.yml"] == []
    assert globs["x.yml"] == [rules_file.resolve()]
    fires, silent, recorded = _coverage([test_file])
    assert "Foo[warning]" not in fires  # no annotations asserted
    assert "Foo[warning]" not in silent  # never expected silent
    assert "job:up:sum" not in recorded
