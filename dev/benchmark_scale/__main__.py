"""make benchmark-scale: rule and dashboard cost on a backfilled TSDB, before and after.

    python -m dev.benchmark_scale [--sizes small,large] [--workdir DIR] [--before REF]
    python -m dev.benchmark_scale --report DIR/report.json     # print a saved run again

For each size (SMALL ~1,000 api series: 2 instances x 25 routes; LARGE ~20,000: 40 x 25,
plus two analyzers and every other series the workload exports, dev/benchmark_scale/
workload.py):

1. three days of history at 60 s resolution, written as OpenMetrics and backfilled with
   `promtool tsdb create-blocks-from openmetrics` (6-hour blocks);
2. history for the recorded series: the SLO 5-minute rates with `promtool tsdb
   create-blocks-from rules` (the real rules, evaluated every 60 s over the 3 days), every
   other recorded series the dashboards read synthesised for the last 25 hours with the
   labels the rules produce (their values do not change what a query costs);
3. for the rules of REF (default: main) and of the working tree in turn: Prometheus
   (.tools/bin) on a copy of that TSDB, scraping the same synthetic fleet live every 10 s,
   evaluating every 15 s. After 5 minutes (the 5-minute windows then hold real 10 s data)
   it records every rule group's evaluation time for 8 evaluations, then runs every
   dashboard query of that tree over the last 1 h and 24 h (1 warm-up + 5 timed runs; Grafana's
   step and $__rate_interval for a 1000 px panel and the data's 60 s resolution);
4. with the working tree's rules, side by side: the SLO windows computed from raw samples
   and from the recorded 5-minute rates, and the latency panels raw and recorded (time
   and value).

Generated data lives under the work directory (default .run/benchmark-scale, git-ignored);
run it inside your network namespace: it binds two loopback ports. Heavy: LARGE takes about
40 minutes on 2 cores; prefix with `nice -n 10`.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "workload"))

from dev.benchmark_scale import panels, workload  # noqa: E402
from dev.benchmark_scale.report import render  # noqa: E402
from dev.slo.spec import load as load_slos  # noqa: E402

PROMETHEUS = ROOT / ".tools/bin/prometheus"
PROMTOOL = ROOT / ".tools/bin/promtool"
HISTORY = 3 * 86400
RESOLUTION = 60  # s, backfilled history
SCRAPE = 10  # s, live: the api's real scrape interval
EVALUATION = 15  # s, as prometheus/prometheus.yml
WARMUP = 5 * 60 + 20  # the 5-minute windows hold only live 10 s samples
SAMPLES = 8  # rule-group evaluations recorded
RUNS = 5  # timed runs per query (plus one warm-up); p95 of 5 = the slowest
CHUNK = 6 * 3600  # backfill block size (Prometheus is told not to compact them)
RANGES = {"1h": 3600, "24h": 86400}


@dataclass
class Run:
    size: str
    config: str  # before | after
    series: int
    api_series: int
    groups: list[dict[str, Any]] = field(default_factory=list)
    queries: list[dict[str, Any]] = field(default_factory=list)
    side_by_side: list[dict[str, Any]] = field(default_factory=list)


# --- processes ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Exporter:
    """The synthetic fleet's /metrics at the current time (one target, honor_labels)."""

    def __init__(self, series: list[workload.Series]) -> None:
        self.series = series
        self.port = _free_port()
        fleet = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                body = workload.exposition(fleet.series, time.time()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


class Prometheus:
    def __init__(self, data: Path, rules: Path, exporter: Exporter, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = data.parent / f"{data.name}.prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": f"{SCRAPE}s", "evaluation_interval": f"{EVALUATION}s",
                       "scrape_timeout": "8s"},
            "rule_files": [str(rules / "*.yml")],
            "scrape_configs": [{"job_name": "synthetic-fleet", "honor_labels": True,
                                "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}]}],
        }))
        self.client = httpx.Client(timeout=600)
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={data}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=90d",
             # the backfilled 6h blocks stay as they are: no compaction during the run
             "--storage.tsdb.max-block-duration=6h", "--query.max-samples=500000000"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 600
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"benchmark-scale: Prometheus exited, see {log}")
            time.sleep(1)
        raise SystemExit(f"benchmark-scale: Prometheus not ready after 10 minutes, see {log}")

    def query(self, expr: str, **params: Any) -> tuple[float, float, Any]:
        """(seconds on the clock, seconds Prometheus reports for the query, result) of one
        query; a range query when `step` is given."""
        path = "query_range" if "step" in params else "query"
        started = time.perf_counter()
        resp = self.client.post(f"{self.url}/api/v1/{path}",
                                data={"query": expr, "stats": "all", **params})
        took = time.perf_counter() - started
        body = resp.json()
        if body.get("status") != "success":
            raise RuntimeError(f"{expr}: {body.get('error')}")
        engine = body["data"].get("stats", {}).get("timings", {}).get("execTotalTime", took)
        return took, float(engine), body["data"]["result"]

    def metric(self, expr: str) -> float:
        _, _, result = self.query(expr)
        return float(result[0]["value"][1]) if result else 0.0

    def settle(self) -> None:
        """Wait until the TSDB has merged the overlapping backfilled blocks (the compaction
        loop runs every minute): the block count unchanged over two of its cycles."""
        last, since = -1.0, time.time()
        while time.time() - since < 130:
            now = self.metric("prometheus_tsdb_blocks_loaded")
            if now != last:
                last, since = now, time.time()
            time.sleep(5)

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=120)
        self.log.close()


