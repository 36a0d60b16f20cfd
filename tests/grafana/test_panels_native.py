"""Every panel query whose metrics come from components the native run starts returns data
there, with the load generator running. Panels needing other components (cAdvisor, Fluent
Bit, Elasticsearch, Jaeger) are listed, not checked: they need the compose stack.
"""

from __future__ import annotations

import pytest

from tests.grafana.native_panels import plan, run, summary

pytestmark = pytest.mark.native

# Rates need two samples inside their window and the 1h/30d recording rules one
# evaluation: on a freshly started run that takes up to ~2 analyzer scrapes (30s).
WAIT_SECONDS = 150


def test_plan_substitutes_every_variable() -> None:
    panels = plan()
    queries = [q for c in panels.values() for q in c.queries]
    assert len(queries) > 40
    assert not [q for q in queries if "$" in q]
    assert any(c.needs and not c.checked for c in panels.values())


def test_native_panels_return_data(stack, probe) -> None:  # noqa: ANN001 (conftest fixtures)
    probe.watch("prometheus", "api", "analyzer", "loadgen")
    panels = run(stack.prometheus, WAIT_SECONDS)
    head, lines = summary(panels)
    probe.note("panel check", "\n".join(lines) + "\n" + head)
    empty = [line for line in lines if line.startswith("NO DATA")]
    assert not empty, head + "\n" + "\n".join(empty)
