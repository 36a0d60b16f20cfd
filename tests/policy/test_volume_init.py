"""tools/volume-init.sh, run for real with only the capabilities compose grants it.

The script runs as root with CAP_CHOWN and CAP_DAC_READ_SEARCH and nothing else
(setpriv's bounding set, no-new-privs), with busybox's sh and applets as in the
busybox image (.tools/bin/busybox: Debian's static 1.38.0; the image is 1.37.0, same
default applet set; without it the system's POSIX sh), over the secrets `make secrets` writes (0600,
owned by another user, as on a host) and the STAGE_* plan of the rendered compose.yaml.
Each consumer's copy must be owned by its user with the mode its image accepts
(tests/policy/images.yml), readable by that user and by no other, and a second run
(rotated secret, directories already handed over) must work with the same capabilities.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.policy import contracts, rules
from tools import secrets as secrets_tool

REPO = rules.REPO
SCRIPT = REPO / "tools" / "volume-init.sh"
HOST_USER = 1234  # owner of secrets/ on the "host"
CAPS = ["--bounding-set=-all,+chown,+dac_read_search", "--inh-caps=-all", "--no-new-privs"]


def _busybox_path(tmp: Path) -> str:
    """PATH for the script: busybox's applets first when busybox is installed (what the
    image has: its sh, cp, find, sed ...), else the system's POSIX tools."""
    busybox = shutil.which("busybox")
    if busybox is None:
        return os.environ["PATH"]
    applets = tmp / "busybox-applets"
    applets.mkdir()
    subprocess.run([busybox, "--install", "-s", str(applets)], check=True)
    return f"{applets}:{os.environ['PATH']}"


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A scratch directory other users may traverse (pytest's own is 0700), so the
    staged copies can be read as the consumers' users."""
    base = Path(tempfile.mkdtemp(prefix="volume-init-"))
    base.chmod(0o711)
    yield base
    shutil.rmtree(base)


@pytest.fixture
def host(tmp_path: Path, local_config: dict[str, Any]) -> dict[str, Any]:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        reason = "needs root and setpriv (util-linux) to run the script as compose does"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    secrets_tool.ensure(bundle, repo=REPO)
    run_secrets = tmp_path / "run-secrets"
    run_secrets.mkdir()
    # What compose binds into /run/secrets/<name>: the host files, owner and mode kept.
    stager = local_config["services"][contracts.STAGER]
    for ref in stager["secrets"]:
        source = Path(local_config["secrets"][ref["source"]]["file"])
        local = bundle / source.relative_to(REPO)
        target = run_secrets / ref["source"]
        if local.is_dir():
            shutil.copytree(local, target)
        else:
            shutil.copy2(local, target)
    for p in [run_secrets, *run_secrets.rglob("*")]:
        os.chown(p, HOST_USER, HOST_USER)
        p.chmod(0o700 if p.is_dir() else 0o600)
    staged = tmp_path / "staged"
    staged.mkdir(mode=0o711)
    plan = {
        k: v for k, v in stager["environment"].items() if k.startswith(contracts.STAGE_PREFIX)
    }
    for key in plan:
        (staged / key[len(contracts.STAGE_PREFIX) :]).mkdir(parents=True)
    probe, storage = tmp_path / "probe", tmp_path / "fluent-bit-storage"
    probe.mkdir()
    storage.mkdir()
    (storage / "chunk").write_text("x")
    busybox = tmp_path / "busybox"
    busybox.write_text("#!/bin/sh\n")
    env = {
        "PATH": _busybox_path(tmp_path),
        "SECRETS_DIR": str(run_secrets),
        "STAGED_DIR": str(staged),
        "PROBE_DIR": str(probe),
        "BUSYBOX": str(busybox),
        "FLUENT_BIT_STORAGE": str(storage),
        **plan,
    }
    return {"env": env, "plan": plan, "staged": staged, "secrets": run_secrets, "tmp": tmp_path}


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    shell = shutil.which("sh", path=env["PATH"]) or "/bin/sh"
    setpriv = shutil.which("setpriv") or "setpriv"  # util-linux's, not a busybox applet
    cmd = [setpriv, "--reuid=0", "--regid=0", "--clear-groups", *CAPS, shell, str(SCRIPT)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)


def _as(uid: int, path: Path) -> subprocess.CompletedProcess[str]:
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "cat", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def test_each_consumer_gets_its_own_copy(host: dict[str, Any]) -> None:
    proc = _run(host["env"])
    assert proc.returncode == 0, proc.stderr
    rows = contracts.load()
    es_modes = rows["docker.elastic.co/elasticsearch/elasticsearch:9.5.1"]["file_variables"]
    assert f"{contracts.STAGED_MODE:04o}" in es_modes["ELASTIC_PASSWORD_FILE"]["modes"]
    for key, value in host["plan"].items():
        owner, *names = value.split()
        uid, gid = (int(x) for x in owner.split(":"))
        directory = host["staged"] / key[len(contracts.STAGE_PREFIX) :]
        st = directory.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, 0o500), key
        expected = set()
        for name in names:
            src = host["secrets"] / name
            expected |= {p.name for p in src.iterdir()} if src.is_dir() else {name}
        assert {p.name for p in directory.iterdir()} == expected, key
        for f in directory.iterdir():
            st = f.stat()
            assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (uid, contracts.STAGED_MODE), f
    es = host["staged"] / "elasticsearch" / "elasticsearch_password"
    assert _as(1000, es).stdout == (host["secrets"] / "elasticsearch_password").read_text()
    denied = _as(472, es)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    assert stat.S_IMODE((host["tmp"] / "probe" / "busybox").stat().st_mode) == 0o555
    assert (host["tmp"] / "fluent-bit-storage" / "chunk").stat().st_uid == 65534


def test_second_run_restages_rotated_secrets(host: dict[str, Any]) -> None:
    assert _run(host["env"]).returncode == 0
    rotated = host["secrets"] / "elasticsearch_password"
    rotated.write_text("rotated-value-0123456789")
    proc = _run(host["env"])
    assert proc.returncode == 0, proc.stderr
    for consumer in ("elasticsearch", "jaeger", "fluent_bit", "grafana"):
        copy = host["staged"] / consumer / "elasticsearch_password"
        assert copy.read_text() == "rotated-value-0123456789", consumer


def test_missing_secret_stops_with_one_line(host: dict[str, Any]) -> None:
    (host["secrets"] / "postgres_password").unlink()
    proc = _run(host["env"])
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "postgres_password is missing: run make secrets"
    ), proc.stderr
