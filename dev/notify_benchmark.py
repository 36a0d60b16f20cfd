"""Time-to-notify benchmark: how long from a fault to the webhook, next to its floor.

    python -m dev.notify_benchmark service-down   # stop the api -> ServiceDown at the sink
    python -m dev.notify_benchmark error-burn     # 100% api errors -> ApiErrorBudgetBurn page
    python -m dev.notify_benchmark latency-burn   # every request slow -> the latency page
    python -m dev.notify_benchmark first-notify [--runs 3] [--prometheus-flag=--x=y ...]
                                                    # Prometheus start -> first Watchdog webhook
                                                    # (with the native run's alert flags)
    python -m dev.notify_benchmark all

`service-down` and `error-burn` act on the running native stack (`make up-native`) and undo
what they did. `first-notify` starts its own Prometheus, Alertmanager and webhook sink on
spare ports (19090, 19093, 15001) with the bundle's own prometheus.yml, rules and
alertmanager.yml, so it measures a cold start without disturbing the native run.

Every figure is printed next to its floor (and, where it is bounded, its ceiling) computed
from the loaded configuration: scrape interval, evaluation interval, the rule's `for` and the
route's group_wait. This is a measurement tool, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dev.slo.spec import load as load_slos  # noqa: E402
from native import stack as native  # noqa: E402
from tests.integration.alerting import (  # noqa: E402
    alert_rule,
    evaluation_interval,
    prometheus_flag,
    routes_for,
    scrape_interval,
    seconds,
)

PROM = "http://127.0.0.1:9090"
AM = "http://127.0.0.1:9093"
SINK = "http://127.0.0.1:5001"
API = "http://127.0.0.1:8000"


@dataclass
class Figure:
    path: str
    measured: float
    floor: float
    ceiling: float | None
    breakdown: str

    def line(self) -> str:
        ceil = f", ceiling {self.ceiling:5.1f}s" if self.ceiling is not None else ""
        return (f"{self.path:<44} measured {self.measured:6.1f}s   floor {self.floor:5.1f}s{ceil}"
                f"\n{'':<44} {self.breakdown}")


def _now_iso_ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _wait(check: Callable[[], Any], timeout: float, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    return None


def _sink_first(sink: str, since: float, alertname: str, **labels: str) -> float | None:
    """Receive time of the first firing notification for `alertname` after `since`."""
    for note in httpx.get(f"{sink}/notifications", timeout=5).json():
        if note["received_at"] < since:
            continue
        for alert in note["payload"].get("alerts", []):
            lab = alert["labels"]
            if (alert["status"] == "firing" and lab.get("alertname") == alertname
                    and all(lab.get(k) == v for k, v in labels.items())):
                return note["received_at"]
    return None


def _require_native() -> None:
    if not native.supervisor_running():
        raise SystemExit("notify_benchmark: the native run is not up (make up-native)")
    missing = native.wait_ready(timeout=30)
    if missing:
        raise SystemExit(f"notify_benchmark: not ready: {missing}")
    # A fresh notification log and no old aggregation groups, so group_wait applies.
    native.reset_alertmanager_state()


# --- stop the api -> ServiceDown ---------------------------------------------------------


def service_down(timeout: float = 300) -> Figure:
    _require_native()
    rule = alert_rule("ServiceDown")
    labels = {"alertname": "ServiceDown", "service": "api", "env": "native", **rule.labels}
    route = routes_for(labels)[0]
    scrape, ev = scrape_interval("apollonia-api"), evaluation_interval()
    t0 = time.time()
    native.ctl("stop", "api", check=True)
    try:
        got = _wait(lambda: _sink_first(SINK, t0, "ServiceDown", service="api"), timeout)
    finally:
        native.ctl("start", "api")
    if got is None:
        raise SystemExit(f"notify_benchmark: no ServiceDown at the sink within {timeout:.0f}s")
    floor = rule.hold + route.group_wait
    return Figure(
        "stop api -> ServiceDown webhook", got - t0, floor, scrape + ev + floor,
        f"= scrape<= {scrape:.0f}s + eval<= {ev:.0f}s + for {rule.hold:.0f}s"
        f" + group_wait {route.group_wait:.0f}s",
    )


# --- 100% errors -> SLO fast-burn page -----------------------------------------------------


def error_burn(timeout: float = 420) -> Figure:
    """100% api errors -> the availability SLO's 1h/5m page."""
    return _burn("availability", {"error_ratio": 1.0}, "100% api errors", timeout)


