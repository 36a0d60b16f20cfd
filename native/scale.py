"""The native scale profile: highly available alerting and long-term storage on loopback.

    python -m native up --profile scale     the base run, then this profile next to it
    python -m native status --profile scale
    python -m native down                   stops both

Real binaries only (Debian's Prometheus, Alertmanager, node-exporter, victoria-metrics and
vmauth from .tools/bin). Everything binds to 127.0.0.1 on ports of its own, and its state lives
in .run/scale/ with its own supervisord, so the profile and the base run (and their test
suites) can run at the same time:

    process                port(s)        what
    webhook-sink           5101           records the cluster's notifications
    alertmanager-1..3      9193/9293/9393 the Alertmanager cluster; gossip on 9194/9294/9394
    victoria-metrics       8428           single-node long-term store (dedup of the pair)
    vmauth                 8427, 8426     remote hosts' only way in: basic auth, write only;
                                          its own /metrics, /health and pprof on 8426 only
    prometheus-a, -b       9190, 9290     the HA pair (prometheus/prometheus-ha.yml)
    remote-node-exporter   9101           stand-in for a second host behind NAT ...
    prometheus-agent       9390           ... whose agent-mode Prometheus pushes to vmauth

    .run/scale/supervisord.conf, supervisor.sock, logs/<process>.log
    .run/scale/secrets/            basic_auth_password, agent_remote_write_password (random)
    .run/scale/alertmanager-N/     alertmanager.yml and templates (links), secrets/ (sink URLs),
                                   data/ (silences and notification log, replicated by gossip)
    .run/scale/prometheus-{a,b}/   prometheus.yml (prometheus-ha.yml with the native store URL),
                                   scrape-configs.yml and rules (links), inventory/ (links:
                                   prometheus/targets/native/*.yml, then native/scale/*.yml
                                   over them), data/
    .run/scale/agent/              agent.yml (prometheus/agent.yml with the native vmauth URL),
                                   inventory/ (prometheus/targets/native/remote/), data/ (WAL)
    .run/scale/victoria-metrics/data/
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import yaml

from native import common
from native.common import HOST, PROMETHEUS_FLAGS, PYTHON, ROOT, TOOLS, Component, NativeError

RUN = common.RUN / "scale"
SECRETS = RUN / "secrets"
SINK_PORT = 5101
SINK_URL = f"http://{HOST}:{SINK_PORT}"
# Alertmanager replica -> (web port, gossip port).
ALERTMANAGERS = {"alertmanager-1": (9193, 9194), "alertmanager-2": (9293, 9294),
                 "alertmanager-3": (9393, 9394)}
# Prometheus replica -> (value of the `replica` external label, port).
PROMETHEUS = {"prometheus-a": ("a", 9190), "prometheus-b": ("b", 9290)}
STORE_PORT = 8428
VMAUTH_PORT = 8427
# vmauth's internal API (/health, /metrics, /debug/pprof): never on the port agents reach.
VMAUTH_INTERNAL_PORT = 8426
REMOTE_NODE_PORT = 9101
AGENT_PORT = 9390
# The remote host's name (external label `host`) in alerts and dashboards.
AGENT_HOST = "native-remote"
# Where the native run writes what compose writes to vminsert / the central vmauth.
STORE_WRITE_URL = f"http://{HOST}:{STORE_PORT}/api/v1/write"
AGENT_WRITE_URL = f"http://{HOST}:{VMAUTH_PORT}/api/v1/write"
# Why 15s: the global scrape and evaluation interval of prometheus.yml, so the store keeps one
# sample per scrape of the pair (VictoriaMetrics: -dedup.minScrapeInterval = scrape_interval).
DEDUP_INTERVAL = "15s"
RETENTION = "1y"
TOOL_NAMES = ("prometheus", "alertmanager", "node-exporter", "victoria-metrics", "vmauth")


def store_flags(data: Path) -> list[str]:
    """The single-node store's flags (compose sets the same on vminsert/vmselect/vmstorage)."""
    return [
        f"-storageDataPath={data}",
        f"-httpListenAddr={HOST}:{STORE_PORT}",
        f"-retentionPeriod={RETENTION}",
        f"-dedup.minScrapeInterval={DEDUP_INTERVAL}",
        f"-relabelConfig={ROOT / 'victoriametrics/relabel.yml'}",
    ]


