"""The rule files pass promtool's checks and every promtool unit test.

Runs exactly what users' CI runs (`make test-rules`):
    promtool check rules --lint=all --lint-fatal prometheus/rules/*.yml
    promtool test rules tests/rules/*.test.yml
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.rules import ruleset

pytestmark = pytest.mark.skipif(
    not ruleset.PROMTOOL.exists(), reason="promtool not installed: run `make bootstrap`"
)


def test_rule_files_pass_promtool_lint() -> None:
    files = [str(p.relative_to(ruleset.ROOT)) for p in ruleset.rule_files()]
    assert files, "no rule files in prometheus/rules/"
    res = ruleset.promtool("check", "rules", "--lint=all", "--lint-fatal", *files)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("SUCCESS") == len(files), res.stdout


def test_promtool_unit_tests_pass() -> None:
    """`promtool test rules` on every test file; two files at a time to halve the wait."""
    files = [str(p.relative_to(ruleset.ROOT)) for p in ruleset.test_files()]
    assert files, "no promtool test files in tests/rules/"
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda f: (f, ruleset.promtool("test", "rules", f)), files))
    for f, res in results:
        out = res.stdout + res.stderr
        assert res.returncode == 0, f"{f}:\n{out[-6000:]}"
        # promtool only warns about a rule_files glob that matches nothing and then
        # passes with zero rules loaded: refuse that here as well as in the coverage test.
        assert "WARNING" not in out, f"{f}: {out}"
        assert "SUCCESS" in res.stdout, f"{f}: {out}"


def test_a_wrong_expectation_fails(tmp_path) -> None:
    """The harness can fail: the same rules with a deliberately wrong expectation."""
    bad = tmp_path / "bad.test.yml"
    bad.write_text(
        f"rule_files: [{ruleset.RULES_DIR / 'stack.yml'}]\n"
        "evaluation_interval: 1m\n"
        "tests:\n"
        "  - interval: 1m\n"
        "    input_series: []\n"
        "    alert_rule_test:\n"
        "      - {eval_time: 1m, alertname: Watchdog, exp_alerts: []}\n"
    )
    res = ruleset.promtool("test", "rules", str(bad))
    assert res.returncode != 0
    assert "Watchdog" in res.stdout + res.stderr
