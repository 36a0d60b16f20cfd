"""The tool bootstrap: pinned versions installed, overrides validated with a one-line error."""

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = ROOT / "dev" / "bootstrap.sh"
BIN = ROOT / ".tools" / "bin"


def pins() -> list[tuple[str, str, str]]:
    """(Debian package=version, name in .tools/bin, upstream version) for every pinned tool."""
    rows = re.findall(
        r'^  "(\S+=\S+)\s+\S+\s+(\S+)\s+\S+\s+(\S+)"$', BOOTSTRAP.read_text(), re.M
    )
    assert len(rows) >= 12, "expected the twelve pinned tools (at least) in dev/bootstrap.sh"
    return rows


# Debian builds these without version information: `-version` prints an empty line.
UNVERSIONED = {"victoria-metrics", "vmauth"}
# These have no version flag at all: the package they were unpacked from says.
NO_VERSION_FLAG = {"engine/containerd-shim-runc-v2", "engine/mmtarfilter"}


@pytest.mark.parametrize(("package", "name", "version"), pins())
def test_tool_reports_pinned_version(package: str, name: str, version: str) -> None:
    if name in UNVERSIONED | NO_VERSION_FLAG:
        # The binary cannot say; the package it was unpacked from can.
        pkg, deb_version = package.split("=", 1)
        debs = sorted((ROOT / ".tools" / "debs").glob(f"{pkg}_*.deb"))
        assert debs, f"{pkg}: no downloaded package in .tools/debs (make bootstrap)"
        fields = subprocess.run(
            ["dpkg-deb", "-f", str(debs[-1]), "Version"], capture_output=True, text=True,
            check=True,
        ).stdout.strip()
        assert fields == deb_version and deb_version.startswith(version), fields
        if name in NO_VERSION_FLAG:
            assert os.access(BIN / name, os.X_OK), f"{name} is not executable"
            return
        help_text = subprocess.run(
            [BIN / name, "-help"], capture_output=True, text=True, timeout=30
        )
        assert "-httpListenAddr" in help_text.stdout + help_text.stderr
        return
    out = subprocess.run([BIN / name, "--version"], capture_output=True, text=True, timeout=30)
    first = (out.stdout + out.stderr).splitlines()[0]
    # busybox has no --version: it names itself "BusyBox v1.38.0 ... multi-call binary";
    # redis_exporter prints "Redis Metrics Exporter 1.86.0-1 ...", containerd
    # "containerd github.com/containerd/containerd/v2 2.1.9+unknown", mmdebstrap
    # "mmdebstrap 1.3.5", the others "version X".
    words = r"version|BusyBox|Exporter|containerd/v2|mmdebstrap"
    assert re.search(rf"(?:{words}) v?{re.escape(version)}\b", first), first


def test_second_run_is_a_no_op() -> None:
    out = subprocess.run([BOOTSTRAP], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout == "", "a warm bootstrap must not download or unpack anything"


def test_bad_override_is_one_clear_line(tmp_path: Path) -> None:
    env = {**os.environ, "PROMTOOL": str(tmp_path / "missing"), "TOOLS_DIR": str(tmp_path)}
    out = subprocess.run([BOOTSTRAP], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode != 0
    missing = tmp_path / "missing"
    assert out.stderr.strip() == f"bootstrap: PROMTOOL={missing} is not an executable file"
