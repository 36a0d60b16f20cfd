"""Shared building blocks: data sources, variables, panel factories, rendering.

Every dashboard is built with grafana-foundation-sdk builders and rendered to the
bare classic dashboard JSON model that Grafana's file provisioning accepts (no
`{"dashboard": ...}` wrapper, no `__inputs`, not the v2 `elements` format).

Conventions enforced here (and checked again by tests/grafana/test_dashboard_rules.py):
- every panel has a title, a description and a unit;
- panels take their data source from a dashboard variable (`${datasource}`), never a
  hard-coded uid, so a reader can point a dashboard at another Prometheus;
- dashboards are read-only in Grafana (the JSON in git is the source of truth).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import (
    bargauge,
    gauge,
    logs,
    piechart,
    prometheus,
    stat,
    table,
    text,
    timeseries,
)
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import elasticsearch as es
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

# Fixed data source uids, provisioned in grafana/provisioning/datasources/datasources.yml.
PROMETHEUS_UID = "prometheus"
ELASTICSEARCH_UID = "elasticsearch"

# Dashboard variables holding the data source. The linter convention: a single data
# source variable is called `datasource`; with two, `<type>_datasource`.
PROM = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
LOGS = dm.DataSourceRef(type_val="elasticsearch", uid="${elasticsearch_datasource}")
PROM_IN_LOGS_DASHBOARD = dm.DataSourceRef(type_val="prometheus", uid="${prometheus_datasource}")

# Tag shared by every dashboard: the link bar at the top lists them all.
BUNDLE_TAG = "apollonia"

GRAFANA_BUILTIN = dm.DataSourceRef(type_val="grafana", uid="-- Grafana --")


@dataclass(frozen=True)
class Q:
    """One PromQL query of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False
    exemplar: bool = False
    # Per-query "Min step": Grafana then derives $__rate_interval from it instead of the
    # data source's 15s, so rates of a job scraped every 30s still span 4 samples.
    min_step: str = ""
    # Table panels ask for the table format: one row per series, labels as columns.
    table: bool = False


def _prom_target(q: Q, ds: dm.DataSourceRef) -> prometheus.Dataquery:
    target = prometheus.Dataquery().expr(q.expr).datasource(ds)
    if q.legend:
        target = target.legend_format(q.legend)
    target = target.instant() if q.instant else target.range()
    if q.exemplar:
        target = target.exemplar(True)
    if q.min_step:
        target = target.interval(q.min_step)
    if q.table:
        target = target.format(pm.PromQueryFormat.TABLE)
    return target


def _thresholds(steps: Sequence[tuple[float | None, str]]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


# Default thresholds: plain green (no implied good/bad) unless a panel says otherwise.
NEUTRAL = ((None, "green"),)


def _common(panel: Any, title: str, description: str, unit: str, ds: dm.DataSourceRef,
            queries: Sequence[Q], span: int, height: int) -> Any:
    panel = (
        panel.title(title)
        .description(description)
        .unit(unit)
        .datasource(ds)
        .span(span)
        .height(height)
    )
    for q in queries:
        panel = panel.with_target(_prom_target(q, ds))
    return panel


def ts(title: str, description: str, unit: str, queries: Sequence[Q], *,
       ds: dm.DataSourceRef = PROM, span: int = 12, height: int = 8,
       min_val: float | None = None, max_val: float | None = None,
       thresholds: Sequence[tuple[float | None, str]] | None = None,
       stacked: bool = False) -> timeseries.Panel:
    """Time series panel; `thresholds` are drawn as dashed lines."""
    panel = _common(timeseries.Panel(), title, description, unit, ds, queries, span, height)
    panel = panel.fill_opacity(10).line_width(1).legend(
        cb.VizLegendOptions()
        .display_mode(cm.LegendDisplayMode.LIST)
        .placement(cm.LegendPlacement.BOTTOM)
        .show_legend(True)
    )
    if min_val is not None:
        panel = panel.min(min_val)
    if max_val is not None:
        panel = panel.max(max_val)
    if thresholds:
        panel = panel.thresholds(_thresholds(thresholds)).thresholds_style(
            cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED)
        )
    if stacked:
        panel = panel.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    return panel


