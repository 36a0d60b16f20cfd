"""The tool bootstrap: pinned versions installed, overrides validated with a one-line error."""

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = ROOT / "tools" / "bootstrap.sh"
BIN = ROOT / ".tools" / "bin"


def pins() -> list[tuple[str, str]]:
    """(name in .tools/bin, upstream version) for every pinned tool."""
    rows = re.findall(r'^  "\S+=\S+\s+\S+\s+(\S+)\s+\S+\s+(\S+)"$', BOOTSTRAP.read_text(), re.M)
    assert len(rows) >= 10, "expected the ten pinned tools (at least) in tools/bootstrap.sh"
    return rows


@pytest.mark.parametrize(("name", "version"), pins())
def test_tool_reports_pinned_version(name: str, version: str) -> None:
    out = subprocess.run([BIN / name, "--version"], capture_output=True, text=True, timeout=30)
    first = (out.stdout + out.stderr).splitlines()[0]
    # busybox has no --version: it names itself "BusyBox v1.38.0 ... multi-call binary";
    # redis_exporter prints "Redis Metrics Exporter 1.86.0-1 ...", the others "version X".
    assert re.search(rf"(?:version|BusyBox|Exporter) v?{re.escape(version)}\b", first), first


def test_second_run_is_a_no_op() -> None:
    out = subprocess.run([BOOTSTRAP], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout == "", "a warm bootstrap must not download or unpack anything"


def test_bad_override_is_one_clear_line(tmp_path: Path) -> None:
    env = {**os.environ, "PROMTOOL": str(tmp_path / "missing"), "TOOLS_DIR": str(tmp_path)}
    out = subprocess.run([BOOTSTRAP], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode != 0
    missing = tmp_path / "missing"
    assert out.stderr.strip() == f"bootstrap: PROMTOOL={missing} is not an executable file"
