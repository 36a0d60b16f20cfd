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
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from native import deps

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / ".run"
LOGS = RUN / "logs"
# Flags every native Prometheus shares (the base run and the scale profile's pair), as in
# compose.yaml: reload over HTTP, exemplars, and firing alerts re-sent every evaluation
# (docs/alerting.md, "First notification after a start").
PROMETHEUS_FLAGS = ("--web.enable-lifecycle --enable-feature=exemplar-storage"
                    " --rules.alert.resend-delay=10s")
TOOLS = ROOT / ".tools" / "bin"
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
SUPERVISORD = VENV_BIN / "supervisord"
SUPERVISORCTL = VENV_BIN / "supervisorctl"
CONF = RUN / "supervisord.conf"
SOCK = RUN / "supervisor.sock"
PIDFILE = RUN / "supervisord.pid"

SINK_URL = "http://127.0.0.1:5001"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Component:
    name: str  # supervisor program name
    port: int
    ready_path: str  # HTTP path answering 200 when the process is ready
    command: str
    title: str
    ui_path: str = "/"
    cwd: Path = ROOT
    environment: tuple[tuple[str, str], ...] = ()
    probe: Callable[[], bool] | None = None  # readiness in the server's own protocol
    url: str = ""  # shown in the banner instead of http://host:port/ui_path
    also_listens: tuple[int, ...] = ()
    stopsignal: str = "TERM"


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
        Component(
            "api", 8000, "/health/ready",
            f"{py} -m apollonia api --host {HOST} --port 8000",
            "Apollonia api", "/docs", environment=deps.workload_environment("api"),
        ),
        Component(
            "analyzer", 8001, "/health/ready",
            f"{py} -m apollonia analyzer --host {HOST} --port 8001",
            "Apollonia analyzer", "/metrics", environment=deps.workload_environment("analyzer"),
        ),
        Component(
            "loadgen", 0, "",
            f"{py} -m apollonia loadgen --api-url http://{HOST}:8000",
            "Load generator",
        ),
        Component(
            "prometheus", 9090, "/-/ready",
            f"{tools}/prometheus --config.file={RUN}/prometheus/prometheus.yml"
            f" --storage.tsdb.path={RUN}/prometheus/data --web.listen-address={HOST}:9090"
            f" {PROMETHEUS_FLAGS}",
            "Prometheus",
        ),
    ]


# Started by up() after everything else is ready (they use the servers, Prometheus does not
# need them to be up first).
WORKLOAD = ("api", "analyzer", "loadgen")


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


class NativeError(RuntimeError):
    """A problem worth one line to the user (no stack trace)."""


# --- .run/ layout -------------------------------------------------------------------------


def _link(link: Path, target: Path) -> None:
    """Make `link` a relative symlink to `target` (replacing an old link)."""
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    link.symlink_to(os.path.relpath(target, link.parent))


def _require(path: Path, hint: str) -> Path:
    if not path.exists():
        raise NativeError(f"{path.relative_to(ROOT)}: missing ({hint})")
    return path


def prepare_prometheus() -> None:
    base = RUN / "prometheus"
    (base / "data").mkdir(parents=True, exist_ok=True)
    _link(base / "prometheus.yml", _require(ROOT / "prometheus/prometheus.yml", "foundation"))
    _link(base / "scrape-configs.yml", _require(ROOT / "prometheus/scrape-configs.yml", "jobs"))
    _link(base / "inventory", _require(ROOT / "prometheus/targets/native", "native inventory"))
    rules = base / "rules"
    if rules.is_symlink():
        rules.unlink()
    rules.mkdir(exist_ok=True)
    # Generated directory: every run starts from exactly the repo's rule files (this also
    # removes a broken file an interrupted test may have left behind).
    for old in rules.iterdir():
        old.unlink()
    for src in sorted((ROOT / "prometheus/rules").glob("*.yml")):
        _link(rules / src.name, src)
    # prometheus.yml sends basic auth to Prometheus and Alertmanager (enforced only on
    # staging); natively nothing checks it, but the password file must exist.
    secret = base / "secrets" / "basic_auth_password"
    if not secret.exists():
        secret.parent.mkdir(mode=0o700, exist_ok=True)
        secret.write_text(secrets.token_urlsafe(24) + "\n")
        secret.chmod(0o600)


