"""Issue 20, item 11: one failed request pages nobody at low traffic, a real outage does.

Written by hand (not by the generator or its model): promtool runs prometheus/rules/slo.yml
on api requests at 1 request a minute after 2 hours, 6 hours and 3 days of history. The
rules are evaluated every 5 minutes (3 days at 1 m would take promtool ~40 s); the single
failure is the sample taken at an evaluation, so the 5m window of that evaluation holds it
(an event just after an evaluation would be in no 5m window at all). Before the guard was
derived from the short window, a single 500 after two hours fired the 6h/30m page (the 6h
window then holds ~126 requests, over `min_events: 100`, and 1/126 is a 7.9x burn of the
0.1% budget).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.rules import ruleset

pytestmark = pytest.mark.skipif(not ruleset.PROMTOOL.exists(),
                                reason="promtool not installed: run `make bootstrap`")

HISTORIES = {"2h": 120, "6h": 360, "3d": 3 * 1440}  # minutes of clean traffic first
AFTER = 180  # minutes of traffic after the failure (or of the outage)


def _series(env: str, status: str, values: list[int]) -> dict[str, str]:
    labels = (f'job="guard", instance="guard:9", env="{env}", service="api", method="GET", '
              f'endpoint="/api/v1/media", status_code="{status}"')
    # one sample a minute from t=0; written out (a few thousand numbers per series)
    return {"series": f"http_requests_total{{{labels}}}", "values": " ".join(map(str, values))}


def _case(env: str, history: int, outage: bool) -> list[dict[str, str]]:
    """1 request a minute. One failure at minute history + 5 (the sample of the evaluation
    at that minute), or every request failing from minute history + 1 on."""
    good, bad, g, b = [0], [0], 0, 0
    for minute in range(1, history + AFTER + 1):
        failing = (minute > history) if outage else (minute == history + 5)
        b, g = (b + 1, g) if failing else (b, g + 1)
        good.append(g)
        bad.append(b)
    return [_series(env, "200", good), _series(env, "500", bad)]


def _pages(env: str, minute: int, expected: list[str]) -> dict:
    return {"expr": f'count by (window) (ALERTS{{alertstate="firing", severity="critical", '
                    f'env="{env}"}})',
            "eval_time": f"{minute}m",
            "exp_samples": [{"labels": f'{{window="{w}"}}', "value": 1} for w in expected]}


def test_one_failure_at_one_request_a_minute_pages_nobody_but_an_outage_does(
        tmp_path: Path) -> None:
    series, checks = [], []
    for name, history in HISTORIES.items():
        series += _case(f"lonely-{name}", history, outage=False)
        series += _case(f"outage-{name}", history, outage=True)
        # The failure is in the 5m window of the evaluation at history+5, in the 30m and 1h
        # windows after it, in the 6h window for six hours: no page at any of these.
        for after in (5, 10, 15, 30, 60, 120, AFTER):
            checks.append(_pages(f"lonely-{name}", history + after, []))
        # Every request failing: by 10 minutes in, both page pairs of the 0.1% budget
        # (the 1h window holds >= 10 bad of 60 requests, 16.7%; the 6h one >= 10 of 360).
        checks.append(_pages(f"outage-{name}", history + 10, ["1h/5m", "6h/30m"]))
    doc = {"rule_files": [str(ruleset.RULES_DIR / "slo.yml")],
           "evaluation_interval": "5m",
           "tests": [{"name": "lone failure vs outage at 1 request a minute", "interval": "1m",
                      "input_series": series, "promql_expr_test": checks}]}
    path = tmp_path / "guard.test.yml"
    path.write_text(yaml.safe_dump(doc, width=10**9, sort_keys=False))
    proc = subprocess.run([str(ruleset.PROMTOOL), "test", "rules", str(path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