def stat_panel(title: str, description: str, unit: str, queries: Sequence[Q], *,
               ds: dm.DataSourceRef = PROM, span: int = 6, height: int = 4,
               thresholds: Sequence[tuple[float | None, str]] = NEUTRAL,
               decimals: int | None = None,
               mappings: dict[str, tuple[str, str]] | None = None) -> stat.Panel:
    """Single-value panel showing the last value; `mappings` maps a value to (text, color)."""
    panel = _common(stat.Panel(), title, description, unit, ds, queries, span, height)
    panel = (
        panel.graph_mode(cm.BigValueGraphMode.AREA)
        .color_mode(cm.BigValueColorMode.VALUE)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(_thresholds(thresholds))
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    if mappings:
        panel = panel.mappings([_value_map(mappings)])
    return panel


def _value_map(mappings: dict[str, tuple[str, str]]) -> dm.ValueMap:
    return dm.ValueMap(options={
        value: dm.ValueMappingResult(text=label, color=color, index=i)
        for i, (value, (label, color)) in enumerate(mappings.items())
    })


def gauge_panel(title: str, description: str, unit: str, queries: Sequence[Q], *,
                ds: dm.DataSourceRef = PROM, span: int = 6, height: int = 6,
                min_val: float = 0, max_val: float = 1,
                thresholds: Sequence[tuple[float | None, str]] = NEUTRAL) -> gauge.Panel:
    panel = _common(gauge.Panel(), title, description, unit, ds, queries, span, height)
    return (
        panel.min(min_val)
        .max(max_val)
        .thresholds(_thresholds(thresholds))
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def bargauge_panel(title: str, description: str, unit: str, queries: Sequence[Q], *,
                   ds: dm.DataSourceRef = PROM, span: int = 12, height: int = 8,
                   min_val: float | None = 0, max_val: float | None = None,
                   thresholds: Sequence[tuple[float | None, str]] = NEUTRAL) -> bargauge.Panel:
    panel = _common(bargauge.Panel(), title, description, unit, ds, queries, span, height)
    panel = (
        panel.display_mode(cm.BarGaugeDisplayMode.GRADIENT)
        .orientation(cm.VizOrientation.HORIZONTAL)
        .thresholds(_thresholds(thresholds))
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if min_val is not None:
        panel = panel.min(min_val)
    if max_val is not None:
        panel = panel.max(max_val)
    return panel


def pie_panel(title: str, description: str, unit: str, queries: Sequence[Q], *,
              ds: dm.DataSourceRef = PROM, span: int = 8, height: int = 8) -> piechart.Panel:
    panel = _common(piechart.Panel(), title, description, unit, ds, queries, span, height)
    return panel.reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))


def table_panel(title: str, description: str, unit: str, queries: Sequence[Q], *,
                ds: dm.DataSourceRef = PROM, span: int = 12, height: int = 8,
                mappings: dict[str, tuple[str, str]] | None = None) -> table.Panel:
    """Table of instant query results: one row per series, labels as columns; `mappings`
    apply to the Value column only."""
    rows = [Q(q.expr, q.legend, instant=True, min_step=q.min_step, table=True)
            for q in queries]
    panel = _common(table.Panel(), title, description, unit, ds, rows, span, height)
    panel = panel.with_transformation(
        dm.DataTransformerConfig(
            id_val="organize",
            options={"excludeByName": {"Time": True, "__name__": True}},
        )
    )
    if mappings:
        panel = panel.override_by_name(
            "Value", [dm.DynamicConfigValue(id_val="mappings", value=[_value_map(mappings)])]
        )
    return panel


def logs_panel(title: str, description: str, query: str, *, ds: dm.DataSourceRef = LOGS,
               span: int = 24, height: int = 10) -> logs.Panel:
    """Elasticsearch log lines (Lucene query); fields come from the data source settings.

    `queryType` is the query language (lucene | PPL | SQL), not the panel kind: the
    logs metric makes it a log query. No per-query timeField: Grafana ignores it and
    uses the data source's jsonData.timeField (@timestamp, datasources.yml).
    """
    target = (
        es.Dataquery()
        .query(query)
        .query_type("lucene")
        .metrics([es.Logs().id("1")])
        .bucket_aggs([])
        .datasource(ds)
    )
    return (
        logs.Panel()
        .title(title)
        .description(description)
        .unit("none")
        .datasource(ds)
        .span(span)
        .height(height)
        .with_target(target)
        .show_time(True)
        .wrap_log_message(True)
        .enable_log_details(True)
        .sort_order(cm.LogsSortOrder.DESCENDING)
    )


def text_panel(title: str, description: str, markdown: str, *, span: int = 24,
               height: int = 4) -> text.Panel:
    return (
        text.Panel()
        .title(title)
        .description(description)
        .unit("none")
        .span(span)
        .height(height)
        .mode("markdown")
        .content(markdown)
    )


# --- Variables --------------------------------------------------------------


def datasource_var(name: str, label: str, ds_type: str, default_uid: str,
                   default_name: str) -> db.DatasourceVariable:
    """Data source picker; its default is the provisioned data source of that type."""
    return (
        db.DatasourceVariable(name)
        .label(label)
        .type(ds_type)
        .current(dm.VariableOption(selected=True, text=default_name, value=default_uid))
    )


def query_var(name: str, label: str, query: str, *, ds: dm.DataSourceRef = PROM,
              multi: bool = False, include_all: bool = False,
              description: str = "") -> db.QueryVariable:
    """Variable filled from Prometheus label values; refreshed when the time range changes."""
    var = (
        db.QueryVariable(name)
        .label(label)
        .datasource(ds)
        .query(query)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(include_all)
    )
    if include_all:
        # `.*` rather than a pipe-joined list: the regex stays short with many values.
        var = var.all_value(".*")
    if description:
        var = var.description(description)
    return var


def env_var(ds: dm.DataSourceRef = PROM) -> db.QueryVariable:
    """Environment picker (label `env` from the target inventories); single value so
    ratios are never mixed across environments."""
    return query_var(
        "env", "Environment", "label_values(up, env)", ds=ds,
        description="Environment label set by the Prometheus target inventory "
        "(compose, native or staging).",
    )


# --- Dashboards ---------------------------------------------------------------


def new_dashboard(uid: str, title: str, description: str, tags: Sequence[str],
                  variables: Sequence[Builder[dm.VariableModel]],
                  time_from: str = "now-1h") -> db.Dashboard:
    """Dashboard skeleton with the bundle's defaults (read-only, last hour, 30s refresh)."""
    dash = (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([BUNDLE_TAG, *tags])
        .readonly()
        .time(time_from, "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .annotation(
            db.AnnotationQuery()
            .name("Annotations & Alerts")
            .datasource(GRAFANA_BUILTIN)
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
            .type("dashboard")
            .built_in(1)
        )
        .link(
            db.DashboardLink("Apollonia dashboards")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags([BUNDLE_TAG])
            .as_dropdown(True)
            .include_vars(False)
            .keep_time(True)
            .target_blank(False)
        )
    )
    for var in variables:
        dash = dash.with_variable(var)
    return dash


def render(dash: db.Dashboard) -> dict[str, Any]:
    """Build the dashboard and return its classic JSON model as plain data.

    Post-processing: stable panel ids (1..n in layout order) and query refIds (A, B, ...),
    which the SDK leaves to Grafana; Grafana would otherwise invent them on load.
    """
    model = json.loads(json.dumps(dash.build(), cls=JSONEncoder))
    next_id = 1
    for panel in _all_panels(model):
        panel["id"] = next_id
        next_id += 1
        for i, target in enumerate(panel.get("targets", [])):
            target["refId"] = chr(ord("A") + i)
    return model


def _all_panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in model.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def to_json(model: dict[str, Any]) -> str:
    """Canonical text form: sorted keys, 2-space indent, trailing newline (diff-friendly)."""
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