def write_sink_urls(secrets_dir: Path, sink_url: str = SINK_URL) -> list[str]:
    """Point every *url* secret at the sink: http://<sink>/<file-stem-derived receiver>.

    alertmanager/secrets.example/ holds one file per receiver URL; its content is the URL the
    receiver posts to. Natively every receiver posts to the webhook sink, so the example URL is
    rewritten to the sink, keeping its path (the receiver name) when the example has one.
    """
    written = []
    for path in sorted(secrets_dir.iterdir()):
        if not path.is_file() or "url" not in path.name:
            continue
        example = path.read_text().strip()
        receiver = example.rstrip("/").rsplit("/", 1)[-1] if "://" in example else ""
        if not receiver or ":" in receiver:
            receiver = path.stem.replace("_url", "").replace("-url", "")
        path.write_text(f"{sink_url.rstrip('/')}/{receiver}\n")
        written.append(path.name)
    return written


def prepare_alertmanager(
    sink_url: str = SINK_URL, base: Path | None = None, am: Path = ROOT / "alertmanager"
) -> None:
    """.run/alertmanager (or `base`): config and templates linked from `am`, secrets copied."""
    base = base or RUN / "alertmanager"
    (base / "data").mkdir(parents=True, exist_ok=True)
    _link(base / "alertmanager.yml", _require(am / "alertmanager.yml", "written by the rules work"))
    if (am / "templates").is_dir():
        _link(base / "templates", am / "templates")
    example = am / "secrets.example"
    secrets = base / "secrets"
    if secrets.exists():
        shutil.rmtree(secrets)
    if example.is_dir():
        shutil.copytree(example, secrets)
        write_sink_urls(secrets, sink_url)
    else:
        secrets.mkdir()
    # Secrets stay private to the user running the stack.
    secrets.chmod(0o700)
    for path in secrets.iterdir():
        path.chmod(0o600)


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
        _link(dst, src)
    else:
        if dst.is_symlink():
            dst.unlink()
        dst.write_text(MINIMAL_BLACKBOX)


def _env_value(value: str) -> str:
    """A supervisor environment= value: quoted, with % and " escaped."""
    return '"' + value.replace("%", "%%").replace('"', '\\"') + '"'


def supervisord_conf(comps: Iterable[Component], run: Path = RUN) -> str:
    """supervisord config for `comps`, with its socket, pid file and logs under `run`
    (.run/ for the native run, .run/scale/ for the scale profile)."""
    logs = run / "logs"
    lines = [
        "; Generated by `python -m native up` - edit native/stack.py instead.",
        "[unix_http_server]",
        f"file={run / 'supervisor.sock'}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={logs}/supervisord.log",
        f"pidfile={run / 'supervisord.pid'}",
        f"directory={ROOT}",
        "logfile_maxbytes=5MB",
        "logfile_backups=1",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{run / 'supervisor.sock'}",
        "",
    ]
    for prio, comp in enumerate(comps, start=10):
        env = [("PYTHONUNBUFFERED", "1"), ("PATH", f"{VENV_BIN}:{TOOLS}:/usr/bin:/bin"),
               *comp.environment]
        lines += [
            f"[program:{comp.name}]",
            f"command={comp.command}",
            f"directory={comp.cwd}",
            f"priority={prio}",
            # The workload starts once its servers answer (up()), not with supervisord:
            # uploads during RabbitMQ's ~10 s boot would fail and burn the error budget.
            f"autostart={'false' if comp.name in WORKLOAD else 'true'}",
            # Restart after a crash, but not after a clean exit or `supervisorctl stop`.
            "autorestart=unexpected",
            "startsecs=2",
            "startretries=2",
            f"stopsignal={comp.stopsignal}",
            "stopasgroup=true",
            "killasgroup=true",
            # Prometheus flushes its head block on SIGTERM; give it time.
            "stopwaitsecs=30",
            "redirect_stderr=true",
            f"stdout_logfile={logs}/{comp.name}.log",
            "stdout_logfile_maxbytes=10MB",
            "stdout_logfile_backups=1",
            "environment=" + ",".join(f"{k}={_env_value(v)}" for k, v in env),
            "",
        ]
    return "\n".join(lines)


