"""The text tables of a benchmark-scale report (also reprinted from a saved report.json)."""

from __future__ import annotations

import re
from typing import Any


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:,.0f} ms" if v >= 0.01 else f"{v * 1000:.1f} ms"


def _pct(v: float) -> str:
    return f"{v * 100:.1f}%"


def _table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def groups_table(run: dict[str, Any]) -> str:
    rows = []
    for g in run["groups"]:
        rows.append([g["group"], f"{g['interval']:.0f}s", _ms(g["median"]), _ms(g["max"]),
                     _pct(g["median"] / g["interval"]), _ms(g["median_10s"]),
                     _pct(g["median_10s"] / g["interval"])])
    return _table(["rule group", "interval", "median", "max", "of interval",
                   "at 10 s scrape", "of interval"], rows)


def queries_table(run: dict[str, Any]) -> str:
    rows = []
    seen: dict[tuple[str, str], int] = {}
    for q in run["queries"]:
        if q["range"] != "1h":
            continue
        n = seen[(q["dashboard"], q["panel"])] = seen.get((q["dashboard"], q["panel"]), 0) + 1
        day = next((x for x in run["queries"] if x["range"] == "24h"
                    and x["dashboard"] == q["dashboard"] and x["panel"] == q["panel"]
                    and _same(x, q)), None)
        name = q["panel"] + (f" #{n}" if n > 1 else "")
        rows.append([q["dashboard"], name, _ms(q["p50"]), _ms(q["p95"]),
                     _ms(day and day["p50"]), _ms(day and day["p95"]),
                     _ms(day and day.get("engine_p95")), str(q["series"])])
    return _table(["dashboard", "panel (query)", "1h p50", "1h p95", "24h p50", "24h p95",
                   "24h p95 in Prometheus", "series"], rows)


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same panel query at another range (only its windows differ)."""
    return _WINDOW.sub("[]", a["expr"]) == _WINDOW.sub("[]", b["expr"])


_WINDOW = re.compile(r"\[\d+s\]")


def side_table(run: dict[str, Any]) -> str:
    rows = []
    for s in run["side_by_side"]:
        speed = s["raw_p50"] / s["recorded_p50"] if s["recorded_p50"] else float("inf")
        if s["kind"] == "rule":
            raw, rec = s["raw_value"], s["recorded_value"]
            diff = abs(raw - rec) / abs(raw) if raw and rec is not None else None
            rows.append([s["what"], _ms(s["raw_p50"]), _ms(s["recorded_p50"]), f"{speed:,.0f}x",
                         f"{raw:.6g}" if raw is not None else "-",
                         f"{rec:.6g}" if rec is not None else "-",
                         "-" if diff is None else f"{diff:.2%}"])
        else:
            rows.append([s["what"], f"{_ms(s['raw_p50'])} (p95 {_ms(s['raw_p95'])})",
                         f"{_ms(s['recorded_p50'])} (p95 {_ms(s['recorded_p95'])})",
                         f"{speed:,.0f}x", "", "", ""])
    return _table(["raw vs recorded (time in Prometheus)", "raw p50", "recorded p50",
                   "faster", "raw value", "recorded value", "differ"], rows)


def render(report: dict[str, Any]) -> str:
    out = [f"benchmark-scale, started {report['started']}; before = {report['before']}'s "
           "rules and dashboards, after = the working tree's"]
    for run in report["runs"]:
        title = (f"{run['size'].upper()} {run['config']}: {run['api_series']:,} api series, "
                 f"{run['series']:,} in all")
        worst = max(run["groups"], key=lambda g: g["median_10s"] / g["interval"])
        day = [q for q in run["queries"] if q["range"] == "24h"]
        slowest = max(day, key=lambda q: q["p95"]) if day else None
        out += ["", "=" * len(title), title, "=" * len(title), "", groups_table(run), "",
                f"worst group at the 10 s scrape: {worst['group']} "
                f"{_pct(worst['median_10s'] / worst['interval'])} of its interval", "",
                queries_table(run)]
        if slowest:
            out += ["", f"slowest 24h query: {slowest['dashboard']} / {slowest['panel']} "
                        f"p95 {_ms(slowest['p95'])}"]
        if run["side_by_side"]:
            out += ["", side_table(run)]
    return "\n".join(out)
