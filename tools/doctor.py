"""Preflight for running the compose stack on this host: one PASS/FAIL line per check.

    python -m tools.doctor [--staging | -f FILE ... [--profile P ...]] [--root DIR]

`make up` runs it before starting the compose stack and stops on a FAIL. Checks the
Docker engine and Compose versions, memory against the stack's limits, free disk on
Docker's data root against the Elasticsearch disk watermarks compose sets,
vm.max_map_count, that the published ports are free (or held by this stack), which
kind of host this is (Linux, Docker Desktop, WSL, rootless) and whether
node-exporter's mount propagation works there, that cAdvisor's Docker root and
socket are the engine's, that the secrets exist and are not empty, and that every
config the containers mount is readable by their users. A failing line says how to fix
it. A check that cannot run because an earlier one failed (no engine to ask, no Compose
to render the stack) is a SKIP line naming that cause, not a second FAIL with a wrong
fix. Exit status 1 when any check fails. Runs anywhere: without a Docker engine it says
so and still checks the rest.

    python -m tools.doctor --engine    # only the engine line (what `make up` asks first)

Every input comes through `Host` (docker info, /proc files, disk usage, the ports
this stack already holds), so the checks are tested without Docker.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MIN_DOCKER = (24, 0)
# depends_on.required (exporters of optional demo services) needs Compose 2.20.
MIN_COMPOSE = (2, 20)
MIN_MAX_MAP_COUNT = 262144
# Elasticsearch's own defaults, used when compose sets no watermark: no new shards
# above 85 % disk use (low), none at all above 90 % (high), indices read-only at 95 %.
ES_DEFAULT_WATERMARKS = {"low": "85%", "high": "90%", "flood_stage": "95%"}
WATERMARK_KEY = "cluster.routing.allocation.disk.watermark."
# Room for the stack's data beside the watermark: Prometheus keeps up to 5 GB
# (--storage.tsdb.retention.size), logs and traces the rest.
MIN_FREE_DISK = 10 * 1024**3
DEFAULT_DOCKER_ROOT = "/var/lib/docker"
DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"
# Room for the kernel and the Docker daemon beside the containers. The limits are
# ceilings, not reservations: the stack idles far below them.
MEMORY_HEADROOM = 256 * 1024**2


@dataclass
class Result:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    skipped: bool = False  # not checked: an earlier FAIL (named in detail) prevents it

    def line(self) -> str:
        status = "SKIP" if self.skipped else "PASS" if self.ok else "FAIL"
        text = f"{status}  {self.name}: {self.detail}"
        return text if self.ok or not self.fix else f"{text} -> fix: {self.fix}"


def skipped(name: str, cause: str) -> Result:
    return Result(name, True, f"not checked: {cause}", skipped=True)


def _run(cmd: list[str], timeout: float = 15) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _version(text: str) -> tuple[int, ...] | None:
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(g) for g in m.groups() if g is not None) if m else None


def _fmt(v: Iterable[int]) -> str:
    return ".".join(map(str, v))


def _gib(n: float) -> str:
    return f"{n / 1024**3:.1f} GiB"


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


@dataclass
class Host:
    """What the checks look at; the defaults read this machine."""

    info: dict[str, Any] = field(default_factory=dict)  # `docker info` JSON, {} = no engine
    meminfo: str | None = field(default_factory=lambda: _read("/proc/meminfo"))
    max_map_count: str | None = field(default_factory=lambda: _read("/proc/sys/vm/max_map_count"))
    mountinfo: str | None = field(default_factory=lambda: _read("/proc/1/mountinfo"))
    proc_version: str = field(default_factory=lambda: _read("/proc/version") or "")
    disk_usage: Callable[[Path], Any] = shutil.disk_usage
    own_ports: set[int] = field(default_factory=set)  # published by this stack already


def host_kind(host: Host) -> str:
    """docker-desktop | rootless | wsl | linux | unknown (no engine)."""
    info = host.info
    if not info:
        return "unknown"
    if "docker desktop" in str(info.get("OperatingSystem", "")).lower():
        return "docker-desktop"
    if any("rootless" in str(o) for o in info.get("SecurityOptions") or []):
        return "rootless"
    kernel = f"{info.get('KernelVersion', '')} {host.proc_version}".lower()
    if "microsoft" in kernel or "wsl" in kernel:
        return "wsl"
    return "linux"


HOST_NAMES = {
    "docker-desktop": "Docker Desktop (the engine runs in a VM)",
    "rootless": "rootless Docker (the engine runs as your user)",
    "wsl": "WSL 2",
    "linux": "Linux with a rootful engine",
    "unknown": "unknown (no engine to ask)",
}


def root_is_shared(mountinfo: str | None) -> bool:
    """True when `/` is a shared mount in the engine's namespace (rslave needs it)."""
    for line in (mountinfo or "").splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[4] == "/":
            optional = fields[6 : fields.index("-")] if "-" in fields else []
            return any(f.startswith("shared:") for f in optional)
    return False


