"""prometheus/slos.yml generates the SLO rules, their promtool tests and the docs tables.

- the committed files are exactly what the spec generates (`make slo` would change nothing),
  and the check names a file that drifted;
- a broken spec is one line of error naming the file and the problem, and writes nothing;
- the model behind the promtool tests' expectations computes rate() as Prometheus does;
- the page tier meets the issue's figure: a full api outage pages within 75 s.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dev.slo import docs, model, spec
from dev.slo.__main__ import drift, generated, targets

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def files() -> dict[Path, str]:
    """What the committed spec generates (a few seconds: computed once)."""
    return generated(spec.load())


def test_generated_files_match_the_spec(files: dict[Path, str]) -> None:
    problems = drift(spec.load(), files=files)
    assert not problems, "\n".join(problems)


def test_drift_is_reported_per_file(tmp_path: Path, files: dict[Path, str]) -> None:
    s = spec.load()
    for path in files:
        rel = path.relative_to(ROOT)
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, tmp_path / rel)
    assert drift(s, tmp_path, files) == []
    rules = tmp_path / "prometheus/rules/slo.yml"
    rules.write_text(rules.read_text().replace("> 0.0144", "> 0.144", 1))
    (tmp_path / "tests/rules/slo-api-latency.page.test.yml").unlink()
    assert drift(s, tmp_path, files) == [
        "prometheus/rules/slo.yml: differs from prometheus/slos.yml (run make slo)",
        "tests/rules/slo-api-latency.page.test.yml: missing (run make slo)",
    ]


GOOD = (ROOT / "prometheus/slos.yml").read_text()

BROKEN = {
    "yaml": (GOOD.replace("slos:\n  # Health", "slos:\n  - [\n  # Health", 1),
             "not valid YAML (line"),
    "unknown key": (GOOD.replace("objective: 99.9", "objetive: 99.9", 1),
                    "unknown key 'objetive'"),
    "objective": (GOOD.replace("objective: 99.9", "objective: 120", 1),
                  "objective 120 must be a percentage"),
    "window variable": (GOOD.replace("[{{.window}}]))\n        total_query", "[5m]))\n"
                                     "        total_query", 1), "must use {{.window}}"),
    "promql": (GOOD.replace("sum by (env, service) (rate(http_requests_total{service=\"api\",",
                            "sum by (env, service) (rate(http_requests_total{service=\"api\"",
                            1), "is not valid PromQL"),
    "aggregation": (GOOD.replace("sum by (env, service) (rate(http_requests_total{service=\"api\",",
                                 "sum by (service) (rate(http_requests_total{service=\"api\",",
                                 1), "does not keep exactly `by (env, service)`"),
    "service": (GOOD.replace('{service="api",\n          endpoint!~',
                             '{service=~"api|analyzer",\n          endpoint!~', 1),
                'a selector without service="api"'),
    "duration": (GOOD.replace("longWindow: 1h}", "longWindow: 1 hour}", 1),
                 "longWindow '1 hour' is not a Prometheus duration"),
    "windows": (GOOD.replace("shortWindow: 5m, longWindow: 1h", "shortWindow: 2h, longWindow: 1h",
                             1), "needs 0 < shortWindow < longWindow"),
    "min_events": (GOOD.replace("      name: ApiErrorBudgetBurn\n",
                                "      name: ApiErrorBudgetBurn\n      min_events: 100\n", 1),
                   "min_events was replaced: every window pair now requires at least 2 bad"),
    "reserved label": (GOOD.replace("labels: {severity: critical}",
                                    "labels: {severity: critical, env: prod}", 1),
                       "'env' is set by the generated rules themselves"),
    "test events": (GOOD.replace("good: ['http_requests_total{method=\"GET\"",
                                 "good: ['rate(http_requests_total{method=\"GET\"", 1),
                    "is not a series selector"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_spec_is_one_line_naming_the_file(case: str, tmp_path: Path) -> None:
    text, expected = BROKEN[case]
    assert text != GOOD, f"{case}: the replacement did not apply"
    bad = tmp_path / "slos.yml"
    bad.write_text(text)
    before = {p: p.stat().st_mtime_ns for p in targets()}
    out = tmp_path / "out"  # where a spec that unexpectedly passes writes (not the repo)
    proc = subprocess.run([sys.executable, "-m", "dev.slo", "--spec", str(bad), "--out",
                           str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{bad}: "), proc.stderr
    assert expected in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    assert {p: p.stat().st_mtime_ns for p in before} == before, "a bad spec wrote files"
    assert not out.exists(), "a bad spec wrote files"


def test_rate_is_extrapolated_as_prometheus_does() -> None:
    # A counter rising 150 per 15 s sample, sampled over the whole 5m window: the 20 samples
    # cover 285 s and rate() extrapolates to the window's 300 s: exactly 10/s.
    values = [150.0 * i for i in range(41)]
    assert model.extrapolated_rate(values, 21, 40, 15, 300, 600, 300) == 10.0
    # The same counter from 0 in its first sample: the zero point caps the extrapolation
    # at the start, so only the 285 s seen count.
    assert model.extrapolated_rate(values, 0, 19, 15, -15, 285, 300) == pytest.approx(9.5)
    # One sample is no rate.
    assert model.extrapolated_rate(values, 3, 3, 15, 0, 300, 300) is None
    assert model.humanize_percentage(1 / 60) == "1.667%"


def test_a_full_api_outage_pages_within_75_seconds() -> None:
    s = spec.load()
    api = next(o for o in s.slos if o.service == "api" and o.name == "availability")
    assert docs.page_after(s, api) <= 75


def test_every_generated_table_is_filled(files: dict[Path, str]) -> None:
    """docs/alerting.md holds two tables: both are written (the second replacement used to
    start from the file on disk again and drop the first)."""
    for path, marker in docs.TABLES:
        text = files[ROOT / path]
        block = text.split(docs._begin(marker), 1)[1].split(docs._end(marker), 1)[0]
        assert block.strip().startswith("| "), f"{path}: the {marker} table is empty"
