"""SLO dashboard: objectives, burn rates per alert window, remaining error budget.

Everything comes from the SLO recording rules in prometheus/rules/slo.yml, so the
dashboard and the burn-rate alerts read the same numbers:
- slo:objective:ratio{slo, service}                      the objective (0.999, 0.99)
- slo:sli_error:ratio_rate<window>{env, service, slo}    share of bad events
- slo:error_budget_remaining:ratio30d{env, service, slo} 1 = untouched, 0 = spent
Burn rate = bad-event ratio / (1 - objective); 1 spends the budget in exactly 30 days.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from .common import (
    PROMETHEUS_UID,
    Q,
    bargauge_panel,
    datasource_var,
    env_var,
    new_dashboard,
    query_var,
    stat_panel,
    text_panel,
    ts,
)

SEL = 'env="$env", service="api", slo="$slo"'
OBJ = 'service="api", slo="$slo"'

# Alert windows (long one of each pair) and the burn-rate factor that pages or
# tickets over it for a 30-day objective (SRE workbook multiwindow table).
WINDOWS = (("1h", 14.4), ("6h", 6.0), ("1d", 3.0), ("3d", 1.0))


def burn_rate(window: str) -> str:
    return (
        f"slo:sli_error:ratio_rate{window}{{{SEL}}}"
        f" / on (slo, service) group_left () (1 - slo:objective:ratio{{{OBJ}}})"
    )


EXPLAINER = """\
**Burn rate** = share of bad events / (1 − objective). At 1 the error budget lasts exactly
the 30-day period. The alerts page at **14.4×** over 1h (and 5m) or **6×** over 6h (and 30m),
and open a ticket at **3×** over 1d (and 2h) or **1×** over 3d (and 6h).
Runbook: `docs/runbook.md`."""


def slo() -> db.Dashboard:
    dash = new_dashboard(
        "apollonia-slo",
        "Apollonia SLOs",
        "Are we keeping our promises? API availability and latency objectives, burn "
        "rates over the alerting windows and the error budget left in 30 days.",
        ["slo"],
        [
            datasource_var("datasource", "Data source", "prometheus", PROMETHEUS_UID,
                           "Prometheus"),
            env_var(),
            query_var(
                "slo", "SLO", "label_values(slo:objective:ratio, slo)",
                description="availability: requests not answered 5xx; latency: requests "
                "served under 0.5 s.",
            ),
        ],
        # Budgets move slowly: a day shows the trend, the alert windows up to 3d still
        # come from the recording rules whatever the range.
        time_from="now-24h",
    )
    dash = (
        dash.with_row(db.Row("Objective and budget"))
        .with_panel(stat_panel(
            "Objective",
            "Target share of good events over 30 days (slo:objective:ratio).",
            "percentunit", [Q(f"slo:objective:ratio{{{OBJ}}}")], decimals=2))
        .with_panel(stat_panel(
            "Good events (1h)",
            "Share of good events over the last hour: 1 - slo:sli_error:ratio_rate1h.",
            "percentunit", [Q(f"1 - slo:sli_error:ratio_rate1h{{{SEL}}}")], decimals=3))
        .with_panel(stat_panel(
            "Error budget remaining (30d)",
            "Share of the 30-day error budget still unspent "
            "(slo:error_budget_remaining:ratio30d); negative means the objective is missed.",
            "percentunit", [Q(f"slo:error_budget_remaining:ratio30d{{{SEL}}}")],
            thresholds=((None, "red"), (0.25, "orange"), (0.5, "green")), decimals=1))
        .with_panel(stat_panel(
            "Burn rate (1h)",
            "Budget burn rate over the last hour; above 14.4 the fast-burn alert pages.",
            "short", [Q(burn_rate("1h"))],
            thresholds=((None, "green"), (1, "orange"), (14.4, "red")), decimals=2))
        .with_panel(text_panel(
            "How to read burn rates",
            "What a burn rate is and which thresholds the SLO alerts use.",
            EXPLAINER, height=3))
        .with_row(db.Row("Burn rates"))
        .with_panel(ts(
            "Burn rate by window",
            "Burn rate over the four long alert windows; dashed lines mark the lowest "
            "alerting factor (1) and the paging factor (14.4).",
            "short",
            [Q(burn_rate(w), f"{w} (alerts at {f:g}x)") for w, f in WINDOWS],
            thresholds=((None, "green"), (1, "orange"), (14.4, "red"))))
        .with_panel(bargauge_panel(
            "Burn rate now",
            "Current burn rate per window, short windows included (5m, 30m, 2h confirm "
            "the long windows before an alert fires).",
            "short",
            [Q(burn_rate(w), w, instant=True)
             for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d")],
            thresholds=((None, "green"), (1, "orange"), (6, "red"))))
        .with_panel(ts(
            "Bad-event ratio by window",
            "Share of bad events (slo:sli_error:ratio_rate<window>); the dashed line is "
            "the error budget, 1 - objective.",
            "percentunit",
            [
                *[Q(f"slo:sli_error:ratio_rate{w}{{{SEL}}}", w) for w in ("5m", "1h", "6h")],
                Q(f"1 - slo:objective:ratio{{{OBJ}}}", "budget (1 - objective)"),
            ],
            min_val=0))
        .with_panel(ts(
            "Error budget remaining over time",
            "How the 30-day budget has been spent (slo:error_budget_remaining:ratio30d).",
            "percentunit",
            [Q(f"slo:error_budget_remaining:ratio30d{{{SEL}}}", "{{slo}}")],
            thresholds=((None, "red"), (0.25, "orange"), (0.5, "green"))))
    )
    return dash
