"""The private Docker engine of the engine suite: start, stop, and its environment.

One dockerd per checkout, never the system's: its own data root (.engine/<name>/root, git-ignored,
kept between runs so built images are cached), its own exec root and socket under
/run/apollonia-engine/<checkout hash>-<name>/ (short paths: containerd's socket must fit a unix
address), no iptables rules, no masquerading and no default bridge, so a container reaches nothing
outside this machine; user-defined networks still get bridges with service DNS, and published
ports go through docker-proxy on the host's loopback.

The binaries are the pinned Debian packages dev/bootstrap.sh links into .tools/bin/engine: sid's
Docker 28.5.2 and containerd 2.1.9, bookworm's runc 1.1.5 (sid's needs a newer glibc than
bookworm's) registered as the default runtime, tini as docker-init.

`shared_root=True` starts the daemon inside a private mount namespace whose `/` is made rshared
first: a systemd Linux host. The default is this machine's own private `/` (as on Docker Desktop
and WSL).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".tools" / "bin" / "engine"
# Resolved: dockerd resolves a symlinked --data-root, and the doctor compares cAdvisor's
# DOCKER_ROOT_DIR with the path the engine reports (`docker info`), so both must be the real one
# (.engine may be a symlink to share one image cache between checkouts).
STATE = (ROOT / ".engine").resolve()
RUNTIME = Path("/run/apollonia-engine")
# Registered under its own name, so the engine's own lookup of "runc" on PATH plays no part.
RUNTIME_NAME = "bookworm-runc"


class EngineError(RuntimeError):
    """The engine could not be started or stopped; the message says why and what to do."""


@dataclass(frozen=True)
class Engine:
    name: str

    @property
    def data_root(self) -> Path:
        return STATE / self.name / "root"

    @property
    def run_dir(self) -> Path:
        checkout = hashlib.sha256(str(ROOT).encode()).hexdigest()[:10]
        return RUNTIME / f"{checkout}-{self.name}"

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log(self) -> Path:
        return STATE / self.name / "dockerd.log"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "dockerd.pid"

    def env(self) -> dict[str, str]:
        """Environment for docker, docker-compose and make against this engine."""
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.host
        env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
        # No credential helpers or contexts of the user's ~/.docker leak into the suite.
        env["DOCKER_CONFIG"] = str(STATE / self.name / "docker-config")
        env.pop("DOCKER_CONTEXT", None)
        return env

    def docker(self, *args: str, timeout: float = 120, check: bool = True,
               stdin: IO[bytes] | None = None) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run([str(BIN / "docker"), *args], env=self.env(), stdin=stdin,
                              capture_output=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise EngineError(f"docker {' '.join(args[:3])}: "
                              f"{proc.stderr.decode(errors='replace').strip()}")
        return proc

    def running(self) -> bool:
        pid = _read_pid(self.pidfile)
        if pid is None or not _alive(pid):
            return False
        probe = subprocess.run([str(BIN / "docker"), "version", "--format", "{{.Server.Version}}"],
                               env=self.env(), capture_output=True, timeout=20)
        return probe.returncode == 0

    def server_version(self) -> str:
        return self.docker("version", "--format", "{{.Server.Version}}").stdout.decode().strip()


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, e.g. a dockerd this process started and that has
    exited, is reaped and counts as gone)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _check_prerequisites() -> None:
    if os.geteuid() != 0:
        raise EngineError("the private Docker engine needs root (dockerd); run as root, as CI does")
    missing = [name for name in ("dockerd", "docker", "containerd", "runc", "docker-init",
                                 "docker-proxy") if not (BIN / name).exists()]
    if missing:
        raise EngineError(f"{', '.join(missing)} missing from {BIN}: run `make bootstrap`")


def start(name: str = "main", shared_root: bool = False, timeout: float = 60) -> Engine:
    """Start the engine `name` unless it already runs; return it once it answers."""
    engine = Engine(name)
    if engine.running():
        return engine
    _check_prerequisites()
    stop(name)  # a half-dead earlier run: leftover processes and mounts
    engine.data_root.mkdir(parents=True, exist_ok=True)
    engine.run_dir.mkdir(parents=True, exist_ok=True)
    config = STATE / name / "docker-config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.json").write_text(json.dumps({}) + "\n")
    driver = os.environ.get("ENGINE_STORAGE_DRIVER", "overlay2")
    dockerd = [
        str(BIN / "dockerd"),
        f"--data-root={engine.data_root}",
        f"--exec-root={engine.run_dir / 'exec'}",
        f"--pidfile={engine.pidfile}",
        f"--host={engine.host}",
        f"--storage-driver={driver}",
        # Nothing leaves the machine: no NAT, no forwarding rules, no default bridge.
        "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--bridge=none",
        f"--add-runtime={RUNTIME_NAME}={(BIN / 'runc').resolve()}",
        f"--default-runtime={RUNTIME_NAME}",
        # The fluentd log driver and the OOM proof read container logs; keep them local.
        "--log-driver=json-file",
    ]
    if shared_root:
        # A private mount namespace around the daemon, with `/` rshared inside it (systemd's
        # default on Linux hosts); the rest of the machine keeps its private `/`.
        script = 'mount --make-rshared / && exec "$@"'
        command = ["unshare", "--mount", "--propagation", "unchanged", "sh", "-c", script,
                   "dockerd", *dockerd]
    else:
        command = dockerd
    env = dict(os.environ)
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    with open(engine.log, "ab") as log:
        subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                         start_new_session=True, cwd=STATE / name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine.socket.exists() and engine.running():
            return engine
        time.sleep(0.5)
    tail = engine.log.read_text(errors="replace").splitlines()[-5:] if engine.log.exists() else []
    stop(name)
    raise EngineError(f"dockerd did not answer within {timeout:.0f}s; last log lines: "
                      + " | ".join(tail))


def _processes_under(paths: list[Path]) -> list[int]:
    """PIDs whose command line names one of `paths` (dockerd, containerd, shims)."""
    needles = [str(p).encode() for p in paths]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if any(n in cmdline for n in needles):
            found.append(int(entry.name))
    return found


def _mounts_under(paths: list[Path]) -> list[str]:
    prefixes = tuple(str(p) + "/" for p in paths)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefixes):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def stop(name: str = "main", timeout: float = 45) -> None:
    """Stop the engine `name` (its containers first, as dockerd does on SIGTERM) and leave no
    process or mount of it behind. Its data root stays: the next start finds the images."""
    engine = Engine(name)
    pid = _read_pid(engine.pidfile)
    if pid is not None and _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.3)
    owned = [engine.data_root, engine.run_dir]
    for _ in range(2):
        for leftover in _processes_under(owned):
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover, signal.SIGKILL)
        time.sleep(0.3)
    for point in _mounts_under(owned):
        subprocess.run(["umount", "-l", point], capture_output=True)
    if engine.pidfile.exists():
        engine.pidfile.unlink()
    remaining = _processes_under(owned)
    if remaining:
        raise EngineError(f"engine {name}: processes {remaining} still run after stop")