# --- Docker and Compose ----------------------------------------------------------------


ENGINE_FIX = (
    "start it (sudo systemctl start docker) and make sure this user may use it (docker "
    "group or DOCKER_HOST); or run the bundle without Docker: make up-native"
)


def engine_fix(message: str) -> str:
    """The fix for docker's own message about an engine it cannot reach."""
    text = message.lower()
    if "permission denied" in text:
        return ("let this user use the engine's socket: sudo usermod -aG docker $USER, then "
                "log out and in again (or use rootless Docker); or run the bundle without "
                "Docker: make up-native")
    if "is the docker daemon running" in text or "no such file" in text:
        return ("start the engine: sudo systemctl start docker (Docker Desktop: start the "
                "app); or run the bundle without Docker: make up-native")
    return ENGINE_FIX


def check_docker(docker: str | None) -> tuple[Result, dict[str, Any]]:
    if docker is None:
        return Result(
            "docker engine",
            False,
            "docker CLI not found",
            "install Docker Engine >= 24 (https://docs.docker.com/engine/install/); or run "
            "the bundle without Docker: make up-native",
        ), {}
    proc = _run([docker, "info", "--format", "{{json .}}"])
    info: dict[str, Any] = {}
    if proc is not None and proc.returncode == 0:
        try:
            info = json.loads(proc.stdout or "{}")
        except ValueError:
            info = {}
    # docker's own message: on stderr with a non-zero exit, or (some CLI versions) in the
    # JSON's ServerErrors with exit 0 and an empty ServerVersion.
    errors = [str(e) for e in (info.get("ServerErrors") or []) if e] if info else []
    if proc is None or proc.returncode != 0 or errors or not info.get("ServerVersion"):
        if proc is None:
            why = "`docker info` did not answer in 15 s"
        else:
            lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
            why = (errors or lines or ["no answer"])[-1]
        return Result(
            "docker engine", False, f"no Docker engine reachable: {why}", engine_fix(why)
        ), {}
    version = _version(str(info.get("ServerVersion", ""))) or (0,)
    ok = version >= MIN_DOCKER
    return Result(
        "docker engine",
        ok,
        f"server {_fmt(version)} (need >= {_fmt(MIN_DOCKER)})",
        "upgrade Docker Engine",
    ), info


def check_compose(docker: str | None, root: Path) -> tuple[Result, list[str] | None]:
    """The Compose plugin, else the standalone build `make up` falls back to (COMPOSE_BIN
    in the Makefile); and the command that works, for rendering the stack."""
    standalone = root / ".tools" / "bin" / "docker-compose"
    found = str(standalone) if standalone.exists() else shutil.which("docker-compose")
    candidates = []
    if docker:
        candidates.append(
            ("plugin", [docker, "compose"], "upgrade the docker-compose-plugin package")
        )
    if found:
        candidates.append(
            (f"standalone {found}", [found], "install the docker-compose-plugin package")
        )
    for what, cmd, fix in candidates:
        proc = _run([*cmd, "version", "--short"])
        if proc is not None and proc.returncode == 0:
            version = _version(proc.stdout) or (0,)
            return Result(
                "docker compose",
                version >= MIN_COMPOSE,
                f"{what} {_fmt(version)} (need >= {_fmt(MIN_COMPOSE)})",
                fix,
            ), cmd
    # Without the plugin, `docker compose` is an unknown command to docker ("unknown
    # flag: --short"): say what is missing, not docker's parse error.
    return Result(
        "docker compose",
        False,
        "neither the `docker compose` plugin nor a standalone docker-compose is installed",
        "install the docker-compose-plugin package (Compose >= 2.20)",
    ), None


