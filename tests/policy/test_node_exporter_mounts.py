"""node-exporter in compose: each host disk once, with its real read-only flag, and the
disk alert fires once for it.

The real node-exporter binary (.tools/bin, Debian's build) runs with the flags of the
rendered compose.yaml against a fake host: a root filesystem laid out like the
container's /host, whose proc/1/mountinfo is a host's (fixtures/host-mountinfo.txt),
and, for the container's own /proc, the mount table Docker gives a node-exporter
container (fixtures/container-mountinfo.txt: the host root bound read-only at /host,
the bind-mounted /etc/hosts, /etc/hostname and /etc/resolv.conf; the shape of those
lines recorded from the kernel with file bind mounts in a private mount namespace).
The filesystem series it emits then go through promtool with the real
HostDiskSpaceLow rule, every disk nearly full except /boot: exactly one alert, for /.
(On main's flags the same run gives four: /, /etc/hosts, /etc/hostname, /etc/resolv.conf.)

Debian's build is 1.11.1; the image is 1.12.1, whose mountOptionsString joins options with
commas (node_exporter #3659), so it also reads the `ro` of the container's /host bind and
reports node_filesystem_readonly 1 for every host disk in the container's own mount
table; 1.11.1 misses that `ro`. The host's mount table (--path.procfs=/host/proc) has the
disks' own options either way, which is what the first test checks.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.policy import rules

REPO = rules.REPO
TOOLS = REPO / ".tools" / "bin"
FIXTURES = Path(__file__).with_name("fixtures")
RULES = REPO / "prometheus" / "rules" / "infrastructure.yml"
# The labels the compose inventory gives the node job (prometheus/targets/compose/node.yml).
TARGET = {"job": "node", "instance": "node-exporter:9100", "service": "node", "env": "compose"}
_SERIES = re.compile(r"^(node_filesystem_(?:size_bytes|readonly))\{([^}]*)\} (\S+)$", re.M)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fake_host(tmp: Path) -> tuple[Path, Path]:
    rootfs, own_proc = tmp / "host", tmp / "container-proc"
    for d in ("boot", "etc", "run", "proc/1"):
        (rootfs / d).mkdir(parents=True)
    for f in ("hosts", "hostname", "resolv.conf"):
        (rootfs / "etc" / f).write_text("x\n")
    (rootfs / "proc" / "1" / "mountinfo").write_text((FIXTURES / "host-mountinfo.txt").read_text())
    own = (FIXTURES / "container-mountinfo.txt").read_text().replace("{rootfs}", str(rootfs))
    for pid in ("1", "self"):
        (own_proc / pid).mkdir(parents=True)
        (own_proc / pid / "mountinfo").write_text(own)
    return rootfs, own_proc


def _argv(command: list[str], rootfs: Path, own_proc: Path) -> list[str]:
    """The compose command with its container paths mapped onto the fake host."""
    args = []
    for arg in command:
        arg = arg.replace("$$", "$")  # `config` output escapes $
        for flag in ("--path.rootfs=", "--path.procfs=", "--path.sysfs="):
            if arg.startswith(flag + "/host"):
                arg = flag + str(rootfs) + arg[len(flag + "/host") :]
        args.append(arg)
    if not any(a.startswith("--path.procfs=") for a in args):
        args.append(f"--path.procfs={own_proc}")  # the container's own /proc
    return args


def _emitted(cfg: dict[str, Any], tmp: Path) -> dict[str, dict[str, Any]]:
    """mountpoint -> {labels, readonly} as the real node-exporter reports them."""
    binary = TOOLS / "node-exporter"
    if not binary.exists():
        pytest.fail("node-exporter not in .tools/bin (make bootstrap)")
    rootfs, own_proc = _fake_host(tmp)
    port = _free_port()
    argv = [
        str(binary),
        *_argv(cfg["services"]["node-exporter"]["command"], rootfs, own_proc),
        "--collector.disable-defaults",
        "--collector.filesystem",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "node-exporter did not answer"
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    out: dict[str, dict[str, Any]] = {}
    for name, labels_text, value in _SERIES.findall(body):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', labels_text))
        entry = out.setdefault(labels["mountpoint"], {"labels": labels})
        if name == "node_filesystem_readonly":
            entry["readonly"] = int(float(value))
    return out


def _alerting_mountpoints(
    emitted: dict[str, dict[str, Any]], tmp: Path
) -> subprocess.CompletedProcess[str]:
    """promtool: every emitted filesystem 5 % free (/boot 50 %): HostDiskSpaceLow must
    fire exactly once, for /."""
    series = []
    for mountpoint, entry in emitted.items():
        labels = {**entry["labels"], **TARGET}
        text = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        free = 50 if mountpoint == "/boot" else 5
        series += [
            {"series": f"node_filesystem_size_bytes{{{text}}}", "values": "100+0x20"},
            {"series": f"node_filesystem_avail_bytes{{{text}}}", "values": f"{free}+0x20"},
            {
                "series": f"node_filesystem_readonly{{{text}}}",
                "values": f"{entry['readonly']}+0x20",
            },
        ]
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": "count by (mountpoint) "
                        '(ALERTS{alertname="HostDiskSpaceLow", alertstate="firing"})',
                        "eval_time": "10m",
                        "exp_samples": [{"labels": '{mountpoint="/"}', "value": 1}],
                    }
                ],
            }
        ],
    }
    path = tmp / "mounts.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    return subprocess.run(
        [str(TOOLS / "promtool"), "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.timeout(90)
def test_each_host_disk_once_with_its_real_flags(
    local_config: dict[str, Any], tmp_path: Path
) -> None:
    emitted = _emitted(local_config, tmp_path)
    assert set(emitted) == {"/", "/boot"}, sorted(emitted)
    assert {m: e["readonly"] for m, e in emitted.items()} == {"/": 0, "/boot": 0}
    result = _alerting_mountpoints(emitted, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(90)
def test_fallback_to_own_mounts_still_hides_docker_files(
    local_config: dict[str, Any], tmp_path: Path
) -> None:
    """With /host/proc/1 hidden (hidepid), node-exporter reads its own mount table:
    Docker's /etc files must still not appear as filesystems."""
    cfg = {"services": {"node-exporter": dict(local_config["services"]["node-exporter"])}}
    command = [
        a for a in cfg["services"]["node-exporter"]["command"] if not a.startswith("--path.procfs=")
    ]
    cfg["services"]["node-exporter"]["command"] = command
    emitted = _emitted(cfg, tmp_path)
    assert not [m for m in emitted if m.startswith("/etc/")], sorted(emitted)