def components(flags: Mapping[str, Sequence[str]] | None = None) -> list[Component]:
    """Every process of the scale profile, in start order. `flags` adds command-line flags
    per process (tests shorten intervals of their own processes this way)."""
    extra = {name: " ".join(args) for name, args in (flags or {}).items()}

    def cmd(name: str, command: str) -> str:
        return f"{command} {extra[name]}" if extra.get(name) else command

    comps = [
        Component(
            "webhook-sink", SINK_PORT, "/health",
            cmd("webhook-sink",
                f"{PYTHON} -m apollonia.webhook_sink --host {HOST} --port {SINK_PORT}"),
            "Webhook sink of the scale profile", "/notifications",
        ),
    ]
    gossip = [f"{HOST}:{g}" for _, g in ALERTMANAGERS.values()]
    for name, (port, gport) in ALERTMANAGERS.items():
        peers = " ".join(f"--cluster.peer={p}" for p in gossip if p != f"{HOST}:{gport}")
        comps.append(Component(
            name, port, "/-/ready",
            cmd(name,
                f"{TOOLS}/alertmanager --config.file={RUN}/{name}/alertmanager.yml"
                f" --storage.path={RUN}/{name}/data --web.listen-address={HOST}:{port}"
                f" --web.external-url=http://{HOST}:{port}"
                f" --cluster.listen-address={HOST}:{gport} --cluster.peer-name={name} {peers}"),
            f"Alertmanager replica {name[-1]} (gossip {gport})",
            # url_file secrets resolve against the working directory (docs/native.md).
            cwd=RUN / name,
        ))
    comps += [
        Component(
            "victoria-metrics", STORE_PORT, "/health",
            cmd("victoria-metrics", " ".join(
                [f"{TOOLS}/victoria-metrics", *store_flags(RUN / "victoria-metrics/data")])),
            "VictoriaMetrics (long-term store, vmui)", "/vmui/",
        ),
        Component(
            # The password reaches vmauth's environment from its file, never a command line.
            "vmauth", VMAUTH_INTERNAL_PORT, "/health",
            cmd("vmauth",
                "sh -c 'AGENT_REMOTE_WRITE_PASSWORD=\"$(cat"
                f" {SECRETS}/agent_remote_write_password)\""
                f" STORE_WRITE_URL=http://{HOST}:{STORE_PORT}/ exec {TOOLS}/vmauth"
                f" -auth.config={ROOT}/victoriametrics/vmauth.yml"
                f" -httpListenAddr={HOST}:{VMAUTH_PORT}"
                f" -httpInternalListenAddr={HOST}:{VMAUTH_INTERNAL_PORT}'"),
            f"vmauth internal API (remote hosts write to :{VMAUTH_PORT})", "/metrics",
        ),
    ]
    for name, (replica, port) in PROMETHEUS.items():
        comps.append(Component(
            name, port, "/-/ready",
            cmd(name,
                f"env PROMETHEUS_REPLICA={replica} {TOOLS}/prometheus"
                f" --config.file={RUN}/{name}/prometheus.yml"
                f" --storage.tsdb.path={RUN}/{name}/data --web.listen-address={HOST}:{port}"
                f" --web.external-url=http://{HOST}:{port} {PROMETHEUS_FLAGS}"),
            f"Prometheus replica {replica}",
        ))
    comps += [
        Component(
            "remote-node-exporter", REMOTE_NODE_PORT, "/metrics",
            cmd("remote-node-exporter",
                f"{TOOLS}/node-exporter --web.listen-address={HOST}:{REMOTE_NODE_PORT}"),
            f"node-exporter of the remote host {AGENT_HOST!r}", "/metrics",
        ),
        Component(
            "prometheus-agent", AGENT_PORT, "/-/ready",
            cmd("prometheus-agent",
                f"env AGENT_HOST={AGENT_HOST} {TOOLS}/prometheus --agent"
                f" --config.file={RUN}/agent/agent.yml --storage.agent.path={RUN}/agent/data"
                f" --web.listen-address={HOST}:{AGENT_PORT}"),
            f"Prometheus agent of {AGENT_HOST!r} (pushes to vmauth)",
        ),
    ]
    return comps


# --- .run/scale/ layout -----------------------------------------------------------------------


def with_remote_write_url(config: Path, url: str) -> str:
    """`config` with the URL of its one remote_write swapped for `url`, nothing else changed.

    The compose configs name compose hosts (vminsert, central-store); natively the same file
    has to write to 127.0.0.1. Only that line differs (tests/scale checks it)."""
    text = config.read_text()
    doc = yaml.safe_load(text)
    writes = doc.get("remote_write") or []
    if len(writes) != 1:
        raise NativeError(f"{config.relative_to(ROOT)}: expected exactly one remote_write")
    old = writes[0]["url"]
    if text.count(f"url: {old}") != 1:
        raise NativeError(f"{config.relative_to(ROOT)}: remote_write url {old} not found once")
    return text.replace(f"url: {old}", f"url: {url}")


