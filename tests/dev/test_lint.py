"""dev/lint.sh: a failed check shows every error line of its tool with the repository's
path (issue 20, item 1), and a file in a config folder that its consumer never reads fails
lint (item 2, dev/unread.py).

Each case runs the real lint script (promtool, PyYAML) on a copy of the configs in a
temporary directory, with only the groups it needs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools" / "bin"
COPY = ("dev/__init__.py", "dev/lint.sh", "dev/unread.py", "compose.yaml",
        "compose.staging.yaml", "compose.scale.yaml", "compose.agent.yaml", "prometheus",
        "alertmanager", "grafana/provisioning", "grafana/dashboards")

pytestmark = pytest.mark.skipif(not (TOOLS / "promtool").exists(),
                                reason="promtool not installed (make bootstrap)")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    tracked = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard", "--", *COPY], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, tracked):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, tmp_path / rel)
    return tmp_path


def lint(repo: Path, *groups: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{TOOLS}:{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
           "PYTHONPATH": str(repo)}
    return subprocess.run(["bash", str(repo / "dev/lint.sh"), *groups], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=300)


def _break(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path.name}: {old!r} not found"
    path.write_text(text.replace(old, new, 1))


def test_the_configs_as_committed_pass(repo: Path) -> None:
    proc = lint(repo, "rules", "unread")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        "ok    promtool check rules --lint=all --lint-fatal",
        "ok    every file in a config folder is read (rule_files, file_sd, templates, "
        "provisioning)"]


def test_every_promtool_error_is_shown_with_its_real_path(repo: Path) -> None:
    """Three files broken early in promtool's alphabetical order: each error is shown (the
    old lint kept the last 20 lines, which were SUCCESS lines of later files), with the
    path in the repository, not in the scratch copy, and no SUCCESS line."""
    rules = repo / "prometheus/rules"
    _break(rules / "api.yml", "rate(", "rte(")
    text = (rules / "business.yml").read_text()
    first = text.index("  - name:")
    end = text.index("\n  - name:", first + 1) if "\n  - name:" in text[first + 1:] else len(text)
    (rules / "business.yml").write_text(text + text[first:end].rstrip("\n") + "\n")
    (rules / "cache.yml").write_text((rules / "cache.yml").read_text() + "  - name: [\n")
    proc = lint(repo, "prometheus", "rules")
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "SUCCESS" not in out and "Checking " not in out, out
    assert str(repo) not in out.replace(f"{repo}/", "") and "/tmp/tmp." not in out, out
    for name, error in (("api.yml", 'unknown function with name "rte"'),
                        ("business.yml", "is repeated in the same file"),
                        ("cache.yml", "yaml")):
        shown = [line for line in out.splitlines() if f"prometheus/rules/{name}:" in line]
        assert shown, f"{name}: no error line in\n{out}"
        assert any(error in line for line in shown), shown
    # The config checks load the same rules through the scratch layout: the same real path.
    config_fails = [line for line in out.splitlines()
                    if line.startswith("FAIL  promtool check config")]
    assert config_fails, out
    assert "rules/api.yml" in out.split(config_fails[0], 1)[1].split("FAIL", 1)[0], out


@pytest.mark.parametrize(("path", "expected"), [
    ("prometheus/rules/extra.yaml", "prometheus/rules/ is read as *.yml (rule_files of "
                                    "prometheus/prometheus-ha.yml: rules/*.yml"),
    ("prometheus/rules/old/api.yml", "prometheus/rules/ is read as *.yml"),
    ("prometheus/targets/compose/apolonia-api.yml", "prometheus/targets/*/ is read as "
                                                    "alertmanagers.yml, apollonia-analyzer.yml"),
    ("prometheus/targets/staging/redis.yaml", "file_sd_configs of prometheus/scrape-configs.yml"),
    ("alertmanager/templates/chat.tpl", "templates of alertmanager/alertmanager.yml: "
                                        "templates/*.tmpl"),
    ("grafana/provisioning/datasources/loki.json", "Grafana reads datasources/*.yaml and *.yml"),
    ("grafana/provisioning/notifier/x.yml", "Grafana reads provisioning/<kind>/"),
    ("grafana/dashboards/slo/apollonia-slo.json.bak", "the dashboard provider 'slo'"),
])
def test_a_file_its_consumer_never_reads_fails_lint(repo: Path, path: str, expected: str) -> None:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text("groups: []\n")
    proc = lint(repo, "rules", "unread")
    assert proc.returncode == 1, proc.stdout
    lines = proc.stdout.splitlines()
    assert "FAIL  every file in a config folder is read" in lines[1], proc.stdout
    assert lines[2:] == [f"      {path}: never read: " + lines[2].split(": never read: ", 1)[1]]
    assert expected in lines[2], lines[2]
    assert "Traceback" not in proc.stdout + proc.stderr


def test_plain_make_lint_runs_every_group() -> None:
    """GNU make defines LINT = lint: a variable of that name made `make lint` run
    `dev/lint.sh lint`, a group that does not exist, so nothing was checked."""
    dry = subprocess.run(["make", "--no-print-directory", "-n", "lint"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert dry[-1].strip() == "dev/lint.sh", dry
