"""The demo's servers for the native run (dev/bootstrap-servers.sh): the linked builds are
the pinned Debian 12 releases (or a usable installed one), overrides fail in one line.

With CI=true a server `make bootstrap` could not provide is a failure here, not a skip."""

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "dev" / "bootstrap-servers.sh"
BIN = ROOT / ".tools" / "bin"
CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")


def _minimum(name: str) -> tuple[int, ...]:
    m = re.search(rf"\bmin_{name}=([0-9.]+)", SCRIPT.read_text())
    assert m, f"min_{name} missing from {SCRIPT.name}"
    return tuple(int(x) for x in m.group(1).split("."))


def _version(text: str, pattern: str) -> tuple[int, ...]:
    m = re.search(pattern, text)
    assert m, f"no version in {text!r}"
    return tuple(int(x) for x in m.group(1).split("."))


def _need(prog: str) -> Path:
    path = BIN / prog
    if not path.exists():
        if CI:
            pytest.fail(f".tools/bin/{prog} missing: make bootstrap must provide it in CI")
        pytest.skip(f".tools/bin/{prog} missing (make bootstrap printed why)")
    return path


def test_postgres_is_a_usable_version() -> None:
    out = subprocess.run([_need("postgres"), "--version"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    assert _version(out, r"PostgreSQL\) (\d+\.\d+)") >= _minimum("postgres"), out
    for prog in ("initdb", "pg_isready"):
        assert os.access(_need(prog), os.X_OK)


def test_redis_is_a_usable_version() -> None:
    out = subprocess.run([_need("redis-server"), "--version"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    assert _version(out, r"v=(\d+\.\d+)") >= _minimum("redis"), out


def test_rabbitmq_is_a_usable_version_with_its_erlang() -> None:
    script = _need("rabbitmq-server").resolve()
    # The version is in the installation's path: .../rabbitmq_server-3.10.8/sbin/rabbitmq-server
    assert _version(str(script), r"rabbitmq_server-(\d+\.\d+)") >= _minimum("rabbitmq"), script
    out = subprocess.run([_need("erl"), "-noshell", "-eval",
                          "io:put_chars(erlang:system_info(otp_release)), halt()."],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert int(out) >= 24, f"Erlang/OTP {out}: RabbitMQ 3.10 needs 24 or later"
    assert os.access(_need("epmd"), os.X_OK)


def test_pins_are_bookworm_versions() -> None:
    text = SCRIPT.read_text()
    pins = re.findall(r"[a-z0-9-]+=[0-9]+:?[0-9A-Za-z.+~:-]+", text)
    debian = [p for p in pins if "deb12" in p]
    assert any(p.startswith("postgresql-15=") for p in debian), pins
    assert any(p.startswith("rabbitmq-server=") for p in debian), pins
    assert any(p.startswith("redis-server=") for p in debian), pins


def test_bad_server_override_is_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    env = {**os.environ, "REDIS_SERVER": str(missing), "TOOLS_DIR": str(tmp_path)}
    out = subprocess.run([SCRIPT], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode != 0
    assert out.stderr.strip() == f"bootstrap: REDIS_SERVER={missing} is not an executable file"