# --- what the stack asks of the host -----------------------------------------------------


def render(root: Path, files: list[str], profiles: list[str],
           compose: list[str] | None = None) -> dict[str, Any] | str:
    """The stack as Compose resolves it, or why it could not be rendered."""
    candidates = [compose] if compose else [["docker", "compose"],
                                            [str(root / ".tools" / "bin" / "docker-compose")]]
    error = "no Compose CLI found to render it"
    for binary in candidates:
        cmd = [*binary, "--project-directory", str(root)]
        for f in files:
            cmd += ["-f", str(root / f)]
        for p in profiles:
            cmd += ["--profile", p]
        proc = _run([*cmd, "config", "--format", "json"], timeout=60)
        if proc is not None and proc.returncode == 0:
            try:
                return json.loads(proc.stdout)
            except ValueError:
                return "Compose printed something that is not JSON"
        if proc is not None and "unknown command" not in proc.stderr:
            error = (proc.stderr.strip().splitlines() or ["failed"])[-1]
    return error


def memory_limits(cfg: Mapping[str, Any]) -> int:
    """Sum of the long-running services' limits (one-shot jobs exit at start-up)."""
    total = 0
    for svc in cfg.get("services", {}).values():
        if svc.get("restart") in (None, "no"):
            continue
        limits = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        total += int(limits.get("memory") or 0)
    return total


def check_memory(cfg: Mapping[str, Any], meminfo: str | None, engine_total: int = 0) -> Result:
    """The engine's memory (`docker info` MemTotal: the VM's on Docker Desktop), else
    /proc/meminfo's."""
    fields = {k: int(v) * 1024 for k, v in re.findall(r"^(\w+):\s+(\d+) kB", meminfo or "", re.M)}
    total = engine_total or fields.get("MemTotal", 0)
    need = memory_limits(cfg)
    where = "engine" if engine_total else "host"
    return Result(
        "memory",
        total >= need + MEMORY_HEADROOM,
        f"{_gib(total)} total ({where}); "
        f"container limits add up to {_gib(need)} (+{_gib(MEMORY_HEADROOM)} headroom)",
        "give the VM more memory, or lower the limits (deploy.resources) and ES_JAVA_OPTS "
        "together, or run without the demo (make up PROFILES=)",
    )


def watermarks(cfg: Mapping[str, Any]) -> dict[str, str]:
    """Elasticsearch's disk watermarks as compose sets them (its defaults otherwise)."""
    env = cfg.get("services", {}).get("elasticsearch", {}).get("environment") or {}
    return {k: str(env.get(WATERMARK_KEY + k) or v) for k, v in ES_DEFAULT_WATERMARKS.items()}


_BYTES = re.compile(r"^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb)?$", re.I)
_BYTE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}


def required_free(watermark: str, total: int) -> int:
    """Free bytes a watermark demands: "90%" or "0.9" (share used) or "1gb" (free)."""
    text = watermark.strip().lower()
    if text.endswith("%"):
        return round(total * (100 - float(text[:-1])) / 100)
    m = _BYTES.match(text)
    if m is None:
        raise ValueError(f"unknown watermark {watermark!r}")
    if m.group(2) is None and float(m.group(1)) <= 1:
        return round(total * (1 - float(m.group(1))))
    return int(float(m.group(1)) * _BYTE_UNITS[(m.group(2) or "b").lower()])


