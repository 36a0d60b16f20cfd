"""Preflight for running the compose stack on this host: one PASS/FAIL line per check.

    python -m tools.doctor [--staging] [--root DIR]

Checks the Docker engine and Compose versions, memory against the stack's limits,
free disk against Elasticsearch's disk watermarks, vm.max_map_count, that the
published ports are free, that the secrets exist, and that every file the
containers mount is readable by their unprivileged users. A failing line says how
to fix it. Exit status 1 when any check fails. Runs anywhere: without a Docker
engine it says so and still checks the rest.
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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MIN_DOCKER = (24, 0)
# depends_on.required (exporters of optional demo services) needs Compose 2.20.
MIN_COMPOSE = (2, 20)
MIN_MAX_MAP_COUNT = 262144
# Elasticsearch stops allocating shards at 85 % disk use (low watermark) and turns
# indices read-only at 95 % (flood stage); keep well under the first.
ES_LOW_WATERMARK = 0.85
MIN_FREE_DISK = 10 * 1024**3
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
    plugin = _run([docker, "compose", "version", "--short"]) if docker else None
    if plugin is not None and plugin.returncode == 0:
        version = _version(plugin.stdout) or (0,)
        return Result(
            "docker compose",
            version >= MIN_COMPOSE,
            f"plugin {_fmt(version)} (need >= {_fmt(MIN_COMPOSE)})",
            "upgrade the docker-compose-plugin package",
        )
    standalone = root / ".tools" / "bin" / "docker-compose"
    found = str(standalone) if standalone.exists() else shutil.which("docker-compose")
    extra = f"; only the standalone {found} (config checks)" if found else ""
    return Result(
        "docker compose",
        False,
        f"`docker compose` plugin not available{extra}",
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


def check_memory(cfg: Mapping[str, Any], meminfo: str) -> Result:
    fields = {k: int(v) * 1024 for k, v in re.findall(r"^(\w+):\s+(\d+) kB", meminfo, re.M)}
    total = fields.get("MemTotal", 0)
    need = memory_limits(cfg)
    return Result(
        "memory",
        total >= need + MEMORY_HEADROOM,
        f"{_gib(total)} total, {_gib(fields.get('MemAvailable', 0))} available; "
        f"container limits add up to {_gib(need)} (+{_gib(MEMORY_HEADROOM)} headroom)",
        "give the VM more memory, or lower the limits (deploy.resources) and ES_JAVA_OPTS "
        "together, or run without the demo (make up PROFILES=)",
    )


def check_disk(path: Path) -> Result:
    usage = shutil.disk_usage(path)
    used = usage.used / usage.total if usage.total else 1.0
    ok = used < ES_LOW_WATERMARK and usage.free >= MIN_FREE_DISK
    return Result(
        "disk",
        ok,
        f"{path}: {used:.0%} used, {_gib(usage.free)} free (Elasticsearch stops allocating "
        f"at {ES_LOW_WATERMARK:.0%}; need < {ES_LOW_WATERMARK:.0%} and >= {_gib(MIN_FREE_DISK)})",
        "free space on the Docker data disk or move Docker's data-root to a larger one",
    )


def check_max_map_count(value_text: str | None) -> Result:
    fix = (
        f"sudo sysctl -w vm.max_map_count={MIN_MAX_MAP_COUNT} and persist it: echo "
        f"'vm.max_map_count={MIN_MAX_MAP_COUNT}' | sudo tee /etc/sysctl.d/99-elasticsearch.conf"
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


def check_ports(ports: list[tuple[str, str, int]]) -> Result:
    busy = [f"{host}:{port} ({name})" for name, host, port in ports if not port_free(host, port)]
    if busy:
        return Result(
            "ports",
            False,
            f"in use: {', '.join(busy)}",
            "stop what listens there (ss -ltnp) - e.g. a running native run: make down-native - "
            "or, if it is this stack already running, ignore",
        )
    return Result("ports", True, f"{len(ports)} published ports free")


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
    bad: list[Path] = []
    for p in paths:
        bad += _unreadable(p)
    if bad:
        shown = ", ".join(str(p.relative_to(root)) for p in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        return Result(
            "file permissions",
            False,
            f"not readable by the containers' users: {shown}{more}",
            "chmod -R o+rX on them (a umask of 077 at clone time causes this); "
            "secrets/ itself may stay 0700",
        )
    return Result(
        "file permissions",
        True,
        f"{len(paths)} mounted configs/secrets readable by the containers' users "
        "(data lives in named volumes owned by each image's user)",
    )


# --- main -------------------------------------------------------------------------------------


def run_checks(root: Path, files: list[str], profiles: list[str]) -> list[Result]:
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
    results.append(Result("compose config", True, f"{' + '.join(files)} renders"))
    results.append(check_memory(cfg, Path("/proc/meminfo").read_text()))
    data_root = Path(info.get("DockerRootDir") or "/var/lib/docker")
    results.append(check_disk(data_root if data_root.exists() else root))
    try:
        max_map = Path("/proc/sys/vm/max_map_count").read_text()
    except OSError:
        max_map = None
    results.append(check_max_map_count(max_map))
    results.append(check_ports(published_ports(cfg)))
    paths = mounted_paths(cfg, root)
    results.append(check_secrets(paths, root))
    results.append(check_ownership([p for p in paths if p.exists()], root))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.doctor", description=__doc__)
    parser.add_argument("--root", type=Path, default=REPO, help="bundle directory")
    parser.add_argument(
        "--staging",
        action="store_true",
        help="check compose.yaml + compose.staging.yaml without the demo profile",
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if not (root / "compose.yaml").is_file():
        print(f"doctor: {root / 'compose.yaml'}: not found", file=sys.stderr)
        return 2
    if args.staging:
        files, profiles = ["compose.yaml", "compose.staging.yaml"], []
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
