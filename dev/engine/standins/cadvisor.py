#!/usr/bin/python3
"""cAdvisor stand-in: the container_* series the bundle reads, for the running Docker
containers, from the Docker API and the containers' cgroup v2 files.

Run as the image runs cAdvisor, with its flags (compose.yaml): ``--docker_only=true
--housekeeping_interval=15s --store_container_labels=false
--whitelisted_container_labels=com.docker.compose.service,com.docker.compose.project
--disable_metrics=...``; also ``--port`` (8080), ``--listen_ip`` and ``--docker``
(unix:///var/run/docker.sock). It reads the cgroup tree under /sys/fs/cgroup
(STANDIN_CGROUP_ROOT), and where a container's cgroup is not there (/sys/fs/cgroup being this
container's own cgroup namespace) under /rootfs/sys/fs/cgroup; network counters from
/rootfs/proc/<pid>/net/dev (STANDIN_ROOTFS: compose mounts the host's / at /rootfs).

What it answers like cAdvisor v0.60.5 (google/cadvisor@v0.60.5):

* ``GET /healthz`` "ok" (cmd/internal/http/handlers.go).
* ``GET /metrics`` in Prometheus text format with cAdvisor's names and labels
  (lib/metrics/prometheus.go): ``id`` (the cgroup path, /system.slice/docker-<id>.scope with
  the systemd driver, /docker/<id> with cgroupfs), ``image`` (Config.Image), ``name`` (the
  container's name), and ``container_label_<label with . as _>`` for each whitelisted label a
  container has. Series, one per running container (GET /containers/json on the socket):
  - container_cpu_usage_seconds_total{cpu="total"}: cpu.stat usage_usec / 1e6;
  - container_memory_working_set_bytes: memory.current minus memory.stat inactive_file
    (lib/container/libcontainer/handler.go setMemoryStats);
  - container_spec_memory_limit_bytes: memory.max, 0 when "max" (specMemoryValue);
  - container_start_time_seconds: the container's State.StartedAt;
  - container_oom_events_total: memory.events oom_kill (cAdvisor counts the kernel's OOM
    messages for the container, cmd/internal/api/oom.go: the same kills, another source);
  - container_network_receive_bytes_total{interface}: /proc/<State.Pid>/net/dev of the host
    (lo, veth*, docker* skipped, as cAdvisor's ignored devices).
  Groups turned off by --disable_metrics (cpu, memory, network, oom_event) are left out.

cgroup v1 (a hybrid host, such as the machines the engine suite runs on): the same series from
cpuacct.usage (ns), memory.usage_in_bytes minus memory.stat total_inactive_file,
memory.limit_in_bytes (unlimited above 2^62: 0) and memory.oom_control oom_kill, each in its
controller's tree (lib/container/libcontainer/handler.go reads the same files on v1).

What it does NOT prove: no machine_* or root-cgroup ("/") series, no other container_* names
(only those the bundle's rules and dashboards read), no per-CPU usage, no
housekeeping cache (every scrape reads the files anew), no filesystem usage, no REST API
(/api/v1.x, /containers UI), no containerd or Podman.

Debug endpoint: ``GET /standin/containers`` (each container found: id, name, cgroup path,
pid, and why one was skipped).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

try:  # /standin/ in the image: the helpers sit next to this file
    import standin_common as common
except ImportError:  # imported as dev.engine.standins.cadvisor (offline tests)
    from dev.engine.standins import standin_common as common

NAME = "cadvisor"
IGNORED_DEVICES = ("lo", "veth", "docker", "nerdctl")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def docker_get(socket_path: str, path: str) -> Any:
    conn = UnixHTTPConnection(socket_path)
    try:
        conn.request("GET", path, headers={"Host": "docker"})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise OSError(f"Docker API {path}: HTTP {resp.status}")
        return json.loads(body)
    finally:
        conn.close()


def parse_flags(argv: list[str]) -> dict[str, str]:
    """Go flag syntax: -name=value, --name=value, -name value, --name (booleans)."""
    flags: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i].lstrip("-")
        if "=" in arg:
            key, value = arg.split("=", 1)
        elif i + 1 < len(argv) and not argv[i + 1].startswith("-") and arg not in (
                "docker_only", "store_container_labels", "logtostderr"):
            key, value = arg, argv[i + 1]
            i += 1
        else:
            key, value = arg, "true"
        flags[key] = value
        i += 1
    return flags


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _keyed(text: str | None) -> dict[str, int]:
    out = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def find_cgroup(root: Path, container_id: str) -> Path | None:
    """The container's cgroup: systemd driver, cgroupfs driver, else a short search."""
    for candidate in (root / "system.slice" / f"docker-{container_id}.scope",
                      root / "docker" / container_id):
        if candidate.is_dir():
            return candidate
    names = {f"docker-{container_id}.scope", container_id}
    for dirpath, dirnames, _ in os.walk(root):
        if len(Path(dirpath).relative_to(root).parts) >= 4:
            dirnames[:] = []
            continue
        for name in dirnames:
            if name in names:
                return Path(dirpath) / name
    return None


