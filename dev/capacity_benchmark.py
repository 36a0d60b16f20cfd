"""Capacity benchmark: how much one Prometheus with the bundle's rules ingests before its rule
evaluation lags, alone and with the scale profile's remote write to VictoriaMetrics.

    python -m dev.capacity_benchmark [--units 40,80,160,...] [--hold 120] [--variant both]
    (make benchmark-capacity; prefix with `nice -n 10` on a shared machine)

It runs its own processes on spare loopback ports, state in a temporary directory:
  * a target server: the real workload's /metrics pages (api and analyzer, captured from the
    real processes after a few seconds of load generator traffic) served as many instances,
    counters increasing every second, so every recording and alerting rule of
    prometheus/rules/ has real series to work on;
  * Prometheus (.tools/bin) with the bundle's prometheus.yml, scrape-configs.yml and rules;
    the inventory lists N api and N analyzer instances (one "unit" = one of each, scraped at
    the jobs' own intervals, 10s and 30s);
  * variant `remote-write`: prometheus-ha.yml instead, writing to a single-node
    victoria-metrics with the native scale profile's flags (dedup, relabel).

For each step it adds units, lets the new series settle, then measures over `--hold` seconds:
ingested samples/s, active series, the slowest rule group's evaluation time against its 15s
interval, missed rule iterations, scrape lateness, Prometheus' CPU and memory (and for
remote write, how far the sent timestamp trails). A step "lags" when a rule group takes longer
than its interval, an iteration is missed, scrapes run late, or remote write falls behind.
The figure is the last step that did not lag. A measurement tool: it asserts nothing.
"""

from __future__ import annotations

import argparse
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from native import scale  # noqa: E402
from native.stack import PYTHON, TOOLS  # noqa: E402

HOST = "127.0.0.1"
EVAL_INTERVAL = 15.0
# Memory guard for a shared machine: stop ramping when Prometheus grows past this.
RSS_LIMIT = 6 * 1024**3
COUNTER = re.compile(r"(_total|_count|_sum|_bucket)(\{|$)")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"capacity_benchmark: {url} did not answer within {timeout:.0f}s")


# --- the targets: the workload's real pages, many instances --------------------------------


