"""SLO dashboard: objectives, burn rates per alert window, remaining error budget.

Everything comes from the SLO recording rules in prometheus/rules/slo.yml, so the
dashboard and the burn-rate alerts read the same numbers:
- slo:objective:ratio{slo, service}                      the objective (0.999, 0.99)
- slo:sli_error:ratio_rate<window>{env, service, slo}    share of bad events
- slo:error_budget_remaining:ratio30d{env, service, slo} 1 = untouched, 0 = spent
Burn rate = bad-event ratio / (1 - objective); 1 spends the budget in exactly 30 days.
The windows and their burn-rate factors come from the spec, prometheus/slos.yml.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from dev.slo.spec import duration
from dev.slo.spec import load as load_slos

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

SEL = 'env="$env", service="$service", slo="$slo"'
OBJ = 'service="$service", slo="$slo"'


def burn_rate(window: str) -> str:
    return (
        f"slo:sli_error:ratio_rate{window}{{{SEL}}}"
        f" / on (slo, service) group_left () (1 - slo:objective:ratio{{{OBJ}}})"
    )


def _explainer(pairs: list) -> str:  # noqa: ANN001 - dev.slo.spec.Pair
    def tier(name: str) -> str:
        return " or ".join(f"**{p.factor:g}×** over {duration(p.long)} (and {duration(p.short)})"
                           for p in pairs if p.tier == name)

    return (
        "**Burn rate** = share of bad events / (1 − objective). At 1 the error budget lasts "
        "exactly the 30-day period. The alerts page at " + tier("page") + ", and open a "
        "ticket at " + tier("ticket") + "; the alert's `window` label names the pair. "
        "Windows and factors: `prometheus/slos.yml`. Runbook: `docs/runbook.md`.")


def _number(v: float) -> float | int:
    """1.0 -> 1, so the JSON keeps integer thresholds integers."""
    return int(v) if v == int(v) else v


def slo() -> db.Dashboard:
    spec = load_slos()
    pairs = list(spec.pairs)
    # The long window of each pair and the factor that pages or tickets over it.
    windows = [(duration(p.long), p.factor) for p in pairs]
    page = _number(max(p.factor for p in pairs))
    slow_page = _number(min(p.factor for p in pairs if p.tier == "page"))
    lowest = _number(min(p.factor for p in pairs))
    dash = new_dashboard(
        "apollonia-slo",
        "Apollonia SLOs",
        "Are we keeping our promises? Each service's objectives (prometheus/slos.yml), burn "
        "rates over the alerting windows and the error budget left in 30 days.",
        ["slo"],
        [
            datasource_var("datasource", "Data source", "prometheus", PROMETHEUS_UID,
                           "Prometheus"),
            env_var(),
            query_var(
                "service", "Service", "label_values(slo:objective:ratio, service)",
                description="The service whose SLOs are shown (prometheus/slos.yml).",
            ),
            query_var(
                "slo", "SLO", 'label_values(slo:objective:ratio{service="$service"}, slo)',
                description="; ".join(f"{o.service} {o.name}: {o.description}"
                                      for o in spec.slos),
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
            f"Good events ({windows[0][0]})",
            f"Share of good events over the last {windows[0][0]}: "
            f"1 - slo:sli_error:ratio_rate{windows[0][0]}.",
            "percentunit", [Q(f"1 - slo:sli_error:ratio_rate{windows[0][0]}{{{SEL}}}")],
            decimals=3))
        .with_panel(stat_panel(
            "Error budget remaining (30d)",
            "Share of the 30-day error budget still unspent "
            "(slo:error_budget_remaining:ratio30d); negative means the objective is missed.",
            "percentunit", [Q(f"slo:error_budget_remaining:ratio30d{{{SEL}}}")],
            thresholds=((None, "red"), (0.25, "orange"), (0.5, "green")), decimals=1))
        .with_panel(stat_panel(
            f"Burn rate ({windows[0][0]})",
            f"Budget burn rate over the last {windows[0][0]}; above {windows[0][1]:g} the "
            "fast-burn alert pages.",
            "short", [Q(burn_rate(windows[0][0]))],
            thresholds=((None, "green"), (lowest, "orange"), (page, "red")), decimals=2))
        .with_panel(text_panel(
            "How to read burn rates",
            "What a burn rate is and which thresholds the SLO alerts use.",
            _explainer(pairs), height=3))
        .with_row(db.Row("Burn rates"))
        .with_panel(ts(
            "Burn rate by window",
            f"Burn rate over the {len(windows)} long alert windows; dashed lines mark the "
            f"lowest alerting factor ({lowest:g}) and the fast paging factor ({page:g}).",
            "short",
            [Q(burn_rate(w), f"{w} (alerts at {f:g}x)") for w, f in windows],
            thresholds=((None, "green"), (lowest, "orange"), (page, "red"))))
        .with_panel(bargauge_panel(
            "Burn rate now",
            "Current burn rate per window, short windows included ("
            + ", ".join(duration(p.short) for p in pairs)
            + " confirm the long windows before an alert fires).",
            "short",
            [Q(burn_rate(duration(w)), duration(w), instant=True) for w in spec.windows()],
            thresholds=((None, "green"), (lowest, "orange"), (slow_page, "red"))))
        .with_panel(ts(
            "Bad-event ratio by window",
            "Share of bad events (slo:sli_error:ratio_rate<window>) over the short window "
            "of the fast page and the long windows of both pages; the dashed line is the "
            "error budget, 1 - objective.",
            "percentunit",
            [
                *[Q(f"slo:sli_error:ratio_rate{w}{{{SEL}}}", w)
                  for w in dict.fromkeys([duration(pairs[0].short), duration(pairs[0].long),
                                          duration(pairs[1].long)])],
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
