"""Dashboard rules, after grafana/dashboard-linter's rule set, applied to the committed JSON.

Linter rule -> test here:
  (file provisioning)            test_bare_classic_model
  uneditable-dashboard           test_bare_classic_model (editable false)
  (uids/titles)                  test_uids_and_titles
  (allowed panel types)          test_panel_types
  panel-title-description        test_panel_title_description_unit
  panel-units                    test_panel_title_description_unit
  panel-no-targets               test_panels_have_targets
  template-datasource            test_datasource_variables
  panel-datasource               test_panel_datasource_is_a_variable
  (provisioned uids)             test_datasource_uids_are_provisioned
  target-promql                  test_promql_parses
  template-label-promql          test_promql_parses (variable queries)
  target-rate-interval           test_rate_uses_rate_interval
  target-counter-agg             test_counters_are_rated
  template-job/instance          test_job_instance_variables
  target-job/instance            test_job_instance_matchers
  template-on-time-change-reload test_variables_reload_on_time_change
  (no dangling metric)           test_metrics_are_emitted
"""

from __future__ import annotations

import re
from typing import Any

import promql_parser
import pytest

from grafana.codegen import DASHBOARDS
from tests.grafana import components
from tests.grafana.model import (
    DASHBOARD_DIR,
    all_targets,
    dashboard_files,
    load,
    panels,
    provisioned_datasources,
    seconds,
    variables,
)
from tests.metrics_catalog import QueryError, grafana_to_promql, metric_names, recorded_names

ALLOWED_PANEL_TYPES = {"timeseries", "stat", "gauge", "piechart", "table", "bargauge", "logs",
                       "text"}
UID = re.compile(r"^[A-Za-z0-9_-]{8,40}$")
VAR_REF = re.compile(r"^\$\{(\w+)\}$|^\$(\w+)$")
# Stand-in for $__rate_interval: a duration no panel would spell out by hand.
RATE_MAGIC = "7777s"

FILES = dashboard_files()
IDS = [p.parent.name + "/" + p.name for p in FILES]


def test_every_registered_dashboard_is_committed() -> None:
    assert len(FILES) == len(DASHBOARDS) >= 6, [p.name for p in FILES]