def capture_pages(work: Path) -> dict[str, list[str]]:
    """/metrics of the real api and analyzer after a few seconds of load generator traffic."""
    api, analyzer = free_port(), free_port()
    procs = [
        subprocess.Popen([str(PYTHON), "-m", "apollonia", "analyzer", "--host", HOST,
                          "--port", str(analyzer)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL),
        subprocess.Popen([str(PYTHON), "-m", "apollonia", "api", "--host", HOST, "--port",
                          str(api), "--analyzer-url", f"http://{HOST}:{analyzer}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        wait_http(f"http://{HOST}:{api}/health/ready")
        wait_http(f"http://{HOST}:{analyzer}/health/ready")
        subprocess.run([str(PYTHON), "-m", "apollonia", "loadgen", "--api-url",
                        f"http://{HOST}:{api}", "--duration", "20"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        pages = {}
        for name, port in (("api", api), ("analyzer", analyzer)):
            text = httpx.get(f"http://{HOST}:{port}/metrics", timeout=10).text
            pages[name] = [line for line in text.splitlines() if line and line[0] != "#"]
        return pages
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


class TargetServer:
    """Serves /<kind>/<i> for any i: the captured page, counters growing by 1/s."""

    def __init__(self, pages: dict[str, list[str]]) -> None:
        self.lines = {kind: [(series, float(value), bool(COUNTER.search(series)))
                             for series, _, value in (ln.rpartition(" ") for ln in lines)]
                      for kind, lines in pages.items()}
        self.cache: dict[str, tuple[int, bytes]] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                kind = self.path.strip("/").split("/")[0]
                body = server.page(kind)
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                # Prometheus drops connections it no longer needs (scrape timeout, shutdown).
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.http = Server((HOST, 0), Handler)
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def page(self, kind: str) -> bytes:
        if kind not in self.lines:
            return b""
        now = int(time.time())
        with self.lock:
            cached = self.cache.get(kind)
            if cached and cached[0] == now:
                return cached[1]
            body = "".join(f"{s} {v + now % 100000 if c else v}\n"
                           for s, v, c in self.lines[kind]).encode()
            self.cache[kind] = (now, body)
            return body

    def stop(self) -> None:
        self.http.shutdown()


def write_inventory(inventory: Path, port: int, units: int) -> None:
    for job, kind, service in (("apollonia-api", "api", "api"),
                               ("apollonia-analyzer", "analyzer", "analyzer")):
        groups = [{"targets": [f"{HOST}:{port}"],
                   "labels": {"__metrics_path__": f"/{kind}/{i}", "instance": f"{kind}-{i}:80",
                              "service": service, "env": "bench"}}
                  for i in range(units)]
        tmp = inventory / f".{job}.yml"
        tmp.write_text(yaml.safe_dump(groups))
        tmp.replace(inventory / f"{job}.yml")


# --- measuring one Prometheus ---------------------------------------------------------------


def scrape_metrics(url: str) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list[tuple[str, float]]] = {}
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if not line or line[0] == "#":
            continue
        series, _, value = line.rpartition(" ")
        name = series.split("{")[0]
        try:
            out.setdefault(name, []).append((series, float(value)))
        except ValueError:
            continue
    return out


def total(m: dict[str, list[tuple[str, float]]], name: str, where: str = "") -> float:
    return sum(v for s, v in m.get(name, []) if where in s)


def peak(m: dict[str, list[tuple[str, float]]], name: str, where: str = "") -> float:
    return max((v for s, v in m.get(name, []) if where in s), default=0.0)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Step:
    units: int
    series: float
    ingest: float
    slowest_group: float
    missed: float
    scrape_p99_lateness: float
    cpu: float
    rss: int
    remote_lag: float | None
    load: str

    @property
    def lags(self) -> bool:
        return (self.slowest_group > EVAL_INTERVAL or self.missed > 0
                or self.scrape_p99_lateness > 0.2
                or (self.remote_lag is not None and self.remote_lag > 60))

    def line(self) -> str:
        remote = "" if self.remote_lag is None else f"  remote-write lag {self.remote_lag:5.1f}s"
        return (f"{self.units:5d} units {self.series:9.0f} series {self.ingest:9.0f} samples/s  "
                f"slowest rule group {self.slowest_group:6.2f}s  missed {self.missed:3.0f}  "
                f"scrape p99 late {self.scrape_p99_lateness * 100:4.0f}%  cpu {self.cpu:4.2f}  "
                f"rss {self.rss / 1024**2:6.0f} MiB{remote}  load {self.load}"
                f"{'  LAGS' if self.lags else ''}")


def measure(url: str, pid: int, units: int, hold: float, remote: bool) -> Step:
    m0, c0, t0 = scrape_metrics(url), cpu_seconds(pid), time.time()
    time.sleep(hold)
    m1, c1, t1 = scrape_metrics(url), cpu_seconds(pid), time.time()
    dt = t1 - t0
    lateness = 0.0
    for series, value in m1.get("prometheus_target_interval_length_seconds", []):
        got = re.search(r'interval="(\d+)s".*quantile="0.99"', series)
        if got and value == value:  # NaN when a summary has no observation yet
            lateness = max(lateness, value / float(got.group(1)) - 1)
    remote_lag = None
    if remote:
        remote_lag = (peak(m1, "prometheus_remote_storage_highest_timestamp_in_seconds")
                      - peak(m1, "prometheus_remote_storage_queue_highest_sent_timestamp_seconds"))
    return Step(
        units=units,
        series=total(m1, "prometheus_tsdb_head_series"),
        ingest=(total(m1, "prometheus_tsdb_head_samples_appended_total")
                - total(m0, "prometheus_tsdb_head_samples_appended_total")) / dt,
        slowest_group=peak(m1, "prometheus_rule_group_last_duration_seconds"),
        missed=(total(m1, "prometheus_rule_group_iterations_missed_total")
                - total(m0, "prometheus_rule_group_iterations_missed_total")),
        scrape_p99_lateness=lateness,
        cpu=(c1 - c0) / dt,
        rss=rss_bytes(pid),
        remote_lag=remote_lag,
        load=" ".join(f"{x:.2f}" for x in os.getloadavg()),
    )


def run_variant(variant: str, pages: dict[str, list[str]], units: list[int], hold: float,
                settle: float) -> list[Step]:
    work = Path(tempfile.mkdtemp(prefix=f"capacity-{variant}-"))
    procs: list[subprocess.Popen] = []
    targets = TargetServer(pages)
    try:
        prom_dir = work / "prometheus"
        (prom_dir / "inventory").mkdir(parents=True)
        (prom_dir / "secrets").mkdir()
        (prom_dir / "secrets/basic_auth_password").write_text("benchmark")
        for name in ("scrape-configs.yml", "rules"):
            (prom_dir / name).symlink_to(ROOT / "prometheus" / name)
        remote = variant == "remote-write"
        if remote:
            vm_port = free_port()
            flags = [f.replace(f"{HOST}:{scale.STORE_PORT}", f"{HOST}:{vm_port}")
                     for f in scale.store_flags(work / "vm-data")]
            procs.append(subprocess.Popen([str(TOOLS / "victoria-metrics"), *flags],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_http(f"http://{HOST}:{vm_port}/health")
            config = scale.with_remote_write_url(ROOT / "prometheus/prometheus-ha.yml",
                                                 f"http://{HOST}:{vm_port}/api/v1/write")
            (prom_dir / "prometheus.yml").write_text(config)
        else:
            (prom_dir / "prometheus.yml").symlink_to(ROOT / "prometheus/prometheus.yml")
        port = free_port()
        (prom_dir / "inventory/prometheus.yml").write_text(yaml.safe_dump(
            [{"targets": [f"{HOST}:{port}"], "labels": {"service": "prometheus", "env": "bench"}}]))
        write_inventory(prom_dir / "inventory", targets.port, units[0])
        prom = subprocess.Popen(
            [str(TOOLS / "prometheus"), f"--config.file={prom_dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address={HOST}:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "PROMETHEUS_REPLICA": "a"},
        )
        procs.append(prom)
        url = f"http://{HOST}:{port}"
        wait_http(f"{url}/-/ready")
        steps = []
        print(f"--- {variant}: one Prometheus with prometheus/rules/ "
              f"({'remote write to victoria-metrics' if remote else 'no remote write'})")
        for n in units:
            write_inventory(prom_dir / "inventory", targets.port, n)
            time.sleep(settle)  # new targets discovered, first scrapes, series created
            step = measure(url, prom.pid, n, hold, remote)
            print(step.line(), flush=True)
            steps.append(step)
            if step.lags or step.rss > RSS_LIMIT:
                break
        return steps
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        targets.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", default="100,200,400,500,600,700,800,1200",
                        help="comma-separated numbers of (api + analyzer) instances per step")
    parser.add_argument("--hold", type=float, default=120, help="seconds measured per step")
    parser.add_argument("--settle", type=float, default=45,
                        help="seconds after adding targets before measuring")
    parser.add_argument("--variant", choices=["single", "remote-write", "both"], default="both")
    args = parser.parse_args(argv)
    for tool in ("prometheus", "victoria-metrics"):
        if not (TOOLS / tool).exists():
            print(f"capacity_benchmark: .tools/bin/{tool} missing (make bootstrap)",
                  file=sys.stderr)
            return 2
    units = [int(u) for u in args.units.split(",")]
    work = Path(tempfile.mkdtemp(prefix="capacity-pages-"))
    try:
        pages = capture_pages(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"workload pages: api {len(pages['api'])} series, analyzer {len(pages['analyzer'])} "
          f"series (one unit = one of each); {os.cpu_count()} CPUs")
    variants = ["single", "remote-write"] if args.variant == "both" else [args.variant]
    results = {v: run_variant(v, pages, units, args.hold, args.settle) for v in variants}
    print("--- highest step without lag")
    for variant, steps in results.items():
        good = [s for s in steps if not s.lags]
        if good:
            best = good[-1]
            print(f"{variant:<13} {best.ingest:9.0f} samples/s, {best.series:9.0f} active series"
                  f" ({best.units} units; cpu {best.cpu:.2f} cores, rss "
                  f"{best.rss / 1024**2:.0f} MiB)")
        else:
            print(f"{variant:<13} lags already at the first step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