def check_disk(path: Path, marks: Mapping[str, str], usage: Any, kind: str = "linux") -> Result:
    if kind == "docker-desktop":
        return Result(
            "disk",
            True,
            "Docker Desktop keeps images and volumes in its VM's disk, not visible here: "
            f"keep >= {_gib(MIN_FREE_DISK)} free there (Settings > Resources > Disk usage limit)",
        )
    free, total = usage.free, usage.total
    low, high = (required_free(marks[k], total) for k in ("low", "high"))
    need = max(MIN_FREE_DISK, low)
    return Result(
        "disk",
        free >= need,
        f"{path}: {_gib(free)} free of {_gib(total)}; Elasticsearch watermarks low "
        f"{marks['low']}, high {marks['high']} (no new primaries under {_gib(high)} free); "
        f"need >= {_gib(need)} free",
        "free space on the disk of Docker's data root or move the data-root to a larger "
        "disk (a laptop disk above the watermarks leaves the first log index unassigned "
        "and Elasticsearch never turns healthy)",
    )


def check_max_map_count(value_text: str | None, kind: str = "linux") -> Result:
    fix = (
        f"sudo sysctl -w vm.max_map_count={MIN_MAX_MAP_COUNT} and persist it: echo "
        f"'vm.max_map_count={MIN_MAX_MAP_COUNT}' | sudo tee /etc/sysctl.d/99-elasticsearch.conf"
    )
    if value_text is None and kind == "docker-desktop":
        return Result(
            "vm.max_map_count",
            True,
            "the Docker Desktop VM's value is not visible here (Elasticsearch logs "
            "`vm.max_map_count [65530] is too low` if it is)",
        )
    if value_text is None:
        return Result("vm.max_map_count", False, "cannot read /proc/sys/vm/max_map_count", fix)
    value = int(value_text.strip())
    return Result(
        "vm.max_map_count",
        value >= MIN_MAX_MAP_COUNT,
        f"{value} (Elasticsearch needs >= {MIN_MAX_MAP_COUNT})",
        fix,
    )