# --- history -----------------------------------------------------------------------------


def backfill(series: list[workload.Series], start: int, end: int, data: Path,
             scratch: Path) -> int:
    """Raw history, 60 s apart, in 6 h blocks; returns the number of samples."""
    data.mkdir(parents=True, exist_ok=True)
    total = 0
    for lo in range(start - start % CHUNK, end, CHUNK):
        times = [t for t in range(max(lo, start), min(lo + CHUNK, end + 1), RESOLUTION)]
        if not times:
            continue
        text = scratch / "chunk.om"
        with text.open("w") as out:
            total += workload.openmetrics(series, [float(t) for t in times], out)
        _promtool("tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=6h",
                  str(text), str(data))
        text.unlink()
    return total


def _promtool(*args: str) -> None:
    proc = subprocess.run([str(PROMTOOL), *args], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"benchmark-scale: promtool {args[:3]} failed: {proc.stderr[-500:]}")


def _recording_rules(rules_dir: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(rules_dir.glob("*.yml")):
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            out += [r for r in group.get("rules", []) if "record" in r]
    return out


def recorded_history(prom: Prometheus, rules_dir: Path, start: int, end: int, data: Path,
                     scratch: Path) -> None:
    """Blocks for the recorded series the rules and dashboards read over time."""
    rules = _recording_rules(rules_dir)
    rate5m = [r for r in rules if r["record"] in ("slo:sli_requests:rate5m",
                                                   "slo:sli_errors:rate5m")]
    # The SLO 5-minute rates, from the real rules (requests before errors: errors fall back
    # on requests; both read raw series only otherwise).
    imported = scratch / "imported"
    for rule in sorted(rate5m, key=lambda r: r["record"] != "slo:sli_requests:rate5m"):
        spec = scratch / "import-rules.yml"
        spec.write_text(yaml.safe_dump({"groups": [{"name": "import",
                                                    "interval": f"{RESOLUTION}s",
                                                    "rules": [rule]}]}))
        _promtool("tsdb", "create-blocks-from", "rules", f"--url={prom.url}",
                  f"--start={start}", f"--end={end}", f"--output-dir={imported}",
                  "--max-block-duration=6h", str(spec))
    # Every other recorded series: its current label sets and values, held for 25 hours.
    times = [float(t) for t in range(end - 25 * 3600, end + 1, RESOLUTION)]
    synthetic: list[workload.Series] = []
    for name in sorted({r["record"] for r in rules} - {"slo:sli_requests:rate5m",
                                                        "slo:sli_errors:rate5m"}):
        _, _, result = prom.query(f'{{__name__="{name}"}}')
        for item in result:
            labels = tuple(sorted((k, v) for k, v in item["metric"].items() if k != "__name__"))
            value = float(item["value"][1])
            synthetic.append(workload.Series(name, labels, "gauge",
                                             value if math.isfinite(value) else 0.0))
    text = scratch / "recorded.om"
    with text.open("w") as out:
        workload.openmetrics(synthetic, times, out)
    _promtool("tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=6h",
              str(text), str(imported))
    text.unlink()
    for block in imported.iterdir():
        if block.is_dir():
            shutil.move(str(block), data / block.name)


# --- measurements ------------------------------------------------------------------------


def _ranges_read(expr: str) -> tuple[float, float]:
    """Longest range (s) over raw series and over recorded series in a rule expression."""
    raw = recorded = 0.0

    def walk(node: Any) -> None:
        nonlocal raw, recorded
        kind = type(node).__name__
        if kind == "MatrixSelector":
            name = node.vector_selector.name or ""
            window = node.range.total_seconds()
            if ":" in name:
                recorded = max(recorded, window)
            else:
                raw = max(raw, window)
            return
        for attr in ("lhs", "rhs", "expr", "param", "vector_selector"):
            child = getattr(node, attr, None)
            if child is not None and not isinstance(child, str | int | float):
                walk(child)
        for arg in getattr(node, "args", []) or []:
            walk(arg)

    walk(promql_parser.parse(expr))
    return raw, recorded


def at_10s(rule: dict[str, Any]) -> float:
    """The rule's evaluation time extrapolated to the api's 10 s scrape: raw windows over
    5 minutes hold 60 s history here (x 6 samples at 10 s); recorded windows over 5 minutes
    were recorded every 60 s in the history (x 4 at the 15 s evaluation). An upper bound:
    per-series costs do not grow with the samples."""
    raw, recorded = _ranges_read(rule["query"])
    factor = 6.0 if raw > 300 else 4.0 if recorded > 300 else 1.0
    return rule["evaluationTime"] * factor


def groups(prom: Prometheus) -> list[dict[str, Any]]:
    """Evaluation time of every group over SAMPLES evaluations (median and max)."""
    seen: dict[str, list[dict[str, Any]]] = {}
    for _ in range(SAMPLES):
        data = httpx.get(f"{prom.url}/api/v1/rules", timeout=60).json()["data"]["groups"]
        for g in data:
            seen.setdefault(g["name"], []).append(g)
        time.sleep(EVALUATION)
    out = []
    for name, snaps in seen.items():
        times = [s["evaluationTime"] for s in snaps]
        ext = [sum(at_10s(r) for r in s["rules"]) for s in snaps]
        out.append({"group": name, "interval": snaps[-1]["interval"],
                    "median": statistics.median(times), "max": max(times),
                    "median_10s": statistics.median(ext), "rules": len(snaps[-1]["rules"])})
    return sorted(out, key=lambda g: g["group"])


def _timed(prom: Prometheus, expr: str, **params: Any) -> dict[str, Any]:
    """p50 and p95 over RUNS runs (after one warm-up), on the clock (HTTP included, what
    Grafana waits) and as Prometheus reports it (execTotalTime: the query alone)."""
    prom.query(expr, **params)
    clock, engine, result = [], [], []
    for _ in range(RUNS):
        took, inside, result = prom.query(expr, **params)
        clock.append(took)
        engine.append(inside)
    clock.sort()
    engine.sort()
    rank = math.ceil(0.95 * RUNS) - 1
    return {"p50": statistics.median(clock), "p95": clock[rank],
            "engine_p50": statistics.median(engine), "engine_p95": engine[rank],
            "series": len(result), "result": result}


def dashboard_queries(prom: Prometheus, dashboards: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    now = time.time()
    for q in panels.queries(dashboards):
        for label, secs in RANGES.items():
            expr, step = panels.concrete(q, secs, RESOLUTION)
            end = math.floor(now / step) * step  # Grafana aligns the range to the step
            params = ({"time": end} if q.instant else
                      {"start": end - secs, "end": end, "step": step})
            m = _timed(prom, expr, **params)
            out.append({"dashboard": q.dashboard, "panel": q.panel, "range": label,
                        "expr": expr, **{k: v for k, v in m.items() if k != "result"}})
    return out


def _value(result: list[dict[str, Any]]) -> float | None:
    return float(result[0]["value"][1]) if result else None


def side_by_side(prom: Prometheus) -> list[dict[str, Any]]:
    """SLO windows raw vs recorded (instant, what a rule evaluation does) and latency
    panels raw vs recorded (range, what a dashboard does)."""
    out = []
    spec = load_slos()
    now = time.time()
    env = f'env="{workload.ENV}"'
    for slo in [s for s in spec.slos if s.service == "api"]:
        sel = f'{{{env}, service="{slo.service}", slo="{slo.name}"}}'
        for window in ("2h", "6h", "1d", "3d"):
            raw = f"({slo.errors(window)}) / ({slo.total(window)})"
            rec = (f"avg_over_time(slo:sli_errors:rate5m{sel}[{window}]) / "
                   f"avg_over_time(slo:sli_requests:rate5m{sel}[{window}])")
            a, b = _timed(prom, raw, time=now), _timed(prom, rec, time=now)
            out.append({"what": f"{slo.service} {slo.name} ratio over {window}", "kind": "rule",
                        "raw_p50": a["engine_p50"], "recorded_p50": b["engine_p50"],
                        "raw_value": _value(a["result"]), "recorded_value": _value(b["result"])})
    pairs = [
        ("api p95 by service",
         'histogram_quantile(0.95, sum by (service, le) (rate(http_request_duration_seconds_bucket'
         f'{{{env}, service=~".*"}}[$__rate_interval])))',
         f'service:http_request_duration_seconds:p95_rate5m{{{env}, service=~".*"}}'),
        ("api p95 by endpoint",
         'histogram_quantile(0.95, sum by (service, endpoint, le) (rate('
         f'http_request_duration_seconds_bucket{{{env}, service=~".*"}}[$__rate_interval])))',
         f'service_endpoint:http_request_duration_seconds:p95_rate5m{{{env}, service=~".*"}}'),
        ("median upload size by format",
         'histogram_quantile(0.5, sum by (format, le) (rate(media_upload_size_bytes_bucket'
         f'{{{env}}}[$__rate_interval])))',
         f'format:media_upload_size_bytes:p50_rate5m{{{env}}}'),
    ]
    for what, raw, rec in pairs:
        for label, secs in RANGES.items():
            q_raw = panels.Query("", what, raw, False, 0.0)
            expr, step = panels.concrete(q_raw, secs, RESOLUTION)
            end = math.floor(now / step) * step
            params = {"start": end - secs, "end": end, "step": step}
            a, b = _timed(prom, expr, **params), _timed(prom, rec, **params)
            out.append({"what": f"{what}, {label}", "kind": "panel",
                        "raw_p50": a["engine_p50"], "recorded_p50": b["engine_p50"],
                        "raw_p95": a["engine_p95"], "recorded_p95": b["engine_p95"]})
    return out


# --- orchestration -----------------------------------------------------------------------


def _tree_files(ref: str | None, folder: str) -> dict[str, str]:
    """folder's files at git ref (None: the working tree), relative path -> text."""
    if ref is None:
        base = ROOT / folder
        return {str(p.relative_to(base)): p.read_text() for p in sorted(base.rglob("*"))
                if p.is_file()}
    names = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "-r", "--name-only", ref,
                            folder + "/"], capture_output=True, text=True, check=True).stdout
    out = {}
    for name in names.split():
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:{name}"],
                              capture_output=True, text=True, check=True).stdout
        out[name[len(folder) + 1:]] = text
    return out


