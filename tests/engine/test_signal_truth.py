"""Signal truth at the pinned versions: every metric name a rule, dashboard panel or diagnosis
query reads has series on the engine's Prometheus, for every component that runs there for real
(the Prometheus family and the exporters from Debian's builds, PostgreSQL, Redis, RabbitMQ, the
workload). Names that only a stand-in would emit (cAdvisor, Grafana, Jaeger, Fluent Bit) are
listed in the output, not counted: the recorded expositions of the real programs
(tests/fixtures/) check those. Elasticsearch's names come from the real exporter (run against
the Elasticsearch stand-in) and are counted.
"""

from __future__ import annotations

import contextlib

from tests.engine.conftest import PROMETHEUS, Compose, wait_for
from tests.metrics_catalog import dangling, format_dangling, live_metric_names, repo_queries

STAND_IN_PREFIXES = ("container_", "cadvisor_", "machine_", "grafana_", "otelcol_", "jaeger_",
                     "fluentbit_", "apollonia_log_")


def test_every_name_the_bundle_reads_has_series(bundle: Compose) -> None:
    queries = repo_queries()
    problems: dict[str, list[str]] = {}

    def clean() -> bool:
        nonlocal problems
        problems = dangling(queries, live_metric_names(PROMETHEUS),
                            ignore_prefixes=STAND_IN_PREFIXES)
        return not problems

    with contextlib.suppress(AssertionError):
        wait_for("no dangling names", clean, timeout=90, interval=5)
    waved = dangling(queries, set(), ignore_prefixes=())
    listed = sorted(n for n in waved if n.startswith(STAND_IN_PREFIXES))
    print(f"\nnames only stand-ins emit on the engine (not counted): {', '.join(listed)}")
    assert not problems, format_dangling(problems)
