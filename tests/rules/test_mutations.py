"""A sample of rule mutants must make the promtool unit tests fail.

Every operator of tests/rules/mutate.py on a fixed sample of rules: inverting a comparison,
a threshold multiplied or divided by 10, `for` dropped, halved and doubled, an aggregation
label dropped, and one SLO burn-rate threshold. The full run over every rule (about 500
mutants, some 25 minutes) is `make mutation`; this sample keeps `make test` proving that the
harness and the tests notice each kind of change.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.rules import mutate, ruleset

# (rule key, what the mutant's description starts with); an SLO mutant runs only the
# page tests of its SLO (the full run gives it all three files).
SAMPLE = [
    ("HighErrorRate[critical]", "invert"),
    ("HighErrorRate[critical]", "threshold 0.10 x 10"),
    ("HighErrorRate[critical]", "threshold 0.05 x 10"),
    ("HighErrorRate[critical]", "halve"),
    ("HighErrorRate[critical]", "double"),
    ("HighErrorRate[critical]", "drop `for"),
    ("LowUploadRate[warning]", "threshold 1 / 10"),
    ("LowUploadRate[warning]", "halve"),
    ("HighMLProcessingErrors[critical]", "threshold 10 x 10"),
    ("HighMLProcessingErrors[critical]", "double"),
    ("PrometheusNotConnectedToAlertmanagers[warning]", "invert"),
    ("ServiceDown[critical]", "invert"),
    ("service:ml_processing_error_ratio:rate5m", "drop `env`"),
    ("service:http_request_duration_seconds:p95_rate5m", "drop `le`"),
    ("ApiErrorBudgetBurn[critical]{slo=availability, window=1h/5m}", "threshold 0.0144 / 10"),
]


def test_operators_find_their_targets() -> None:
    expr = 'a{x!="1", y=~"a>b"} > 0.05 and sum by (env, service) (b) != 1 and c == 0'
    ops = [expr[s:e] for s, e in mutate.comparison_spans(expr)]
    assert ops == [">", "!=", "=="]
    assert [expr[s:e] for s, e in mutate.threshold_spans(expr)] == ["0.05", "1", "0"]
    assert [labels for _, _, labels in mutate.by_labels(expr)] == [["env", "service"]]
    rule = ruleset.Rule(ruleset.RULES_DIR / "x.yml", "g", 0,
                        {"alert": "X", "expr": expr, "for": "10m", "labels": {"severity": "info"}})
    what = [m.what.split(" in ")[0] for m in mutate.mutants(rule)]
    assert "threshold 0.05 x 10 = 0.5" in what and "threshold 1 / 10 = 0.1" in what
    assert not [w for w in what if w.startswith("threshold 0 ")], "0 x 10 is no mutant"
    assert {"drop `for: 10m`", "halve `for: 10m` to 5m", "double `for: 10m` to 20m",
            "drop `env` from by (env, service)"} <= set(what)


@pytest.mark.skipif(not ruleset.PROMTOOL.exists(), reason="promtool not installed")
def test_sampled_mutants_are_killed() -> None:
    by_key: dict[str, list[mutate.Mutant]] = {}
    for rule in ruleset.rules():
        by_key.setdefault(rule.key, []).extend(mutate.mutants(rule))
    selected = []
    for key, start in SAMPLE:
        found = [m for m in by_key.get(key, []) if m.what.startswith(start)]
        assert found, f"no mutant {start!r} of {key} (have {[m.what for m in by_key.get(key, [])]})"
        m = found[0]
        selected.append(replace(m, only=".page.test.yml") if m.rule.file.name == "slo.yml" else m)
    survivors = [m.describe() for m, killed, _ in mutate.run_all(selected) if not killed]
    assert not survivors, f"mutants the unit tests did not notice: {survivors}"
