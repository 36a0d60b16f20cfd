"""dev/bundle.py: the tarball unpacks into a clean directory, verifies and validates."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from dev import bundle
from tests.policy import rules

REPO = rules.REPO


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if rules.compose_bin() is None:
        pytest.skip("docker-compose not found (make bootstrap installs it into .tools/bin)")
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "dev.bundle", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    (tarball,) = out.glob("apollonia-observability-*.tar.gz")
    unpacked = tmp_path_factory.mktemp("host")
    with tarfile.open(tarball) as tar:
        tar.extractall(unpacked, filter="data")
    (top,) = unpacked.iterdir()
    return tarball, top


def test_name_carries_the_version(built: tuple[Path, Path]) -> None:
    tarball, top = built
    version = (top / "VERSION").read_text().strip()
    assert tarball.name == f"apollonia-observability-{version}.tar.gz"
    assert top.name == f"apollonia-observability-{version}"
    assert version.startswith(
        bundle.tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    )


def test_checksums_cover_every_file(built: tuple[Path, Path]) -> None:
    _, top = built
    listed = {}
    for line in (top / "SHA256SUMS").read_text().splitlines():
        digest, rel = line.split("  ", 1)
        listed[rel] = digest
    present = {
        str(p.relative_to(top)) for p in top.rglob("*") if p.is_file() and p.name != "SHA256SUMS"
    }
    assert set(listed) == present
    for rel, digest in listed.items():
        assert hashlib.sha256((top / rel).read_bytes()).hexdigest() == digest, rel


def test_no_secrets_or_local_state(built: tuple[Path, Path]) -> None:
    _, top = built
    names = [str(p.relative_to(top)) for p in top.rglob("*")]
    forbidden = ("secrets/", ".env", ".venv", ".tools", ".run", "tests/", "dist/")
    assert not [n for n in names if n.startswith(forbidden) and n != ".env.example"]
    texts = {n: (top / n).read_text() for n in names if (top / n).is_file()}
    assert rules.secret_values(texts, rules.local_secret_values()) == []


@pytest.mark.parametrize(
    "files",
    [["compose.yaml"], ["compose.yaml", "compose.staging.yaml"], ["rendered/compose.staging.yaml"],
     ["compose.yaml", "compose.scale.yaml"], ["compose.agent.yaml"]],
)
def test_compose_config_validates_in_the_clean_directory(
    built: tuple[Path, Path], files: list[str]
) -> None:
    _, top = built
    cmd = [*rules.compose_bin(), "--project-directory", str(top)]
    for f in files:
        cmd += ["-f", str(top / f)]
    env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    proc = subprocess.run([*cmd, "config", "-q"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr


def test_rendered_config_keeps_relative_paths(built: tuple[Path, Path]) -> None:
    _, top = built
    text = (top / "rendered" / "compose.staging.yaml").read_text()
    assert "source: ./prometheus/targets/staging" in text
    sources = [
        line.split("source:", 1)[1].strip() for line in text.splitlines() if "source:" in line
    ]
    absolute = [s for s in sources if s.startswith("/") and s not in rules.HOST_PATHS]
    assert absolute == [], "paths of the build machine leaked into the rendered config"


def test_install_runs_doctor_before_make_up(built: tuple[Path, Path]) -> None:
    _, top = built
    script = (top / "install.sh").read_text()
    assert os.access(top / "install.sh", os.X_OK)
    assert script.index("python3 -m tools.doctor") < script.index("exec make up")
    if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        pytest.skip("a Docker engine answers: running install.sh would start the stack")
    proc = subprocess.run(
        ["sh", "install.sh"], cwd=top, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert "FAIL  docker engine: no Docker engine reachable" in proc.stdout
    assert "fix the FAIL lines above" in proc.stderr
    assert (top / "secrets" / "grafana_admin_password").is_file()


def test_reproducible(built: tuple[Path, Path], tmp_path: Path) -> None:
    tarball, _ = built
    again = bundle.build(tmp_path)
    if bundle.version().endswith("-dirty"):
        # Uncommitted edits may land between the two builds; compare names only.
        assert again.name == tarball.name
    else:
        assert again.read_bytes() == tarball.read_bytes()


def test_contents_follow_the_tools_dev_split(tmp_path: Path) -> None:
    """Issue 22: what ships is every tracked file but the development-only areas, named
    once in dev/bundle.py, not a hand-kept list: a newly committed config folder and a new
    operator tool ship without touching the builder; dev/, tests/ and native/ never do."""
    from tests.commands.fakes import Repo, copy_repo

    if rules.compose_bin() is None:
        pytest.skip("docker-compose not found (make bootstrap installs it into .tools/bin)")
    repo = Repo(copy_repo(tmp_path / "repo"), tmp_path, {})
    repo.write("loki/config.yml", "auth_enabled: false\n")
    repo.write("tools/collect.py", '"""A new operator tool."""\n')
    repo.git_commit()
    proc = subprocess.run([sys.executable, "-m", "dev.bundle", "--out", str(tmp_path / "dist")],
                          cwd=repo.path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    (tarball,) = (tmp_path / "dist").glob("*.tar.gz")
    with tarfile.open(tarball) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"loki/config.yml", "tools/collect.py", "tools/doctor.py", "Makefile"} <= names
    for area in bundle.DEV_ONLY:
        assert not [n for n in names if n == area or n.startswith(area)], area
