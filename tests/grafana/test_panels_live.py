"""Dashboard panels return data on a running stack, with the load generator running.

--backend=native: every panel query whose metrics come from components the native run
starts; panels needing cAdvisor, Fluent Bit, Elasticsearch or Jaeger are listed, not
checked. --backend=compose (make smoke): every Prometheus panel query.
"""

from __future__ import annotations

import pytest

from tests.grafana.live_panels import plan, run, summary

# Last in the live session: the alerting scenario stops the analyzer for a while, and
# every panel should find its data (the analyzer is back by then; see tests/conftest.py).
pytestmark = [pytest.mark.native, pytest.mark.live_last]

# Rates need two samples inside their window and the 1h/30d recording rules one
# evaluation: on a freshly started run that takes up to ~2 analyzer scrapes (30s).
WAIT_SECONDS = 150


def test_plan_substitutes_every_variable() -> None:
    native = plan("native")
    queries = [q for c in native.values() for q in c.queries]
    assert len(queries) > 40
    assert not [q for q in queries if "$" in q]
    assert any(c.needs and not c.checked for c in native.values())
    compose = plan("compose")
    assert sum(c.checked for c in compose.values()) > sum(c.checked for c in native.values())


def test_panels_return_data(stack, backend, probe) -> None:  # noqa: ANN001 (fixtures)
    probe.watch("prometheus", "api", "analyzer", "loadgen")
    panels = run(stack.prometheus, WAIT_SECONDS, env=backend)
    head, lines = summary(panels)
    probe.note("panel check", "\n".join(lines) + "\n" + head)
    empty = [line for line in lines if line.startswith("NO DATA")]
    assert not empty, head + "\n" + "\n".join(empty)