@pytest.fixture(params=FILES, ids=IDS)
def dash(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


def test_bare_classic_model(dash: dict[str, Any]) -> None:
    """What Grafana's file provisioning accepts: no wrapper, no __inputs, not v2, read-only."""
    for key in ("uid", "title", "schemaVersion", "panels"):
        assert dash.get(key), f"missing {key}"
    for key in ("dashboard", "__inputs", "__requires", "elements", "layout"):
        assert key not in dash, f"{key} makes file provisioning reject or misread the dashboard"
    assert dash["editable"] is False
    assert isinstance(dash.get("annotations", {}).get("list"), list)


def test_uids_and_titles() -> None:
    models = [load(p) for p in FILES]
    uids = [m["uid"] for m in models]
    titles = [m["title"] for m in models]
    assert all(UID.match(u) for u in uids), uids
    assert len(set(uids)) == len(uids), uids
    assert len(set(titles)) == len(titles), titles
    for path, model in zip(FILES, models, strict=True):
        assert path.stem == model["uid"], f"{path}: file name must be the uid"


def test_panel_types(dash: dict[str, Any]) -> None:
    bad = {(p["title"], p["type"]) for p in panels(dash) if p["type"] not in ALLOWED_PANEL_TYPES}
    assert not bad


def test_panel_title_description_unit(dash: dict[str, Any]) -> None:
    problems = []
    for p in panels(dash):
        for field in ("title", "description"):
            if not str(p.get(field, "")).strip():
                problems.append(f"panel {p.get('id')} has no {field}")
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if not unit:
            problems.append(f"panel {p.get('title')!r} has no unit")
    titles = [p["title"] for p in panels(dash)]
    dupes = {t for t in titles if titles.count(t) > 1}
    if dupes:
        problems.append(f"duplicate panel titles {dupes}")
    assert not problems, problems


def test_panels_have_targets(dash: dict[str, Any]) -> None:
    empty = [p["title"] for p in panels(dash) if p["type"] != "text" and not p.get("targets")]
    assert not empty


def _ds_vars(dash: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in variables(dash) if v["type"] == "datasource"}


def test_datasource_variables(dash: dict[str, Any]) -> None:
    ds_vars = _ds_vars(dash)
    assert ds_vars, "no data source variable"
    provisioned = {d["uid"]: d["type"] for d in provisioned_datasources()}
    for name, var in ds_vars.items():
        ds_type = var["query"]
        if len(ds_vars) == 1:
            assert (name, var["label"]) == ("datasource", "Data source")
        else:
            assert name == f"{ds_type}_datasource"
            assert var["label"] == f"{ds_type.capitalize()} data source"
        default = var.get("current", {}).get("value")
        assert provisioned.get(default) == ds_type, (
            f"variable {name}: default {default!r} is not a provisioned {ds_type} data source"
        )


def test_panel_datasource_is_a_variable(dash: dict[str, Any]) -> None:
    ds_vars = _ds_vars(dash)
    problems = []
    for p in panels(dash):
        refs = [p.get("datasource")] + [t.get("datasource") for t in p.get("targets", [])]
        for ref in refs:
            if p["type"] == "text" and ref is None:
                continue
            m = VAR_REF.match((ref or {}).get("uid", ""))
            name = m and (m.group(1) or m.group(2))
            if not name or name not in ds_vars:
                problems.append(f"{p['title']}: data source {ref} is not a data source variable")
            elif ds_vars[name]["query"] != ref.get("type"):
                problems.append(f"{p['title']}: {ref} type differs from variable {name}")
    for v in variables(dash):
        if v["type"] == "query":
            uid = v.get("datasource", {}).get("uid", "")
            if not VAR_REF.match(uid):
                problems.append(f"variable {v['name']}: data source {uid!r} is hard-coded")
    assert not problems, problems


def _datasource_uids(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        ds = node.get("datasource")
        if isinstance(ds, dict) and "uid" in ds:
            out.add(ds["uid"])
        for value in node.values():
            _datasource_uids(value, out)
    elif isinstance(node, list):
        for value in node:
            _datasource_uids(value, out)
    return out


def test_datasource_uids_are_provisioned(dash: dict[str, Any]) -> None:
    provisioned = {d["uid"] for d in provisioned_datasources()}
    used = _datasource_uids(dash, set())
    used |= {v["current"]["value"] for v in _ds_vars(dash).values()}
    literal = {u for u in used if not VAR_REF.match(u)} - {"-- Grafana --"}
    assert literal <= provisioned, literal - provisioned
    assert used, "no data source referenced at all"


PROM_TARGETS = [t for t in all_targets() if t.ds_type == "prometheus"]
PROM_IDS = [f"{t.dashboard}:{t.panel}:{i}" for i, t in enumerate(PROM_TARGETS)]


def _variable_queries() -> list[tuple[str, str]]:
    out = []
    for path in FILES:
        for v in variables(load(path)):
            if v["type"] == "query":
                out.append((f"{path.name}: variable {v['name']}", v["query"]))
    return out


def test_promql_parses() -> None:
    problems = []
    for t in PROM_TARGETS:
        try:
            metric_names(t.expr)
        except QueryError as exc:
            problems.append(f"{t.where}: {exc}")
    for where, query in _variable_queries():
        m = re.match(r"^label_values\((.*),\s*(\w+)\)$", query)
        if not m:
            problems.append(f"{where}: expected label_values(<selector>, <label>): {query!r}")
            continue
        try:
            metric_names(m.group(1))
        except QueryError as exc:
            problems.append(f"{where}: {exc}")
    assert len(PROM_TARGETS) > 50
    assert not problems, "\n".join(problems)


def _children(node: Any) -> list[Any]:
    if isinstance(node, promql_parser.AggregateExpr):
        return [node.expr] + ([node.param] if node.param is not None else [])
    if isinstance(node, promql_parser.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, promql_parser.Call):
        return list(node.args)
    if isinstance(node, (promql_parser.ParenExpr, promql_parser.UnaryExpr,
                         promql_parser.SubqueryExpr)):
        return [node.expr]
    if isinstance(node, promql_parser.MatrixSelector):
        return [node.vector_selector]
    return []


def _walk(node: Any, parents: tuple[Any, ...] = ()) -> list[tuple[Any, tuple[Any, ...]]]:
    out = [(node, parents)]
    for child in _children(node):
        out += _walk(child, (*parents, node))
    return out


def _ast(expr: str) -> Any:
    return promql_parser.parse(grafana_to_promql(expr.replace("$__rate_interval", RATE_MAGIC)))


@pytest.mark.parametrize("target", PROM_TARGETS, ids=PROM_IDS)
def test_rate_uses_rate_interval(target: Any) -> None:
    """rate/irate/increase over raw series use $__rate_interval (recording rules carry
    their own window)."""
    for node, _ in _walk(_ast(target.expr)):
        if isinstance(node, promql_parser.Call) and node.func.name in ("rate", "irate",
                                                                        "increase"):
            rng = node.args[0].range.total_seconds()
            assert rng == seconds(RATE_MAGIC), (
                f"{target.where}: {node.func.name} window {rng}s, not $__rate_interval"
            )


@pytest.mark.parametrize("target", PROM_TARGETS, ids=PROM_IDS)
def test_counters_are_rated(target: Any) -> None:
    gauges = components.workload_gauges()
    for node, parents in _walk(_ast(target.expr)):
        if not isinstance(node, promql_parser.VectorSelector) or not node.name:
            continue
        if not node.name.endswith("_total") or node.name in gauges:
            continue
        ok = (len(parents) >= 2 and isinstance(parents[-1], promql_parser.MatrixSelector)
              and isinstance(parents[-2], promql_parser.Call)
              and parents[-2].func.name in ("rate", "irate", "increase"))
        assert ok, f"{target.where}: counter {node.name} used without rate/increase"


SPANNING = {f"{s.folder}/{s.build().build().uid}.json" for s in DASHBOARDS if s.spans_instances}


def test_job_instance_variables() -> None:
    assert SPANNING, "no dashboard declared as spanning instances"
    for rel in SPANNING:
        names = {v["name"] for v in variables(load(DASHBOARD_DIR / rel))}
        assert {"job", "instance"} <= names, f"{rel}: {names}"


def test_job_instance_matchers() -> None:
    """On dashboards spanning instances every raw selector filters by job and instance
    (ALERTS is exempt: alerts carry the labels of their rule, not of a scrape target)."""
    recorded = recorded_names() | {"ALERTS"}
    problems = []
    for t in PROM_TARGETS:
        if t.dashboard not in SPANNING:
            continue
        for node, _ in _walk(_ast(t.expr)):
            if isinstance(node, promql_parser.VectorSelector) and node.name not in recorded:
                labels = {m.name for m in node.matchers.matchers}
                if not {"job", "instance"} <= labels:
                    problems.append(f"{t.where}: {node.name} lacks job/instance matchers")
    assert not problems, problems


def test_variables_reload_on_time_change(dash: dict[str, Any]) -> None:
    for v in variables(dash):
        if v["type"] == "query":
            assert v.get("refresh") == 2, f"variable {v['name']}"


def test_metrics_are_emitted() -> None:
    """Every metric a dashboard reads is emitted by some component (or a recording rule)."""
    problems = []
    queries = [(t.where, t.expr) for t in PROM_TARGETS] + [
        (where, re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", q))
        for where, q in _variable_queries()
    ]
    for where, expr in queries:
        for name in metric_names(expr):
            if not components.components_of(name):
                problems.append(f"{where}: {name} is emitted by nothing in the stack")
    assert not problems, "\n".join(problems)


def test_analyzer_rates_span_four_scrapes() -> None:
    """The analyzer is scraped every 30s: its rate queries set a 30s min step so that
    $__rate_interval (4 x min step) covers four scrapes."""
    problems = []
    for t in PROM_TARGETS:
        if "$__rate_interval" not in t.expr:
            continue
        comps = set().union(*(components.components_of(n) for n in metric_names(t.expr)))
        if "analyzer" in comps and (not t.min_step or seconds(t.min_step) < 30):
            problems.append(t.where)
    assert not problems, problems


def test_layout_fits_and_does_not_overlap(dash: dict[str, Any]) -> None:
    """Panels stay inside the 24-column grid and no two panels (rows included) overlap."""
    boxes = [(p.get("title", ""), p["gridPos"]) for p in dash["panels"]]
    cells: dict[tuple[int, int], str] = {}
    for title, g in boxes:
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, (title, g)
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{title!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = title


# Grafana's Elasticsearch query model (public/app/plugins/datasource/elasticsearch,
# dataquery.gen.ts): queryType is the query language; the logs panel kind comes from
# the `logs` metric. The per-query timeField is not read: the data source's is.
ES_QUERY_LANGUAGES = {"lucene", "PPL", "SQL"}


def test_elasticsearch_targets_use_a_query_language(dash: dict[str, Any]) -> None:
    found = 0
    for panel in panels(dash):
        for target in panel.get("targets") or []:
            if (target.get("datasource") or {}).get("type") != "elasticsearch":
                continue
            found += 1
            where = f"{dash['uid']} / {panel.get('title')}"
            assert target.get("queryType") in ES_QUERY_LANGUAGES, where
            assert "timeField" not in target, f"{where}: per-query timeField is ignored"
    if dash["uid"] == "apollonia-overview":
        assert found, "the overview's error-log panel has no Elasticsearch target"
