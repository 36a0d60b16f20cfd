"""A sample of rule mutants must make the promtool unit tests fail.

Inverting an alert's comparison or dropping its `for` must break at least one unit test.
The full run over every alert (about 100 mutants, a few minutes) is
`.venv/bin/python -m tests.rules.mutate`; this test runs a fixed sample of the cheap ones
so `make test` keeps proving that the harness notices such changes.
"""

from __future__ import annotations

import pytest

from tests.rules import mutate, ruleset

SAMPLE = ["HighErrorRate", "ServiceDown", "SlowDatabaseQueries", "LowCacheHitRate",
          "HighMLProcessingErrors", "LowUploadRate", "TargetDown"]


def test_comparison_scanner_skips_label_matchers() -> None:
    expr = 'a{x!="1", y=~"a>b"} > 0 and b != 1'
    ops = [expr[s:e] for s, e in mutate.comparison_spans(expr)]
    assert ops == [">", "!="]


@pytest.mark.skipif(not ruleset.PROMTOOL.exists(), reason="promtool not installed")
def test_sampled_mutants_are_killed() -> None:
    selected, seen = [], set()
    for alert in ruleset.alerts():
        if alert.name in SAMPLE and alert.name not in seen:  # one tier per alert name
            seen.add(alert.name)
            found = mutate.mutants(alert)
            # the first comparison (the threshold) and the dropped `for`
            selected += [m for m in found if not m.drop_for][:1] + [m for m in found if m.drop_for]
    assert len(selected) == 2 * len(SAMPLE), [m.describe() for m in selected]
    survivors = [m.describe() for m, killed, _ in mutate.run_all(selected) if not killed]
    assert not survivors, f"mutants the unit tests did not notice: {survivors}"
