"""The native run: the metrics and alerting half of the bundle as local processes.

Everything binds to 127.0.0.1 and keeps its state under .run/ (git-ignored):

    .run/supervisord.conf          generated process-manager config (supervisor)
    .run/supervisor.sock           control socket (supervisorctl talks to it)
    .run/logs/<process>.log        one log per process, plus supervisord.log
    .run/prometheus/prometheus.yml -> ../../prometheus/prometheus.yml   (the bundle's own file)
    .run/prometheus/rules/         one symlink per prometheus/rules/*.yml (a directory of links,
                                   so a test can drop a broken rule file here without touching
                                   the repo; `up` regenerates it)
    .run/prometheus/inventory      -> ../../prometheus/targets/native   (the only native difference)
    .run/prometheus/data/          TSDB
    .run/alertmanager/alertmanager.yml -> ../../alertmanager/alertmanager.yml
    .run/alertmanager/templates    -> ../../alertmanager/templates
    .run/alertmanager/secrets/     copied from alertmanager/secrets.example/, sink URLs written in
    .run/alertmanager/data/        silences and notification log
    .run/blackbox/blackbox.yml     -> ../../exporters/blackbox.yml
    .run/node-exporter/textfile/   textfile collector directory
    .run/secrets/, .run/postgres/, .run/redis/, .run/rabbitmq/
                                   the workload's dependencies (native/deps.py)

Supervisor (a real process manager) starts, stops and restarts single processes, which the
integration tests need (stop the api, restart Prometheus, stop PostgreSQL).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterable

from native import deps
from native.common import (
    HOST,
    LOGS,
    PROMETHEUS_FLAGS,
    PYTHON,
    ROOT,
    RUN,
    SUPERVISORD,
    TOOLS,
    Component,
    NativeError,
    ctl,
    link,
    port_busy,
    prepare_alertmanager,
    ready,
    require,
    shutdown,
    supervisor_running,
    supervisord_conf,
)

CONF = RUN / "supervisord.conf"
SINK_URL = f"http://{HOST}:5001"


def _dependency(prog: deps.Program) -> Component:
    return Component(prog.name, prog.port, "", prog.command, prog.title,
                     environment=prog.environment, probe=prog.ready, url=prog.url,
                     also_listens=prog.also_listens, stopsignal=prog.stopsignal)


def components() -> list[Component]:
    """Every process of the native run, in start order (priority)."""
    py = str(PYTHON)
    tools = TOOLS
    servers = [_dependency(p) for p in deps.programs()]
    return [
        Component(
            "webhook-sink", 5001, "/health",
            f"{py} -m apollonia.webhook_sink --host {HOST} --port 5001",
            "Webhook sink (received notifications)", "/notifications",
        ),
        Component(
            "alertmanager", 9093, "/-/ready",
            f"{tools}/alertmanager --config.file={RUN}/alertmanager/alertmanager.yml"
            f" --storage.path={RUN}/alertmanager/data --web.listen-address={HOST}:9093"
            " --cluster.listen-address=",
            "Alertmanager",
            # Alertmanager reads url_file/api_url_file/password_file relative to its working
            # directory (only templates are resolved against the config file's directory):
            # run it beside its config so `secrets/...` means .run/alertmanager/secrets.
            cwd=RUN / "alertmanager",
        ),
        Component(
            "node-exporter", 9100, "/metrics",
            f"{tools}/node-exporter --web.listen-address={HOST}:9100"
            f" --collector.textfile.directory={RUN}/node-exporter/textfile",
            "node-exporter", "/metrics",
        ),
        Component(
            "blackbox-exporter", 9115, "/-/healthy",
            f"{tools}/blackbox-exporter --config.file={RUN}/blackbox/blackbox.yml"
            f" --web.listen-address={HOST}:9115",
            "blackbox-exporter",
        ),
        # PostgreSQL, Redis, RabbitMQ and their exporters, before the workload that uses them.
        *servers,
        # The workload (autostart=False) is started by up() once everything else answers:
        # uploads during RabbitMQ's ~10 s boot would fail and burn the error budget.
        Component(
            "api", 8000, "/health/ready",
            f"{py} -m apollonia api --host {HOST} --port 8000",
            "Apollonia api", "/docs", environment=deps.workload_environment("api"),
            autostart=False,
        ),
        Component(
            "analyzer", 8001, "/health/ready",
            f"{py} -m apollonia analyzer --host {HOST} --port 8001",
            "Apollonia analyzer", "/metrics", environment=deps.workload_environment("analyzer"),
            autostart=False,
        ),
        Component(
            "loadgen", 0, "",
            f"{py} -m apollonia loadgen --api-url http://{HOST}:8000",
            "Load generator", autostart=False,
        ),
        Component(
            "prometheus", 9090, "/-/ready",
            f"{tools}/prometheus --config.file={RUN}/prometheus/prometheus.yml"
            f" --storage.tsdb.path={RUN}/prometheus/data --web.listen-address={HOST}:9090"
            f" {PROMETHEUS_FLAGS}",
            "Prometheus",
        ),
    ]


def component(name: str) -> Component:
    for comp in components():
        if comp.name == name:
            return comp
    raise KeyError(name)


NEEDS_DOCKER = {
    "Grafana": "dashboards (grafana/)",
    "Jaeger": "traces (jaeger/)",
    "Fluent Bit": "log shipping (fluent-bit/)",
    "Elasticsearch": "log storage (elasticsearch/)",
    "cAdvisor": "container metrics",
}


# --- .run/ layout -------------------------------------------------------------------------


def prepare_prometheus() -> None:
    base = RUN / "prometheus"
    (base / "data").mkdir(parents=True, exist_ok=True)
    link(base / "prometheus.yml", require(ROOT / "prometheus/prometheus.yml", "foundation"))
    link(base / "scrape-configs.yml", require(ROOT / "prometheus/scrape-configs.yml", "jobs"))
    link(base / "inventory", require(ROOT / "prometheus/targets/native", "native inventory"))
    rules = base / "rules"
    if rules.is_symlink():
        rules.unlink()
    rules.mkdir(exist_ok=True)
    # Generated directory: every run starts from exactly the repo's rule files (this also
    # removes a broken file an interrupted test may have left behind).
    for old in rules.iterdir():
        old.unlink()
    for src in sorted((ROOT / "prometheus/rules").glob("*.yml")):
        link(rules / src.name, src)
    # prometheus.yml sends basic auth to Prometheus and Alertmanager (enforced only on
    # staging); natively nothing checks it, but the password file must exist.
    secret = base / "secrets" / "basic_auth_password"
    if not secret.exists():
        secret.parent.mkdir(mode=0o700, exist_ok=True)
        secret.write_text(secrets.token_urlsafe(24) + "\n")
        secret.chmod(0o600)


MINIMAL_BLACKBOX = """\
# Stand-in written by `python -m native up` because exporters/blackbox.yml is missing.
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
"""


def prepare_blackbox() -> None:
    base = RUN / "blackbox"
    base.mkdir(parents=True, exist_ok=True)
    src = ROOT / "exporters/blackbox.yml"
    dst = base / "blackbox.yml"
    if src.is_file():
        link(dst, src)
    else:
        if dst.is_symlink():
            dst.unlink()
        dst.write_text(MINIMAL_BLACKBOX)


def prepare() -> None:
    """Create or refresh .run/ from the repo's files."""
    for comp_dir in ("logs", "node-exporter/textfile"):
        (RUN / comp_dir).mkdir(parents=True, exist_ok=True)
    prepare_prometheus()
    prepare_alertmanager(SINK_URL, RUN / "alertmanager")
    prepare_blackbox()
    deps.prepare()
    # 0600: program environments carry the Redis exporter's password.
    fd = os.open(CONF, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(supervisord_conf(components()))
    CONF.chmod(0o600)


# --- process control ----------------------------------------------------------------------


def log_tail(name: str, lines: int = 30) -> str:
    path = LOGS / f"{name}.log"
    if not path.exists():
        return f"(no log at {path.relative_to(ROOT)})"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def wait_ready(names: Iterable[str] | None = None, timeout: float = 90.0) -> list[str]:
    """Wait until the named components answer; return the ones that never did."""
    pending = [c for c in components() if names is None or c.name in set(names)]
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = [c for c in pending if not ready(c)]
        if pending:
            time.sleep(0.5)
    return [c.name for c in pending]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def up(timeout: float = 90.0) -> None:
    for tool in ("prometheus", "alertmanager", "node-exporter", "blackbox-exporter"):
        require(TOOLS / tool, "run `make bootstrap` to install the pinned Debian builds")
    if deps.missing() and in_ci():
        raise NativeError(f"CI=true and not installed: {stand_ins()} (see `make bootstrap`)")
    prepare()
    first = [c.name for c in components() if c.autostart]
    workload = [c.name for c in components() if not c.autostart]
    if supervisor_running():
        # Already up: pick up config changes and start anything stopped.
        ctl("update")
        ctl("start", *first)
    else:
        busy = [f"{c.name}:{port}" for c in components() for port in (c.port, *c.also_listens)
                if port and port_busy(port)]
        if busy:
            raise NativeError(
                f"ports already in use by something else: {', '.join(busy)} "
                "(stop it, or `make down` if it is an old native run)"
            )
        proc = subprocess.run(
            [str(SUPERVISORD), "-c", str(CONF)], capture_output=True, text=True, cwd=ROOT
        )
        if proc.returncode != 0:
            raise NativeError(f"supervisord failed to start: {proc.stderr.strip() or proc.stdout}")
    started = time.monotonic()
    missing = wait_ready(first, timeout=timeout)
    if not missing:
        ctl("start", *workload)
        missing = wait_ready(timeout=max(10.0, timeout - (time.monotonic() - started)))
    if missing:
        details = "\n".join(f"--- {n} (tail of .run/logs/{n}.log)\n{log_tail(n)}" for n in missing)
        raise NativeError(f"not ready after {timeout:.0f}s: {', '.join(missing)}\n{details}")


def down(timeout: float = 60.0) -> bool:
    """Stop every process and supervisord itself. Returns False if nothing was running."""
    return shutdown(RUN, timeout)


def reset_alertmanager_state() -> None:
    """Restart Alertmanager without its notification log (silences are kept).

    For tests and benchmarks: an alert that fired shortly before (e.g. in the previous test
    run) would otherwise be deduplicated for repeat_interval or wait for its old group's
    group_interval, and a measurement would time something else.
    """
    ctl("stop", "alertmanager", check=True)
    (RUN / "alertmanager/data/nflog").unlink(missing_ok=True)
    ctl("start", "alertmanager", check=True)
    if wait_ready(["alertmanager"], timeout=30):
        raise NativeError(f"alertmanager not ready after restart:\n{log_tail('alertmanager')}")


def stand_ins() -> str:
    """The dependencies the workload simulates in-process ('' when all run for real)."""
    return ", ".join(deps.TITLES[d] for d in deps.missing())


def banner() -> str:
    rows = ["Native run is up (state in .run/, logs in .run/logs/):"]
    for comp in components():
        if comp.url:
            rows.append(f"  {comp.title:<40} {comp.url}")
        elif comp.port:
            rows.append(f"  {comp.title:<40} http://{HOST}:{comp.port}{comp.ui_path}")
        else:
            rows.append(f"  {comp.title:<40} (no port; log .run/logs/{comp.name}.log)")
    rows.append("Not running natively (need a Docker host: `make up` there):")
    for name, what in NEEDS_DOCKER.items():
        rows.append(f"  {name:<40} {what}")
    if stand_ins():
        rows.append(f"STAND-INS: {stand_ins()} not installed (see `make bootstrap`): the workload"
                    " simulates them in-process and their alerts cannot fire.")
    rows.append("Stop with `make down` (or .venv/bin/python -m native down).")
    return "\n".join(rows)


def status() -> tuple[bool, str]:
    if not supervisor_running():
        return False, "native run: not running (start it with `make up-native`)"
    lines = [ctl("status").stdout.rstrip()]
    bad = [c.name for c in components() if not ready(c)]
    lines.append("all components ready" if not bad else f"not ready: {', '.join(bad)}")
    return not bad, "\n".join(lines)