def _write_rules(ref: str | None, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for rel, text in _tree_files(ref, "prometheus/rules").items():
        if rel.endswith(".yml"):
            (target / rel).write_text(text)
    return target


def measure(size: str, workdir: Path, before: str) -> list[Run]:
    scale = workload.SCALES[size]
    series = workload.fleet(scale)
    base = workdir / size
    if base.exists():
        shutil.rmtree(base)
    scratch = base / "scratch"
    scratch.mkdir(parents=True)
    end = int(time.time()) // RESOLUTION * RESOLUTION
    start = end - HISTORY
    print(f"[{size}] {len(series)} series ({workload.api_series(series)} api): backfilling "
          f"{HISTORY // 86400} days at {RESOLUTION}s", flush=True)
    samples = backfill(series, start, end, base / "data", scratch)
    print(f"[{size}] {samples:,} samples backfilled", flush=True)
    exporter = Exporter(series)
    runs: list[Run] = []
    try:
        after_rules = _write_rules(None, base / "rules-after")
        prom = Prometheus(base / "data", after_rules, exporter, base / "prometheus-import.log")
        try:
            time.sleep(2 * EVALUATION)  # every recording rule has produced its series
            recorded_history(prom, after_rules, start, end, base / "data", scratch)
        finally:
            prom.close()
        # Once more without rules, to merge the overlapping blocks before the measured runs.
        empty = base / "rules-none"
        empty.mkdir()
        prom = Prometheus(base / "data", empty, exporter, base / "prometheus-compact.log")
        try:
            prom.settle()
        finally:
            prom.close()
        print(f"[{size}] recorded history written and compacted", flush=True)
        for config, ref in (("before", before), ("after", None)):
            data = base / f"data-{config}"
            shutil.copytree(base / "data", data, ignore=shutil.ignore_patterns("wal", "chunks_head",
                                                                               "lock"))
            rules = after_rules if ref is None else _write_rules(ref, base / f"rules-{config}")
            prom = Prometheus(data, rules, exporter, base / f"prometheus-{config}.log")
            try:
                print(f"[{size}] {config}: warming up {WARMUP}s", flush=True)
                time.sleep(WARMUP)
                run = Run(size, config, len(series), workload.api_series(series))
                run.groups = groups(prom)
                run.queries = dashboard_queries(prom, _tree_files(ref, "grafana/dashboards"))
                if config == "after":
                    run.side_by_side = side_by_side(prom)
                runs.append(run)
            finally:
                prom.close()
            shutil.rmtree(data)
            print(f"[{size}] {config}: measured", flush=True)
    finally:
        exporter.close()
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.benchmark_scale",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="small,large")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".run/benchmark-scale")
    parser.add_argument("--before", default="main", help="git ref whose rules and dashboards "
                        "are 'before' (default: main)")
    parser.add_argument("--report", type=Path, help="print the tables of a saved report.json")
    args = parser.parse_args(argv)
    if args.report:
        print(render(json.loads(args.report.read_text())))
        return 0
    for tool in (PROMETHEUS, PROMTOOL):
        if not tool.exists():
            raise SystemExit(f"benchmark-scale: {tool.relative_to(ROOT)} missing (make bootstrap)")
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in workload.SCALES]
    if unknown:
        raise SystemExit(f"benchmark-scale: unknown size {unknown[0]!r} (small, large)")
    args.workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "before": args.before, "runs": []}
    for size in sizes:
        for run in measure(size, args.workdir, args.before):
            report["runs"].append(asdict(run))
            (args.workdir / "report.json").write_text(json.dumps(report, indent=1))
    print(render(report))
    print(f"\nsaved: {args.workdir / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