def latency_burn(timeout: float = 1200) -> Figure:
    """Every api request slower than 0.5 s -> the latency SLO's 1h/5m page."""
    return _burn("latency", {"latency_seconds": 1.5}, "every api request +1.5 s", timeout)


def _burn(slo_name: str, fault: dict[str, float], what: str, timeout: float) -> Figure:
    _require_native()
    spec = load_slos()
    slo = next(o for o in spec.slos if o.service == "api" and o.name == slo_name)
    quick = next(p for p in spec.pairs if p.tier == "page" and p.speed == "quick")
    rule = alert_rule(slo.alert_name, severity="critical", slo=slo.name, window=quick.label)
    labels = {"alertname": rule.name, "service": "api", "env": "native", **rule.labels}
    route = routes_for(labels)[0]
    scrape, ev = scrape_interval("apollonia-api"), evaluation_interval()
    # The 1h window is computed from raw samples; how much traffic history it holds decides
    # how soon all-bad events push its ratio over factor x budget (14.4 x 0.1% = 1.44% for
    # availability): with a full window of steady traffic the ratio is t / 1h (51.8 s), with
    # less history h the window holds h + t and the ratio is t / (h + t).
    start = float(httpx.get(f"{PROM}/api/v1/query", params={
        "query": 'min(process_start_time_seconds{job="prometheus"})'}, timeout=5)
        .json()["data"]["result"][0]["value"][1])
    history = time.time() - start
    line = quick.factor * slo.budget
    window_s = line * quick.long if history >= quick.long else line * history / (1 - line)
    def active(**match: str) -> list[dict]:
        alerts = httpx.get(f"{PROM}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        return [a for a in alerts if a["labels"].get("alertname") == rule.name
                and a["labels"].get("service") == "api"
                and all(a["labels"].get(k) == v for k, v in match.items())]

    if active(slo=slo.name):
        raise SystemExit(
            f"notify_benchmark: {rule.name} ({slo.name}) is already active (bad events in the"
            " last hour, e.g. from the integration suite): nothing to measure. Start from fresh"
            " data: make down && rm -rf .run/prometheus/data && make up-native")
    # Another SLO's alert of the same name and service shares the Alertmanager group: the
    # page would wait for the group's next group_interval instead of group_wait.
    if not _wait(lambda: not active(), 900, interval=5):
        raise SystemExit(f"notify_benchmark: {rule.name} of another api SLO stays active")
    native.reset_alertmanager_state()
    t0 = time.time()
    httpx.post(f"{API}/admin/faults", json=fault, timeout=5).raise_for_status()
    try:
        got = _wait(lambda: _sink_first(SINK, t0, rule.name, service="api", slo=slo.name,
                                        window=quick.label), timeout)
    finally:
        httpx.delete(f"{API}/admin/faults", timeout=5)
    if got is None:
        raise SystemExit(f"notify_benchmark: no {rule.name} page within {timeout:.0f}s")
    floor = window_s + rule.hold + route.group_wait
    return Figure(
        f"{what} -> {rule.name} {slo.name} {quick.label}", got - t0, floor,
        floor + scrape + ev,
        f"= {quick.label.split('/')[0]} ratio > {line:.2%} after {window_s:.0f}s "
        f"({min(history, quick.long) / 60:.0f} min of history) + for {rule.hold:.0f}s"
        f" + group_wait {route.group_wait:.0f}s (+ scrape <= {scrape:.0f}s, eval <= {ev:.0f}s)",
    )


def native_prometheus_flags(names: tuple[str, ...] = ("--rules.alert.resend-delay",)) -> list[str]:
    """The native run's (and compose's) Prometheus flags that change alert timing."""
    return [f"{n}={v}" for n in names if (v := prometheus_flag(n)) is not None]


# --- cold start -> first notification ------------------------------------------------------------


BENCH = {"prom": 19090, "am": 19093, "sink": 15001}