def _v2_stats(cgroup: Path) -> dict[str, Any]:
    usage_usec = _keyed(_read(cgroup / "cpu.stat")).get("usage_usec")
    current = _read(cgroup / "memory.current")
    limit = (_read(cgroup / "memory.max") or "max").strip()
    return {"cpu": None if usage_usec is None else usage_usec / 1e6,
            "usage": None if current is None else int(current),
            "inactive": _keyed(_read(cgroup / "memory.stat")).get("inactive_file", 0),
            "limit": 0 if limit == "max" else int(limit),
            "oom_kills": _keyed(_read(cgroup / "memory.events")).get("oom_kill")}


UNLIMITED_V1 = 2**62  # memory.limit_in_bytes of an unlimited cgroup is about 2^63


def _v1_stats(memory: Path, cpuacct: Path) -> dict[str, Any]:
    usage_ns = _read(cpuacct / "cpuacct.usage")
    usage = _read(memory / "memory.usage_in_bytes")
    limit = int((_read(memory / "memory.limit_in_bytes") or "0").strip() or 0)
    return {"cpu": None if usage_ns is None else int(usage_ns) / 1e9,
            "usage": None if usage is None else int(usage),
            "inactive": _keyed(_read(memory / "memory.stat")).get("total_inactive_file", 0),
            "limit": 0 if limit >= UNLIMITED_V1 else limit,
            "oom_kills": _keyed(_read(memory / "memory.oom_control")).get("oom_kill")}


def rx_bytes(rootfs: Path, pid: int) -> dict[str, int]:
    text = _read(rootfs / "proc" / str(pid) / "net" / "dev") if pid else None
    out = {}
    for line in (text or "").splitlines()[2:]:
        iface, _, counters = line.partition(":")
        iface = iface.strip()
        if iface and not iface.startswith(IGNORED_DEVICES) and counters.split():
            out[iface] = int(counters.split()[0])
    return out


