"""Every Fluent Bit, Jaeger and Elasticsearch exporter series the bundle reads is one the
pinned versions expose.

The expositions are tests/fixtures/fluent-bit-5.1.1/*.txt (recorded from the real binary),
tests/fixtures/jaeger-2.20.0/metrics-8888.txt (derived from its source) and
tests/fixtures/elasticsearch-exporter-1.9.0/metrics-9114.txt (from the exporter's own tests).
A rule, panel, doc or diagnosis query naming anything else would stay empty on a real stack;
so would a rule unit test whose input series carry labels the real series do not have.
"""

from __future__ import annotations

from pathlib import Path

import promql_parser
import yaml

from tests.metrics_catalog import (
    EXPOSITION_PREFIXES,
    EXPOSITIONS,
    ROOT,
    exposed_names,
    exposition_series,
    metric_names,
    repo_queries,
)

# Added by Prometheus from the target (prometheus/targets/<env>/*.yml), not by the exporter.
TARGET_LABELS = {"job", "instance", "service", "env"}


def test_queries_name_only_exposed_series():
    exposed = exposed_names()
    problems = sorted(
        f"{q.source}: {name}"
        for q in repo_queries()
        for name in metric_names(q.expr)
        if name.startswith(EXPOSITION_PREFIXES) and name not in exposed
    )
    assert not problems, ("names no pinned Fluent Bit, Jaeger or Elasticsearch exporter "
                          "exposes:\n" + "\n".join(problems))


def _input_series(test_file: Path) -> list[str]:
    spec = yaml.safe_load(test_file.read_text(encoding="utf-8"))
    return [s["series"] for t in spec.get("tests", []) for s in t.get("input_series", [])]


def test_rule_tests_feed_series_shaped_like_the_real_ones():
    shapes = {}
    for component in EXPOSITIONS:
        shapes |= exposition_series(component)
    problems = []
    checked = 0
    for test_file in sorted((ROOT / "tests" / "rules").glob("*.test.yml")):
        for series in _input_series(test_file):
            selector = promql_parser.parse(series)
            name = selector.name
            if not name or not name.startswith(EXPOSITION_PREFIXES):
                continue
            checked += 1
            labels = frozenset(m.name for m in selector.matchers.matchers) - TARGET_LABELS
            if name not in shapes:
                problems.append(f"{test_file.name}: {name} is not exposed at all")
            elif labels not in shapes[name]:
                problems.append(f"{test_file.name}: {series}: labels {sorted(labels)}, real "
                                f"ones {[sorted(s) for s in shapes[name]]}")
    assert checked, "no rule test feeds Fluent Bit or Jaeger series"
    assert not problems, "\n".join(problems)


def test_the_check_catches_a_name_no_binary_exposes():
    assert "otelcol_exporter_send_failed_spans_total" not in exposed_names()  # Jaeger: no _total
    assert "apollonia_counter_log_lines_total" not in exposed_names()  # item 1's old name
    assert "fluentbit_output_retries_total" in exposed_names()
    # Removed by elasticsearch_exporter v1.7.0; the pinned v1.9.0 has the node count instead.
    assert "elasticsearch_cluster_health_up" not in exposed_names()
    assert "elasticsearch_cluster_health_number_of_nodes" in exposed_names()