def _isolated_run_dir(base: Path) -> None:
    (base / "prometheus/data").mkdir(parents=True)
    (base / "prometheus/rules").mkdir()
    # prometheus.yml sends basic auth to itself and Alertmanager (enforced only on staging)
    # from secrets/ next to it: without the file no scrape or notification is made.
    secret = base / "prometheus/secrets/basic_auth_password"
    secret.parent.mkdir(mode=0o700)
    secret.write_text(secrets.token_urlsafe(24) + "\n")
    (base / "prometheus/prometheus.yml").symlink_to(ROOT / "prometheus/prometheus.yml")
    for rule in sorted((ROOT / "prometheus/rules").glob("*.yml")):
        (base / "prometheus/rules" / rule.name).symlink_to(rule)
    inv = base / "prometheus/inventory"
    inv.mkdir()
    for f in (ROOT / "prometheus/targets/native").glob("*.yml"):
        (inv / f.name).symlink_to(f)
    (inv / "alertmanagers.yml").unlink()
    (inv / "alertmanagers.yml").write_text(
        f"- targets: ['127.0.0.1:{BENCH['am']}']\n"
        "  labels: {service: alertmanager, env: bench}\n")
    native.prepare_alertmanager(f"http://127.0.0.1:{BENCH['sink']}", base / "alertmanager")


