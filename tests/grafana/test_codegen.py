"""Dashboards as code: the committed JSON is exactly what the generator writes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from grafana.codegen.__main__ import drift, write
from tests.grafana.model import DASHBOARD_DIR, ROOT


def test_committed_dashboards_match_the_generator() -> None:
    """`make dashboards` would change nothing (regenerate and diff)."""
    problems = drift(DASHBOARD_DIR)
    assert not problems, "\n".join(problems)


def test_check_cli_reports_drift(tmp_path: Path) -> None:
    out = tmp_path / "dashboards"
    shutil.copytree(DASHBOARD_DIR, out)
    cmd = [sys.executable, "-m", "grafana.codegen", "--check", "--out", str(out)]
    ok = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr

    victim = next(out.glob("**/*.json"))
    victim.write_text(victim.read_text().replace('"editable": false', '"editable": true'))
    (out / "stray.json").write_text("{}")
    bad = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert f"{victim}: differs" in bad.stderr
    assert "stray.json: not generated" in bad.stderr

    write(out)
    assert drift(out) == []
    assert not (out / "stray.json").exists()
