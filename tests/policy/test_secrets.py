"""tools/secrets.py: random, never overwritten, never printed; web configs work for real."""

from __future__ import annotations

import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

import bcrypt
import httpx
import pytest

from tests.policy import rules
from tools import secrets as secrets_tool

REPO = rules.REPO
TOOLS = REPO / ".tools" / "bin"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A directory with the templates tools.secrets reads."""
    for rel in secrets_tool.WEB_CONFIG_TEMPLATES.values():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, tmp_path / rel)
    example = tmp_path / "alertmanager" / "secrets.example"
    example.mkdir(parents=True)
    (example / "webhook_url").write_text("http://webhook-sink:5001/default\n")
    return tmp_path


def test_first_run_creates_random_private_files(bundle: Path, capsys) -> None:
    assert secrets_tool.main(["--root", str(bundle)]) == 0
    out = capsys.readouterr().out
    root = bundle / "secrets"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    values = {}
    for name in secrets_tool.PASSWORDS:
        path = root / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        values[name] = path.read_text()
        assert len(values[name]) >= 32 and values[name].strip() == values[name]
        assert f"secrets/{name}" in out
        assert values[name] not in out, "a secret value was printed"
    assert len(set(values.values())) == len(values), "two secrets share a value"
    assert values["postgres_password"] in (root / "database_url").read_text()
    assert values["rabbitmq_password"] in (root / "rabbitmq" / "20-credentials.conf").read_text()
    assert (
        root / "alertmanager" / "webhook_url"
    ).read_text() == "http://webhook-sink:5001/default\n"
    for name in secrets_tool.WEB_CONFIG_TEMPLATES:
        text = (root / name).read_text()
        digest = text.split("admin:")[1].split()[0]
        assert bcrypt.checkpw(values["basic_auth_password"].encode(), digest.encode())
        assert values["basic_auth_password"] not in text


def test_second_run_keeps_everything(bundle: Path, capsys) -> None:
    root = bundle / "secrets"
    root.mkdir()
    (root / "grafana_admin_password").write_text("my-own-password-kept")
    secrets_tool.main(["--root", str(bundle)])
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert secrets_tool.main(["--root", str(bundle)]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert (root / "grafana_admin_password").read_text() == "my-own-password-kept"


def test_two_bundles_get_different_values(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    secrets_tool.ensure(a, repo=REPO)
    secrets_tool.ensure(b, repo=REPO)
    for name in secrets_tool.PASSWORDS:
        assert (a / "secrets" / name).read_text() != (b / "secrets" / name).read_text()


def test_bad_root_is_one_line_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "secrets").write_text("not a directory")
    assert secrets_tool.main(["--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a directory" in err


def test_empty_secret_is_reported(tmp_path: Path, capsys) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "postgres_password").write_text("")
    assert secrets_tool.main(["--root", str(tmp_path)]) == 1
    assert "postgres_password: file is empty" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(60)
def test_staging_web_configs_enforce_basic_auth(bundle: Path, tmp_path: Path) -> None:
    """The rendered web configs pass promtool and make a real Prometheus demand the password."""
    if not (TOOLS / "prometheus").exists():
        pytest.fail("prometheus/promtool not in .tools/bin (make bootstrap)")
    secrets_tool.ensure(bundle)
    root = bundle / "secrets"
    check = subprocess.run(
        [str(TOOLS / "promtool"), "check", "web-config", *map(str, root.glob("*web-config.yml"))],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    password = (root / "basic_auth_password").read_text()
    (tmp_path / "prometheus.yml").write_text("global: {scrape_interval: 15s}\n")
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(TOOLS / "prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.config.file={root / 'prometheus-web-config.yml'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/-/ready"
        deadline = time.monotonic() + 30
        while True:
            try:
                ok = httpx.get(url, auth=("admin", password), timeout=2)
                if ok.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "prometheus did not get ready in 30 s"
            time.sleep(0.2)
        assert httpx.get(url, timeout=2).status_code == 401
        assert httpx.get(url, auth=("admin", "wrong"), timeout=2).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("rel", ["elasticsearch_password", "rabbitmq/20-credentials.conf"])
def test_directory_where_a_file_belongs_is_one_line(bundle: Path, capsys, rel: str) -> None:
    """What a `docker compose up` before `make secrets` leaves with a short-syntax bind:
    the engine created a directory in place of the file. One line names it and the fix,
    and nothing is written."""
    (bundle / "secrets" / rel).mkdir(parents=True)
    assert secrets_tool.main(["--root", str(bundle)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"secrets/{rel}: is a directory where a file belongs" in err
    assert "rmdir" in err
    written = [p for p in (bundle / "secrets").rglob("*") if p.is_file()]
    assert written == [], written


def test_old_world_readable_files_are_tightened(bundle: Path) -> None:
    root = bundle / "secrets"
    root.mkdir()
    (root / "grafana_admin_password").write_text("my-own-password-kept")
    (root / "grafana_admin_password").chmod(0o644)
    secrets_tool.ensure(bundle)
    assert stat.S_IMODE((root / "grafana_admin_password").stat().st_mode) == 0o600
    assert (root / "grafana_admin_password").read_text() == "my-own-password-kept"
    for p in root.rglob("*"):
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), (p, oct(mode))


def test_an_unwritable_subfolder_stops_before_anything_is_written(tmp_path: Path) -> None:
    """Issue 20, item 7: secrets/alertmanager/ owned by root, make secrets run by another
    user. The folder is named with the fix, and no other secret is created (it used to
    write the passwords, then fail there without saying what it had made). Run as the
    `nobody` user (root writes anywhere)."""
    import os
    import tempfile

    if os.getuid() != 0:
        pytest.skip("needs root to run the tool as another user")
    base = Path(tempfile.mkdtemp(prefix="secrets-nobody-"))
    try:
        base.chmod(0o755)
        for rel in ("tools/__init__.py", "tools/secrets.py",
                    *map(str, secrets_tool.WEB_CONFIG_TEMPLATES.values())):
            (base / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / rel, base / rel)
        (base / "alertmanager/secrets.example").mkdir(parents=True)
        (base / "alertmanager/secrets.example/webhook_url").write_text("http://x\n")
        (base / "secrets/alertmanager").mkdir(parents=True)  # root's, 0755
        for p in [base, *base.rglob("*")]:
            if p != base / "secrets/alertmanager":
                os.chown(p, 65534, 65534)
        proc = subprocess.run(
            ["/usr/bin/python3", "-m", "tools.secrets"], cwd=base, capture_output=True,
            text=True, timeout=60, user=65534, group=65534,
            env={"PATH": "/usr/bin:/bin", "HOME": str(base)})
        assert proc.returncode == 1, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert f"{base / 'secrets/alertmanager'}: not writable by you" in lines[0]
        assert "alertmanager/webhook_url cannot be created" in lines[0]
        assert "chown" in lines[0] and "Traceback" not in proc.stderr
        made = [p for p in (base / "secrets").rglob("*") if p.is_file()]
        assert made == [], made
    finally:
        shutil.rmtree(base)


def test_a_write_that_fails_midway_names_what_it_created(bundle: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys) -> None:
    """A failure after the checks (a full disk): one line with the path, the reason and
    the files already created."""
    real = secrets_tool._write_new
    calls = []

    def flaky(path: Path, content: str, created: list[str], root: Path) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device", str(path))
        real(path, content, created, root)

    monkeypatch.setattr(secrets_tool, "_write_new", flaky)
    assert secrets_tool.main(["--root", str(bundle)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"{calls[2]}: No space left on device; created before that: " \
           "secrets/grafana_admin_password, secrets/elasticsearch_password (kept;" in err