def published_ports(cfg: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    out = []
    for name, svc in sorted(cfg.get("services", {}).items()):
        for port in svc.get("ports") or []:
            if port.get("published"):
                out.append((name, port.get("host_ip") or "0.0.0.0", int(port["published"])))
    return out


def port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # As docker-proxy and every Go server bind: a connection to the port that closed in
        # the last minute (TIME_WAIT, e.g. after `make down` or a backup's API calls) does
        # not hold it; only a listener does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(ports: list[tuple[str, str, int]], own: set[int] | None = None) -> Result:
    """Published ports must be free, unless this stack's running containers hold them."""
    own = own or set()
    busy = [
        f"{host}:{port} ({name})"
        for name, host, port in ports
        if port not in own and not port_free(host, port)
    ]
    if busy:
        return Result(
            "ports",
            False,
            f"in use: {', '.join(busy)}",
            "stop what listens there (ss -ltnp), e.g. a running native run: make down-native",
        )
    held = f", {len(own & {p for _, _, p in ports})} held by this stack" if own else ""
    return Result("ports", True, f"{len(ports)} published ports free{held}")


def own_ports(docker: str | None, project: str) -> set[int]:
    """Host ports the running containers of this compose project publish."""
    if docker is None:
        return set()
    proc = _run(
        [
            docker,
            "ps",
            "--filter",
            f"label=com.docker.compose.project={project}",
            "--format",
            "{{.Ports}}",
        ]
    )
    if proc is None or proc.returncode != 0:
        return set()
    return {int(p) for p in re.findall(r":(\d+)->", proc.stdout)}


# --- the kind of host: node-exporter's propagation, cAdvisor's Docker root ----------------


def _bind(cfg: Mapping[str, Any], service: str, target: str) -> dict[str, Any]:
    svc = cfg.get("services", {}).get(service) or {}
    for vol in svc.get("volumes") or []:
        if vol.get("target") == target:
            return vol
    return {}


def docker_root_bind(cfg: Mapping[str, Any]) -> dict[str, Any]:
    svc = cfg.get("services", {}).get("cadvisor") or {}
    for vol in svc.get("volumes") or []:
        if vol.get("type") == "bind" and vol.get("source") == vol.get("target") != "/sys":
            return vol
    return {}


def check_host(host: Host) -> Result:
    kind = host_kind(host)
    shared = root_is_shared(host.mountinfo) if kind in ("linux", "unknown") else False
    extra = "; / is a shared mount" if shared else ""
    return Result("host", True, f"{HOST_NAMES[kind]}{extra}")


def check_propagation(cfg: Mapping[str, Any], host: Host) -> Result:
    """node-exporter's bind of / must leave the propagation to the engine: it refuses any
    mode but rslave/rshared for a bind that contains its data root (moby@v28.5.2
    daemon/volumes_linux.go), and rslave fails where / is not a shared or slave mount."""
    bind = _bind(cfg, "node-exporter", "/host")
    if not bind:
        return Result("node-exporter mounts", True, "node-exporter does not mount the host root")
    mode = (bind.get("bind") or {}).get("propagation")
    if mode:
        return Result(
            "node-exporter mounts",
            False,
            f"/ is bound with propagation {mode}: the engine refuses rprivate for a bind that "
            "contains its data root, and rslave where / is not a shared mount",
            "remove the propagation from node-exporter's bind of / (the engine then picks "
            "rslave where / is shared, private elsewhere)",
        )
    shared = host_kind(host) == "linux" and root_is_shared(host.mountinfo)
    how = "rslave: / is shared" if shared else "private: / is not a shared mount"
    return Result("node-exporter mounts", True, f"/ with the engine's propagation ({how})")


def check_docker_root(cfg: Mapping[str, Any], host: Host) -> Result:
    bind = docker_root_bind(cfg)
    source = str(bind.get("source") or DEFAULT_DOCKER_ROOT)
    engine_root = str(host.info.get("DockerRootDir") or "")
    if engine_root and engine_root != source:
        return Result(
            "docker root",
            False,
            f"cAdvisor mounts {source}, but the engine keeps its data in {engine_root}",
            f"set DOCKER_ROOT_DIR={engine_root} in .env",
        )
    if host_kind(host) == "docker-desktop":
        return Result("docker root", True, f"{source} (inside the Docker Desktop VM)")
    if not Path(source).is_dir():
        return Result(
            "docker root",
            False,
            f"{source} does not exist here (snap, rootless Docker or a custom data-root?)",
            "set DOCKER_ROOT_DIR in .env to `docker info --format '{{.DockerRootDir}}'`",
        )
    return Result("docker root", True, f"{source} is the engine's data root")


def check_docker_socket(cfg: Mapping[str, Any], host: Host) -> Result:
    bind = _bind(cfg, "cadvisor", "/var/run/docker.sock")
    source = str(bind.get("source") or DEFAULT_DOCKER_SOCKET)
    if host_kind(host) == "docker-desktop":
        return Result("docker socket", True, f"{source} (provided by Docker Desktop)")
    if not Path(source).exists():
        fix = "set DOCKER_SOCKET in .env to the engine's socket"
        if host_kind(host) == "rootless":
            fix = "set DOCKER_SOCKET=$XDG_RUNTIME_DIR/docker.sock in .env (rootless Docker)"
        return Result("docker socket", False, f"{source} does not exist here", fix)
    return Result("docker socket", True, f"{source} exists")


def _reads_anything(svc: Mapping[str, Any]) -> bool:
    """Root with CAP_DAC_READ_SEARCH (volume-init, cAdvisor) reads files whatever their mode."""
    root_user = str(svc.get("user") or "0").split(":")[0] in ("0", "root")
    return root_user and "DAC_READ_SEARCH" in (svc.get("cap_add") or [])


def mounted_paths(cfg: Mapping[str, Any], root: Path) -> list[Path]:
    """The repository's files that containers read through bind mounts or secrets."""
    paths = set()
    for svc in cfg.get("services", {}).values():
        if _reads_anything(svc):
            continue
        for vol in svc.get("volumes") or []:
            if vol.get("type") == "bind" and Path(vol["source"]).is_relative_to(root):
                paths.add(Path(vol["source"]))
    for secret in (cfg.get("secrets") or {}).values():
        if secret.get("file"):
            paths.add(Path(secret["file"]))
    return sorted(paths)


def _empty(path: Path) -> bool:
    try:
        return not path.read_bytes().strip()
    except OSError:
        return False


def check_secrets(paths: list[Path], root: Path, can_hash: bool | None = None) -> Result:
    """Every secret file the stack mounts exists and is not empty. The staging web configs
    need bcrypt to be made: without it, `make secrets` cannot help and the fix says so."""
    rels = [str(p.relative_to(root)) for p in paths if p.is_relative_to(root / "secrets")]
    missing = [m for m in rels if not (root / m).exists()]
    empty = [m for m in rels if (root / m).is_file() and _empty(root / m)]
    if missing:
        hashed = [m for m in missing if m.endswith("web-config.yml")]
        if hashed and (can_hash is None and not _bcrypt_available() or can_hash is False):
            return Result(
                "secrets",
                False,
                f"missing {', '.join(missing)}: the web configs need a bcrypt hash and this "
                "host has no bcrypt",
                "apt install python3-bcrypt (or apache2-utils for htpasswd), then make secrets",
            )
        return Result(
            "secrets",
            False,
            f"missing {', '.join(missing)}",
            "make secrets (random values; or write your own into those files first)",
        )
    if empty:
        return Result(
            "secrets",
            False,
            f"empty: {', '.join(empty)} (a container would start with an empty password)",
            "delete them and run make secrets (new random values), or write the values in",
        )
    return Result("secrets", True, "every secret file the stack mounts exists and is not empty")


def _bcrypt_available() -> bool:
    try:
        from tools.secrets import bcrypt_available
    except ImportError:
        return False
    return bcrypt_available()


def _unreadable(path: Path) -> list[Path]:
    """Paths containers running as other users cannot read (need o+r, dirs o+rx)."""
    bad = []
    todo = [path]
    while todo:
        p = todo.pop()
        try:
            mode = p.stat().st_mode
        except OSError:
            continue
        if stat.S_ISDIR(mode):
            if mode & 0o005 != 0o005:
                bad.append(p)
            todo.extend(p.iterdir())
        elif mode & 0o004 == 0:
            bad.append(p)
    return bad


def check_ownership(paths: list[Path], root: Path) -> Result:
    """Configs the containers read as their own users. secrets/ is left out: only the
    root volume-init job reads it (with CAP_DAC_READ_SEARCH), so it stays 0700/0600."""
    bad: list[Path] = []
    paths = [p for p in paths if not p.is_relative_to(root / "secrets")]
    for p in paths:
        bad += _unreadable(p)
    if bad:
        shown = ", ".join(str(p.relative_to(root)) for p in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        return Result(
            "file permissions",
            False,
            f"not readable by the containers' users: {shown}{more}",
            "chmod -R o+rX on them (a umask of 077 at clone time causes this); secrets/ stays 0700",
        )
    return Result(
        "file permissions",
        True,
        f"{len(paths)} mounted configs readable by the containers' users "
        "(data lives in named volumes owned by each image's user)",
    )


# --- main -------------------------------------------------------------------------------------


CFG_CHECKS = ("memory", "disk", "ports", "node-exporter mounts", "docker root",
              "docker socket", "secrets", "file permissions")
ENGINE_CHECKS = ("host", "node-exporter mounts", "docker root", "docker socket")


def run_checks(
    root: Path, files: list[str], profiles: list[str], host: Host | None = None
) -> list[Result]:
    docker = shutil.which("docker")
    engine, info = check_docker(docker)
    compose_result, compose = check_compose(docker, root)
    results = [engine, compose_result]
    if compose is None:
        cause = "needs Compose to render the stack (see `docker compose` above)"
        results.append(skipped("compose config", cause))
        results.append(check_max_map_count(_read("/proc/sys/vm/max_map_count")))
        return results + [skipped(name, cause) for name in CFG_CHECKS]
    cfg = render(root, files, profiles, compose)
    if isinstance(cfg, str):
        results.append(
            Result(
                "compose config",
                False,
                f"{' + '.join(files)} does not render: {cfg}",
                "correct the file and line named in the error",
            )
        )
        cause = "needs the compose config (see `compose config` above)"
        results.append(check_max_map_count(_read("/proc/sys/vm/max_map_count")))
        return results + [skipped(name, cause) for name in CFG_CHECKS]
    if host is None:
        host = Host(info=info, own_ports=own_ports(docker, str(cfg.get("name") or "")))
    results.append(Result("compose config", True, f"{' + '.join(files)} renders"))
    checks = host_checks(cfg, host, root)
    if not host.info:
        # Nothing to ask about the kind of host, its data root or socket: those lines
        # would repeat the engine's FAIL with fixes that do not apply.
        cause = "needs the Docker engine (see `docker engine` above)"
        checks = [skipped(r.name, cause) if r.name in ENGINE_CHECKS else r for r in checks]
    results += checks
    paths = mounted_paths(cfg, root)
    results.append(check_secrets(paths, root))
    results.append(check_ownership([p for p in paths if p.exists()], root))
    return results


def host_checks(cfg: Mapping[str, Any], host: Host, root: Path) -> list[Result]:
    """Everything that depends on the host, from `host` alone (tests fake it)."""
    kind = host_kind(host)
    data_root = Path(host.info.get("DockerRootDir") or DEFAULT_DOCKER_ROOT)
    disk_path = data_root if data_root.exists() else root
    return [
        check_memory(cfg, host.meminfo, int(host.info.get("MemTotal") or 0)),
        check_disk(disk_path, watermarks(cfg), host.disk_usage(disk_path), kind),
        check_max_map_count(host.max_map_count, kind),
        check_ports(published_ports(cfg), host.own_ports),
        check_host(host),
        check_propagation(cfg, host),
        check_docker_root(cfg, host),
        check_docker_socket(cfg, host),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.doctor", description=__doc__)
    parser.add_argument("--root", type=Path, default=REPO, help="bundle directory")
    parser.add_argument(
        "--staging",
        action="store_true",
        help="check compose.yaml + compose.staging.yaml without the demo profile",
    )
    parser.add_argument(
        "-f", "--file", action="append", dest="files", help="compose file (as make up uses)"
    )
    parser.add_argument("--profile", action="append", dest="profiles", help="compose profile")
    parser.add_argument("--engine", action="store_true",
                        help="check only that a Docker engine answers (make up asks this first)")
    args = parser.parse_args(argv)
    if args.engine:
        engine, _ = check_docker(shutil.which("docker"))
        print(engine.line())
        return 0 if engine.ok else 1
    root = args.root.resolve()
    if not (root / "compose.yaml").is_file():
        print(f"doctor: {root / 'compose.yaml'}: not found", file=sys.stderr)
        return 2
    if args.staging:
        files, profiles = ["compose.yaml", "compose.staging.yaml"], []
    elif args.files:
        files, profiles = args.files, args.profiles or []
    else:
        files, profiles = ["compose.yaml"], os.environ.get("PROFILES", "demo").split()
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        print(f"doctor: {root / missing[0]}: not found", file=sys.stderr)
        return 2
    results = run_checks(root, files, profiles)
    for r in results:
        print(r.line())
    failed = sum(not r.ok for r in results)
    skips = sum(r.skipped for r in results)
    extra = f", {skips} skipped (see the FAIL line each names)" if skips else ""
    print(f"doctor: {len(results) - failed - skips} passed, {failed} failed{extra}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
