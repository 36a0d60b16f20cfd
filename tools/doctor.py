"""Preflight for running the compose stack on this host: one PASS/FAIL line per check.

    python -m tools.doctor [--staging | -f FILE ... [--profile P ...]] [--root DIR]

`make up` runs it before starting the compose stack and stops on a FAIL. Checks the
Docker engine and Compose versions, memory against the stack's limits, free disk on
Docker's data root against the Elasticsearch disk watermarks compose sets,
vm.max_map_count, that the published ports are free (or held by this stack), which
kind of host this is (Linux, Docker Desktop, WSL, rootless) and whether
node-exporter's mount propagation works there, that cAdvisor's Docker root and
socket are the engine's, that the secrets exist, and that every config the
containers mount is readable by their users. A failing line says how to fix it.
Exit status 1 when any check fails. Runs anywhere: without a Docker engine it says
so and still checks the rest.

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

    def line(self) -> str:
        status = "PASS" if self.ok else "FAIL"
        text = f"{status}  {self.name}: {self.detail}"
        return text if self.ok or not self.fix else f"{text} -> fix: {self.fix}"


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


def check_docker(docker: str | None) -> tuple[Result, dict[str, Any]]:
    if docker is None:
        return Result(
            "docker engine",
            False,
            "docker CLI not found",
            "install Docker Engine >= 24 (https://docs.docker.com/engine/install/)",
        ), {}
    proc = _run([docker, "info", "--format", "{{json .}}"])
    if proc is None or proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no answer"])[-1] if proc else "timed out"
        return Result(
            "docker engine",
            False,
            f"no Docker engine reachable ({why})",
            "start it (sudo systemctl start docker) and make sure this user may use it "
            "(docker group or DOCKER_HOST); `make up` falls back to the native run meanwhile",
        ), {}
    info = json.loads(proc.stdout or "{}")
    version = _version(str(info.get("ServerVersion", ""))) or (0,)
    ok = version >= MIN_DOCKER
    return Result(
        "docker engine",
        ok,
        f"server {_fmt(version)} (need >= {_fmt(MIN_DOCKER)})",
        "upgrade Docker Engine",
    ), info


def check_compose(docker: str | None, root: Path) -> Result:
    """The Compose plugin, else the standalone build `make up` falls back to (COMPOSE_BIN
    in the Makefile)."""
    standalone = root / ".tools" / "bin" / "docker-compose"
    found = str(standalone) if standalone.exists() else shutil.which("docker-compose")
    candidates = [("plugin", [docker, "compose"], "upgrade the docker-compose-plugin package")]
    if found:
        candidates.append(
            (f"standalone {found}", [found], "install the docker-compose-plugin package")
        )
    for what, cmd, fix in candidates:
        proc = _run([*cmd, "version", "--short"]) if cmd[0] else None
        if proc is not None and proc.returncode == 0:
            version = _version(proc.stdout) or (0,)
            return Result(
                "docker compose",
                version >= MIN_COMPOSE,
                f"{what} {_fmt(version)} (need >= {_fmt(MIN_COMPOSE)})",
                fix,
            )
    return Result(
        "docker compose",
        False,
        "neither the `docker compose` plugin nor a standalone docker-compose",
        "install the docker-compose-plugin package (Compose >= 2.20)",
    )


# --- what the stack asks of the host -----------------------------------------------------


def render(root: Path, files: list[str], profiles: list[str]) -> dict[str, Any] | str:
    """The stack as Compose resolves it, or why it could not be rendered."""
    candidates = [["docker", "compose"], [str(root / ".tools" / "bin" / "docker-compose")]]
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    error = "no Compose CLI found to render it"
    for binary in candidates:
        cmd = [*binary, "--project-directory", str(root)]
        for f in files:
            cmd += ["-f", str(root / f)]
        for p in profiles:
            cmd += ["--profile", p]
        proc = _run([*cmd, "config", "--format", "json"], timeout=60)
        if proc is not None and proc.returncode == 0:
            return json.loads(proc.stdout)
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
    bind = _bind(cfg, "node-exporter", "/host")
    if not bind:
        return Result("node-exporter mounts", True, "node-exporter does not mount the host root")
    mode = (bind.get("bind") or {}).get("propagation") or "rprivate"
    kind = host_kind(host)
    possible = kind == "linux" and root_is_shared(host.mountinfo)
    if mode in ("rslave", "slave", "rshared", "shared") and not possible:
        why = {
            "docker-desktop": "Docker Desktop",
            "wsl": "WSL",
            "rootless": "rootless Docker",
        }.get(kind, "a host whose / is not a shared mount")
        return Result(
            "node-exporter mounts",
            False,
            f"/ is mounted with propagation {mode}, which fails on {why} "
            "(path / is not a shared or slave mount)",
            "remove HOST_ROOT_PROPAGATION from .env (rprivate, the default, works everywhere)",
        )
    note = (
        "; HOST_ROOT_PROPAGATION=rslave in .env would also show filesystems mounted later"
        if possible and mode == "rprivate"
        else ""
    )
    return Result("node-exporter mounts", True, f"/ with propagation {mode}{note}")


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


def mounted_paths(cfg: Mapping[str, Any], root: Path) -> list[Path]:
    paths = set()
    for svc in cfg.get("services", {}).values():
        for vol in svc.get("volumes") or []:
            if vol.get("type") == "bind" and Path(vol["source"]).is_relative_to(root):
                paths.add(Path(vol["source"]))
    for secret in (cfg.get("secrets") or {}).values():
        if secret.get("file"):
            paths.add(Path(secret["file"]))
    return sorted(paths)


def check_secrets(paths: list[Path], root: Path) -> Result:
    missing = [str(p.relative_to(root)) for p in paths if p.is_relative_to(root / "secrets")]
    missing = [m for m in missing if not (root / m).exists()]
    if missing:
        return Result(
            "secrets",
            False,
            f"missing {', '.join(missing)}",
            "make secrets (random values; or write your own into those files first)",
        )
    return Result("secrets", True, "every secret file the stack mounts exists")


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


def run_checks(
    root: Path, files: list[str], profiles: list[str], host: Host | None = None
) -> list[Result]:
    docker = shutil.which("docker")
    engine, info = check_docker(docker)
    results = [engine, check_compose(docker, root)]
    cfg = render(root, files, profiles)
    if isinstance(cfg, str):
        results.append(
            Result(
                "compose config",
                False,
                f"{' + '.join(files)} does not render: {cfg}",
                "install the Compose plugin, or correct the file named in the error",
            )
        )
        return results
    if host is None:
        host = Host(info=info, own_ports=own_ports(docker, str(cfg.get("name") or "")))
    results.append(Result("compose config", True, f"{' + '.join(files)} renders"))
    results += host_checks(cfg, host, root)
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
    args = parser.parse_args(argv)
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
    results = run_checks(root, files, profiles)
    for r in results:
        print(r.line())
    failed = sum(not r.ok for r in results)
    print(f"doctor: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