def first_notify(prom_flags: list[str], am_after: float = -1.0) -> dict[str, float]:
    """One cold start: seconds from spawning Prometheus to each milestone.

    am_after < 0: Alertmanager is up before Prometheus starts (the native run's order);
    am_after >= 0: Alertmanager starts that many seconds after Prometheus (as in a compose
    stack where both start together and Alertmanager is slower to become ready)."""
    base = Path(tempfile.mkdtemp(prefix="notify-bench-"))
    procs: list[subprocess.Popen] = []
    logs = base / "logs"
    logs.mkdir()

    def spawn(name: str, cmd: list[str], cwd: Path = ROOT) -> subprocess.Popen:
        out = open(logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                start_new_session=True)
        procs.append(proc)
        return proc

    try:
        _isolated_run_dir(base)
        sink = f"http://127.0.0.1:{BENCH['sink']}"
        am = f"http://127.0.0.1:{BENCH['am']}"
        prom = f"http://127.0.0.1:{BENCH['prom']}"
        spawn("sink", [str(native.PYTHON), "-m", "apollonia.webhook_sink", "--port",
                       str(BENCH["sink"])])
        am_cmd = [
            str(native.TOOLS / "alertmanager"),
            f"--config.file={base}/alertmanager/alertmanager.yml",
            f"--storage.path={base}/alertmanager/data",
            f"--web.listen-address=127.0.0.1:{BENCH['am']}", "--cluster.listen-address=",
        ]
        am_dir = base / "alertmanager"  # url_file paths are relative to the working dir
        if am_after < 0:
            spawn("alertmanager", am_cmd, am_dir)
        for url in (f"{sink}/health", *([f"{am}/-/ready"] if am_after < 0 else [])):
            if not _wait(lambda u=url: _ok(u), 30):
                raise SystemExit(f"notify_benchmark: {url} not ready")
        t0 = time.time()
        spawn("prometheus", [
            str(native.TOOLS / "prometheus"), f"--config.file={base}/prometheus/prometheus.yml",
            f"--storage.tsdb.path={base}/prometheus/data",
            f"--web.listen-address=127.0.0.1:{BENCH['prom']}", *prom_flags,
        ])
        if am_after >= 0:
            time.sleep(am_after)
            spawn("alertmanager", am_cmd, am_dir)
        marks: dict[str, float] = {}
        deadline = time.time() + 240
        while time.time() < deadline and "webhook" not in marks:
            if "ready" not in marks and _ok(f"{prom}/-/ready"):
                marks["ready"] = time.time() - t0
            if "ready" in marks and "discovered" not in marks:
                ams = _get(f"{prom}/api/v1/alertmanagers")
                if ams and ams["data"]["activeAlertmanagers"]:
                    marks["discovered"] = time.time() - t0
            if "ready" in marks and "firing" not in marks:
                alerts = _get(f"{prom}/api/v1/alerts")
                for a in (alerts or {}).get("data", {}).get("alerts", []):
                    if a["labels"]["alertname"] == "Watchdog" and a["state"] == "firing":
                        marks["firing"] = _now_iso_ts(a["activeAt"]) - t0
            if "firing" in marks and "alertmanager" not in marks:
                got = _get(f"{am}/api/v2/alerts", params={"filter": 'alertname="Watchdog"'})
                if got:
                    marks["alertmanager"] = time.time() - t0
            received = _sink_first(sink, t0, "Watchdog")
            if received:
                marks["webhook"] = received - t0
            time.sleep(0.2)
        return marks
    finally:
        for proc in reversed(procs):
            with _suppress():
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            with _suppress():
                proc.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _get(url: str, **kwargs: Any) -> Any:
    try:
        resp = httpx.get(url, timeout=2, **kwargs)
        return resp.json() if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def first_notify_report(runs: int, prom_flags: list[str], am_after: float) -> list[Figure]:
    rule = alert_rule("Watchdog")
    route = routes_for({"alertname": "Watchdog", **rule.labels})[0]
    ev = evaluation_interval()
    resend = 60.0  # Prometheus default --rules.alert.resend-delay
    for flag in prom_flags:
        if flag.startswith("--rules.alert.resend-delay="):
            resend = seconds(flag.split("=", 1)[1])
    # A send lost before the notifier knows any Alertmanager is repeated on the first
    # evaluation strictly later than resend-delay: floor(resend / ev) + 1 intervals.
    retry = (resend // ev + 1) * ev
    figures = []
    for i in range(runs):
        m = first_notify(prom_flags, am_after)
        if "webhook" not in m:
            raise SystemExit(f"notify_benchmark: no Watchdog webhook (run {i + 1}): {m}")
        flags = " " + " ".join(prom_flags) if prom_flags else ""
        if am_after >= 0:
            flags += f" (Alertmanager started {am_after:.0f}s after Prometheus)"
        figures.append(Figure(
            f"Prometheus start -> first Watchdog webhook{flags}",
            m["webhook"], route.group_wait, ev + retry + route.group_wait,
            f"ready {m.get('ready', 0):.1f}s, Watchdog firing (1st eval) {m.get('firing', 0):.1f}s,"
            f" Alertmanager discovered {m.get('discovered', 0):.1f}s,"
            f" alert in Alertmanager {m.get('alertmanager', 0):.1f}s, webhook {m['webhook']:.1f}s"
            f" (eval interval {ev:.0f}s, lost-first-send retry after {retry:.0f}s,"
            f" group_wait {route.group_wait:.0f}s)",
        ))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.notify_benchmark",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("path", choices=("service-down", "error-burn", "latency-burn",
                                         "first-notify", "all"))
    parser.add_argument("--runs", type=int, default=1, help="first-notify repetitions")
    parser.add_argument("--am-after", type=float, default=-1.0, metavar="SECONDS",
                        help="first-notify: start Alertmanager this long after Prometheus "
                             "(default: Alertmanager ready first)")
    parser.add_argument("--prometheus-flag", dest="prom_flags", action="append", default=[],
                        metavar="FLAG", help="first-notify: extra Prometheus flag (repeatable;"
                        " replaces the native run's flag of the same name), e.g."
                        " --prometheus-flag=--rules.alert.resend-delay=1m")
    args = parser.parse_args(argv)
    given = {f.split("=", 1)[0] for f in args.prom_flags}
    args.prom_flags = [f for f in native_prometheus_flags()
                       if f.split("=", 1)[0] not in given] + args.prom_flags
    figures: list[Figure] = []
    if args.path in ("first-notify", "all"):
        for fig in first_notify_report(args.runs, args.prom_flags, args.am_after):
            print(fig.line(), flush=True)
            figures.append(fig)
    if args.path in ("service-down", "all"):
        figures.append(service_down())
        print(figures[-1].line(), flush=True)
    if args.path in ("error-burn", "all"):
        figures.append(error_burn())
        print(figures[-1].line(), flush=True)
    if args.path == "latency-burn":  # ~10 minutes: not part of `all`
        figures.append(latency_burn())
        print(figures[-1].line(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