def _secret(name: str) -> Path:
    path = SECRETS / name
    if not path.exists():
        SECRETS.mkdir(parents=True, mode=0o700, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path


def _inventory(target: Path, *sources: Path) -> None:
    """A directory of links: every *.yml of each source in turn, later ones replacing earlier."""
    if target.is_symlink() or target.is_file():
        target.unlink()
    target.mkdir(parents=True, exist_ok=True)
    for old in target.iterdir():
        old.unlink()
    for src in sources:
        for path in sorted(src.glob("*.yml")):
            common.link(target / path.name, path)


def prepare() -> None:
    """Create or refresh .run/scale/ from the repo's files."""
    (RUN / "logs").mkdir(parents=True, exist_ok=True)
    (RUN / "victoria-metrics/data").mkdir(parents=True, exist_ok=True)
    _secret("basic_auth_password")
    _secret("agent_remote_write_password")
    for name in ALERTMANAGERS:
        common.prepare_alertmanager(SINK_URL, RUN / name)
    targets = ROOT / "prometheus/targets/native"
    ha = ROOT / "prometheus/prometheus-ha.yml"
    for name in PROMETHEUS:
        base = RUN / name
        (base / "data").mkdir(parents=True, exist_ok=True)
        (base / "prometheus.yml").write_text(with_remote_write_url(ha, STORE_WRITE_URL))
        common.link(base / "scrape-configs.yml", ROOT / "prometheus/scrape-configs.yml")
        common.link(base / "rules", ROOT / "prometheus/rules")
        common.link(base / "secrets", SECRETS)
        _inventory(base / "inventory", targets, targets / "scale")
    agent = RUN / "agent"
    (agent / "data").mkdir(parents=True, exist_ok=True)
    (agent / "agent.yml").write_text(
        with_remote_write_url(ROOT / "prometheus/agent.yml", AGENT_WRITE_URL)
    )
    common.link(agent / "scrape-configs.yml", ROOT / "prometheus/scrape-configs.yml")
    common.link(agent / "secrets", SECRETS)
    _inventory(agent / "inventory", targets / "remote")


# --- process control ---------------------------------------------------------------------------


def running() -> bool:
    return common.supervisor_running(RUN)


def ctl(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return common.ctl(*args, check=check, run=RUN)


def wait_ready(names: Iterable[str] | None = None, timeout: float = 60.0) -> list[str]:
    """Wait until the named processes answer; return the ones that never did."""
    wanted = set(names) if names is not None else None
    pending = [c for c in components() if wanted is None or c.name in wanted]
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = [c for c in pending if not common.ready(c, run=RUN)]
        if pending:
            time.sleep(0.5)
    return [c.name for c in pending]


def log_tail(name: str, lines: int = 30) -> str:
    path = RUN / "logs" / f"{name}.log"
    if not path.exists():
        return f"(no log at {path.relative_to(ROOT)})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def up(flags: Mapping[str, Sequence[str]] | None = None, timeout: float = 60.0) -> None:
    """Start the scale profile (or pick up config changes) and wait until it is ready."""
    for tool in TOOL_NAMES:
        if not (TOOLS / tool).exists():
            raise NativeError(
                f".tools/bin/{tool}: missing (run `make bootstrap` to install the pinned builds)"
            )
    prepare()
    comps = components(flags)
    (RUN / "supervisord.conf").write_text(common.supervisord_conf(comps, run=RUN))
    if running():
        ctl("update")
        ctl("start", "all")
    else:
        busy = [f"{c.name}:{c.port}" for c in comps if c.port and common.port_busy(c.port)]
        busy += [f"{n} gossip:{g}" for n, (_, g) in ALERTMANAGERS.items() if common.port_busy(g)]
        busy += [f"vmauth:{VMAUTH_PORT}"] if common.port_busy(VMAUTH_PORT) else []
        if busy:
            raise NativeError(
                f"ports already in use by something else: {', '.join(busy)} "
                "(stop it, or `python -m native down` if it is an old scale profile)"
            )
        proc = subprocess.run(
            [str(common.SUPERVISORD), "-c", str(RUN / "supervisord.conf")],
            capture_output=True, text=True, cwd=ROOT,
        )
        if proc.returncode != 0:
            raise NativeError(f"supervisord (scale) failed: {proc.stderr.strip() or proc.stdout}")
    missing = wait_ready(timeout=timeout)
    if missing:
        details = "\n".join(
            f"--- {n} (tail of .run/scale/logs/{n}.log)\n{log_tail(n)}" for n in missing
        )
        raise NativeError(f"scale profile not ready after {timeout:.0f}s: {missing}\n{details}")


def down(timeout: float = 60.0) -> bool:
    return common.shutdown(RUN, timeout)


def reset_state() -> None:
    """Forget everything the profile stored (TSDBs, silences, notification logs, the store).
    For tests that need a clean start; the profile must be down."""
    if running():
        raise NativeError("stop the scale profile first")
    if RUN.exists():
        keep = {"secrets", "logs"}
        for path in RUN.iterdir():
            if path.name not in keep and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)


def banner() -> str:
    rows = ["Scale profile is up (state in .run/scale/, logs in .run/scale/logs/):"]
    for comp in components():
        rows.append(f"  {comp.title:<48} http://{HOST}:{comp.port}{comp.ui_path}")
    return "\n".join(rows)


def status() -> tuple[bool, str]:
    if not running():
        return False, "scale profile: not running (`python -m native up --profile scale`)"
    lines = [ctl("status").stdout.rstrip()]
    bad = [c.name for c in components() if not common.ready(c, run=RUN)]
    lines.append("scale profile: all ready" if not bad else f"scale profile not ready: {bad}")
    return not bad, "\n".join(lines)