def started_at(text: str) -> float:
    """Docker's RFC 3339 time with nanoseconds -> epoch seconds."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text or "")
    if not m:
        return 0.0
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(m.group(1) + zone).timestamp() + float(m.group(2) or 0)


class CAdvisor:
    def __init__(self, flags: dict[str, str]) -> None:
        self.socket = flags.get("docker", "unix:///var/run/docker.sock").removeprefix("unix://")
        self.whitelist = [x for x in flags.get("whitelisted_container_labels", "").split(",") if x]
        self.store_labels = flags.get("store_container_labels", "true") != "false"
        self.disabled = set(flags.get("disable_metrics", "").split(","))
        self.rootfs = Path(os.environ.get("STANDIN_ROOTFS", "/rootfs"))
        # /sys/fs/cgroup may be the container's own cgroup namespace (Docker mounts one over
        # the /sys bind): the host's tree is also under the / bind, at /rootfs/sys/fs/cgroup.
        self.cgroup_roots = [Path(os.environ.get("STANDIN_CGROUP_ROOT", "/sys/fs/cgroup")),
                             self.rootfs / "sys" / "fs" / "cgroup"]

    def containers(self) -> list[dict[str, Any]]:
        found = []
        for summary in docker_get(self.socket, "/containers/json"):
            cid = summary["Id"]
            entry: dict[str, Any] = {"id": cid,
                                     "name": (summary.get("Names") or ["/"])[0].lstrip("/")}
            try:
                inspect = docker_get(self.socket, f"/containers/{cid}/json")
            except OSError as exc:  # gone between the two calls
                entry["skipped"] = str(exc)
                found.append(entry)
                continue
            # cgroup v1 first: a hybrid host also has a unified tree, without the memory and
            # cpu controllers.
            root, cgroup = next(((r, c) for r in self.cgroup_roots
                                 if (c := find_cgroup(r / "memory", cid)) is not None),
                                (None, None))
            v1 = cgroup is not None
            if not v1:
                root, cgroup = next(((r, c) for r in self.cgroup_roots
                                     if (c := find_cgroup(r, cid)) is not None), (None, None))
            if cgroup is None or root is None:
                entry["skipped"] = (f"no cgroup for {cid} under "
                                    f"{' or '.join(map(str, self.cgroup_roots))}")
                found.append(entry)
                continue
            labels = summary.get("Labels") or {}
            shown = labels if self.store_labels else {
                k: v for k, v in labels.items() if k in self.whitelist}
            relative = cgroup.relative_to(root / "memory" if v1 else root)
            entry.update({
                "cgroup": cgroup, "v1": v1, "cpu_cgroup": root / "cpuacct" / relative,
                "pid": (inspect.get("State") or {}).get("Pid", 0),
                "started": started_at((inspect.get("State") or {}).get("StartedAt", "")),
                "labels": {"id": "/" + str(relative),
                           "image": (inspect.get("Config") or {}).get("Image")
                           or summary.get("Image", ""),
                           "name": entry["name"],
                           **{"container_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k): v
                              for k, v in sorted(shown.items())}}})
            found.append(entry)
        return found

    def metrics(self) -> str:
        families: dict[str, tuple[str, str, list[common.Sample]]] = {
            "container_cpu_usage_seconds_total": (
                "counter", "Cumulative cpu time consumed in seconds.", []),
            "container_memory_working_set_bytes": ("gauge", "Current working set in bytes.", []),
            "container_network_receive_bytes_total": (
                "counter", "Cumulative count of bytes received", []),
            "container_oom_events_total": (
                "counter", "Count of out of memory events observed for the container", []),
            "container_spec_memory_limit_bytes": ("gauge", "Memory limit for the container.",
                                                  []),
            "container_start_time_seconds": (
                "gauge", "Start time of the container since unix epoch in seconds.", []),
        }

        def add(name: str, labels: dict[str, str], value: float) -> None:
            families[name][2].append((labels, value))

        for c in self.containers():
            if "skipped" in c:
                continue
            labels, cgroup = c["labels"], c["cgroup"]
            add("container_start_time_seconds", labels, int(c["started"]))
            stats = _v1_stats(cgroup, c["cpu_cgroup"]) if c["v1"] else _v2_stats(cgroup)
            if "cpu" not in self.disabled and stats["cpu"] is not None:
                add("container_cpu_usage_seconds_total", {**labels, "cpu": "total"}, stats["cpu"])
            if "memory" not in self.disabled:
                if stats["usage"] is not None:
                    usage, inactive = stats["usage"], stats["inactive"]
                    add("container_memory_working_set_bytes", labels,
                        usage - inactive if inactive < usage else 0)
                add("container_spec_memory_limit_bytes", labels, stats["limit"])
            if "oom_event" not in self.disabled and stats["oom_kills"] is not None:
                add("container_oom_events_total", labels, stats["oom_kills"])
            if "network" not in self.disabled:
                for iface, value in rx_bytes(self.rootfs, c["pid"]).items():
                    add("container_network_receive_bytes_total",
                        {**labels, "interface": iface}, value)
        return common.exposition((name, kind, help_, samples)
                                 for name, (kind, help_, samples) in families.items() if samples)

    def handle(self, req: common.Request) -> common.Response:
        if req.path == "/healthz":
            return common.text_response(200, "ok")
        if req.path == "/metrics":
            try:
                return common.text_response(200, self.metrics(), common.PROMETHEUS_TEXT)
            except OSError as exc:
                common.log(NAME, f"cannot read containers: {exc}")
                return common.text_response(500, f"cannot read containers: {exc}\n")
        if req.path == "/standin/containers":
            rows = self.containers()
            for row in rows:
                for key in ("cgroup", "cpu_cgroup"):
                    if key in row:
                        row[key] = str(row[key])
            return common.json_response(200, rows)
        return common.text_response(404, "404 page not found\n")


def main(argv: list[str]) -> int:
    flags = parse_flags(argv)
    cadvisor = CAdvisor(flags)
    host = os.environ.get("STANDIN_BIND") or flags.get("listen_ip") or "0.0.0.0"
    server = common.http_server(NAME, cadvisor.handle,
                                common.port("http", int(flags.get("port", 8080))), host)
    return common.run_until_signal(NAME, [server])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