def prepare() -> None:
    """Create or refresh .run/ from the repo's files."""
    for comp_dir in ("logs", "node-exporter/textfile"):
        (RUN / comp_dir).mkdir(parents=True, exist_ok=True)
    prepare_prometheus()
    prepare_alertmanager()
    prepare_blackbox()
    deps.prepare()
    # 0600: program environments carry the Redis exporter's password.
    fd = os.open(CONF, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(supervisord_conf(components()))
    CONF.chmod(0o600)


# --- process control ----------------------------------------------------------------------


def ctl(*args: str, check: bool = False, run: Path = RUN) -> subprocess.CompletedProcess[str]:
    """Run supervisorctl against the native run's socket (or the one under `run`)."""
    proc = subprocess.run(
        [str(SUPERVISORCTL), "-c", str(run / "supervisord.conf"), *args],
        capture_output=True, text=True, cwd=ROOT, timeout=90,
    )
    if check and proc.returncode != 0:
        detail = f"{proc.stdout.strip()} {proc.stderr.strip()}".strip()
        raise NativeError(f"supervisorctl {' '.join(args)}: {detail}")
    return proc


def supervisor_running(run: Path = RUN) -> bool:
    if not (run / "supervisor.sock").exists() or not (run / "supervisord.conf").exists():
        return False
    # `pid` prints supervisord's pid when it answers on the socket.
    out = ctl("pid", run=run)
    return out.returncode == 0 and out.stdout.strip().isdigit()


def ready(comp: Component, timeout: float = 2.0) -> bool:
    if comp.probe is not None:
        return comp.probe()
    if not comp.port:
        status = ctl("status", comp.name)
        return "RUNNING" in status.stdout
    try:
        resp = httpx.get(f"http://{HOST}:{comp.port}{comp.ready_path}", timeout=timeout)
    except httpx.HTTPError:
        return False
    return resp.status_code == 200


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


def port_busy(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def up(timeout: float = 90.0) -> None:
    for tool in ("prometheus", "alertmanager", "node-exporter", "blackbox-exporter"):
        _require(TOOLS / tool, "run `make bootstrap` to install the pinned Debian builds")
    if deps.missing() and in_ci():
        raise NativeError(f"CI=true and not installed: {stand_ins()} (see `make bootstrap`)")
    prepare()
    if supervisor_running():
        # Already up: pick up config changes and start anything stopped.
        ctl("update")
        ctl("start", *[c.name for c in components() if c.name not in WORKLOAD])
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
    missing = wait_ready([c.name for c in components() if c.name not in WORKLOAD],
                         timeout=timeout)
    if not missing:
        ctl("start", *WORKLOAD)
        missing = wait_ready(timeout=max(10.0, timeout - (time.monotonic() - started)))
    if missing:
        details = "\n".join(f"--- {n} (tail of .run/logs/{n}.log)\n{log_tail(n)}" for n in missing)
        raise NativeError(f"not ready after {timeout:.0f}s: {', '.join(missing)}\n{details}")


def down(timeout: float = 60.0, run: Path = RUN) -> bool:
    """Stop every process and supervisord itself. Returns False if nothing was running."""
    if not supervisor_running(run):
        return False
    pid = int(ctl("pid", run=run).stdout.strip())
    ctl("shutdown", run=run)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    raise NativeError(f"supervisord (pid {pid}) still running after {timeout:.0f}s")


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


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m native", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    verbs = {
        "up": "start (or refresh) the native run and wait until it is ready",
        "down": "stop every process of the native run (and of the scale profile)",
        "status": "show process states and readiness (exit 1 if not ready)",
    }
    for verb, text in verbs.items():
        p = sub.add_parser(verb, help=text)
        # The scale profile (native/scale.py) runs next to the base run, on its own ports.
        p.add_argument("--profile", choices=["scale"], help="also the scale profile")
    for verb in ("start", "stop", "restart"):
        p = sub.add_parser(verb, help=f"{verb} one process (supervisorctl {verb})")
        p.add_argument("name", choices=[c.name for c in components()])
    args = parser.parse_args(argv)
    from native import scale

    profile = getattr(args, "profile", None)
    try:
        if args.cmd == "up":
            up()
            print(banner())
            if profile == "scale":
                scale.up()
                print(scale.banner())
        elif args.cmd == "down":
            print("native run stopped" if down() else "native run was not running")
            if scale.running():
                scale.down()
                print("scale profile stopped")
        elif args.cmd == "status":
            ok, text = status()
            print(text)
            if profile == "scale":
                scale_ok, scale_text = scale.status()
                print(scale_text)
                ok = ok and scale_ok
            return 0 if ok else 1
        else:
            if not supervisor_running():
                raise NativeError("native run is not running")
            out = ctl(args.cmd, args.name)
            print(out.stdout.rstrip())
            return out.returncode
    except NativeError as exc:
        print(f"native: {exc}", file=sys.stderr)
        return 1
    return 0
