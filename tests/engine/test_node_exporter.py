"""node-exporter as compose.yaml defines it, created on both kinds of Docker host.

The bind of the host's `/` contains the engine's data root, so the engine accepts no explicit
propagation but rslave/rshared, and rslave only where `/` is a shared or slave mount. The old
`propagation: rprivate` default was refused on every host, which stopped every `make up`.
compose.yaml now sets none and the engine picks (moby@v28.5.2 daemon/volumes_linux.go,
daemon/oci_linux.go). Proven here on this machine's private `/` (Docker Desktop and WSL are the
same) and on a daemon whose `/` is rshared (a systemd Linux host), with the series it exports
compared with the host's own file systems.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dev.engine import daemon, facsimile
from tests.engine.conftest import ROOT, Compose, wait_for

IMAGE = "prom/node-exporter:v1.12.1"
DOCKER_FILES = {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}


def _up(engine: daemon.Engine, project: str, extra: Path | None = None) -> Compose:
    files = [ROOT / "compose.yaml", *([extra] if extra else [])]
    compose = Compose(engine, files, profiles=[], project=project)
    # Created and started (its healthcheck runs every 30 s; the metrics answer sooner).
    compose.run("up", "--detach", "node-exporter")
    wait_for("node-exporter answering", lambda: _metrics(compose), timeout=30, interval=0.5)
    return compose


def _metrics(compose: Compose) -> str:
    cid = compose.container("node-exporter")
    proc = compose.engine.docker("exec", cid, "wget", "-q", "-O", "-",
                                 "http://127.0.0.1:9100/metrics", check=False)
    return proc.stdout.decode() if proc.returncode == 0 else ""


def _filesystems(text: str) -> dict[str, float]:
    sizes = {}
    for line in text.splitlines():
        if line.startswith("node_filesystem_size_bytes{"):
            labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:
                                                              line.index("}")].split(","))
            sizes[labels["mountpoint"].strip('"')] = float(line.rsplit(" ", 1)[1])
    return sizes


def _host_mount_propagation(compose: Compose) -> str:
    cid = compose.container("node-exporter")
    mountinfo = compose.engine.docker("exec", cid, "cat", "/proc/self/mountinfo").stdout.decode()
    line = next(li for li in mountinfo.splitlines() if li.split()[4] == "/host")
    optional = line.split(" - ")[0].split()[6:]
    return "rslave" if any(f.startswith("master:") for f in optional) else "private"


def _check_host_view(compose: Compose) -> None:
    sizes = _filesystems(_metrics(compose))
    stat = os.statvfs("/")
    assert sizes.get("/") == stat.f_blocks * stat.f_frsize, (
        f"node_filesystem_size_bytes for / is not the host's: {sizes}")
    assert not DOCKER_FILES & set(sizes), f"Docker's bind-mounted files listed as disks: {sizes}"


def test_node_exporter_starts_where_root_is_private(engine: daemon.Engine) -> None:
    compose = _up(engine, "node-private")
    try:
        assert _host_mount_propagation(compose) == "private"
        _check_host_view(compose)
    finally:
        compose.run("down", "--timeout", "1", check=False)


def test_node_exporter_starts_where_root_is_shared(engine: daemon.Engine) -> None:
    shared = daemon.start("shared", shared_root=True)
    try:
        facsimile.build_all(shared, only=[IMAGE])
        compose = _up(shared, "node-shared")
        assert _host_mount_propagation(compose) == "rslave", (
            "on a shared / the engine should pick rslave (filesystems mounted later appear)")
        _check_host_view(compose)
        compose.run("down", "--timeout", "1", check=False)
    finally:
        daemon.stop("shared")


@pytest.mark.parametrize("mode, refusal", [
    ("rprivate", "must use either propagation mode"),
    ("rslave", "is not a shared or slave mount"),
])
def test_an_explicit_propagation_is_refused(engine: daemon.Engine, tmp_path: Path, mode: str,
                                            refusal: str) -> None:
    """Why compose.yaml sets none: on this machine's private `/`, the old default (rprivate)
    and the Linux option (rslave) both stop node-exporter from being created."""
    override = tmp_path / "propagation.yaml"
    override.write_text(
        "services:\n  node-exporter:\n    volumes: !override\n"
        "      - {type: bind, source: /, target: /host, read_only: true,\n"
        f"         bind: {{propagation: {mode}, create_host_path: false}}}}\n")
    compose = Compose(engine, [ROOT / "compose.yaml", override], profiles=[],
                      project=f"node-{mode}")
    try:
        proc = compose.run("up", "--detach", "node-exporter", check=False)
        assert proc.returncode != 0 and refusal in proc.stderr, proc.stderr
    finally:
        compose.run("down", "--timeout", "1", check=False)
