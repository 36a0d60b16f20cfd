"""Build the release tarball for a staging host: dist/apollonia-observability-<version>.tar.gz

    python -m dev.bundle [--out DIR]

Contents (one top-level directory named like the tarball):
  every file tracked by git except the development-only areas (DEV_ONLY below: dev/,
  tests/, native/, the CI and the dashboards' code generator): what an operator runs on a
  host (tools/) and every config, doc and the workload's source ship without a list to
  keep up to date; a new folder ships once it is committed,
  rendered/compose.local.yaml and rendered/compose.staging.yaml: `docker compose config`
  output (defaults applied, relative paths kept) for review and diffing between releases,
  install.sh: makes the secrets, runs the doctor, then `make up` with the staging overlay,
  VERSION and SHA256SUMS (`sha256sum -c SHA256SUMS` verifies the unpacked tree).
Never included: secrets/, .env, local state (.venv, .tools, .run) (all git-ignored).
A file under a shipped folder that git does not track (a new rules file not yet added)
stops the build with one line naming it: the bundle is what the commit holds.
The archive is reproducible: sorted entries, owner 0, mtime of the last commit.
`make bundle` lints first: a config that fails lint never ships.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NAME = "apollonia-observability"
# Development only (the tools/ vs dev/ split): never shipped. Everything else git tracks is.
DEV_ONLY = (
    "dev/",  # bootstrap, lint, the SLO generator, this builder, benchmarks
    "tests/",
    "native/",  # the native run (development machines without Docker)
    ".github/",
    ".ci/",
    ".gitignore",
    "grafana/codegen/",  # dashboards as code: the generated JSON ships
    "grafana/__init__.py",
)
# git pathspecs: the whole tree without the development-only areas.
SHIPPED = (".", *[f":(exclude){p}" for p in DEV_ONLY])
RENDERS = {
    "rendered/compose.local.yaml": (["compose.yaml"], ["demo"]),
    "rendered/compose.staging.yaml": (["compose.yaml", "compose.staging.yaml"], []),
}
INSTALL_SH = """#!/bin/sh
# Install this bundle on a staging host (Docker Engine + Compose plugin):
#   1. secrets: random passwords into secrets/ (kept if present; put real receiver
#      URLs into secrets/alertmanager/ and real DB passwords before or after),
#   2. the doctor: every FAIL line says how to fix it; nothing starts until all pass,
#   3. make up with the staging overlay and without the demo profile.
# See README, "Deploying to a staging host".
set -eu
cd "$(dirname "$0")"
if [ ! -f SHA256SUMS ]; then
    echo "install: SHA256SUMS is missing: unpack the whole tarball again" >&2
    exit 1
fi
if ! sha256sum --quiet -c SHA256SUMS; then
    echo "install: checksum mismatch: the bundle was altered or truncated" >&2
    exit 1
fi
python3 -m tools.secrets
if ! python3 -m tools.doctor --staging; then
    echo "install: fix the FAIL lines above, then run ./install.sh again" >&2
    exit 1
fi
exec make up PROFILES= COMPOSE_FILES="-f compose.yaml -f compose.staging.yaml"
"""


class BundleError(Exception):
    pass


def _git(*args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BundleError(f"git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def version() -> str:
    try:
        base = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"pyproject.toml: no [project] version to name the bundle ({exc})") \
            from exc
    rev = _git("rev-parse", "--short=10", "HEAD").strip()
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", *SHIPPED).strip()
    return f"{base}-g{rev}{'-dirty' if dirty else ''}"


def untracked() -> list[str]:
    """Files under the shipped folders that git does not track (and does not ignore)."""
    out = _git("ls-files", "-z", "--others", "--exclude-standard", "--", *SHIPPED,
               ":(exclude)dist")
    return sorted(f for f in out.split("\0") if f)


def files() -> list[str]:
    new = untracked()
    if new:
        more = f" and {len(new) - 5} more" if len(new) > 5 else ""
        raise BundleError(
            f"not in git, so not shipped: {', '.join(new[:5])}{more}; git add them (or remove "
            "them), commit, and build again")
    tracked = _git("ls-files", "-z", "--", *SHIPPED).split("\0")
    return sorted(f for f in tracked if f and (REPO / f).is_file())


def compose_cmd() -> list[str]:
    if os.environ.get("COMPOSE_BIN"):
        return os.environ["COMPOSE_BIN"].split()
    local = REPO / ".tools" / "bin" / "docker-compose"
    return [str(local)] if local.exists() else ["docker", "compose"]


def render(tree: Path, compose_files: list[str], profiles: list[str]) -> bytes:
    """`config` in the clean staged tree: no .env, no secrets/, relative paths kept."""
    empty_env = tree / ".env.render-empty"
    empty_env.write_text("")
    cmd = [*compose_cmd(), "--project-directory", str(tree), "--env-file", str(empty_env)]
    for f in compose_files:
        cmd += ["-f", str(tree / f)]
    for p in profiles:
        cmd += ["--profile", p]
    env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    try:
        proc = subprocess.run(
            [*cmd, "config", "--no-path-resolution"],
            capture_output=True,
            env=env,
            timeout=60,
        )
    finally:
        empty_env.unlink()
    if proc.returncode != 0:
        raise BundleError(f"compose config ({' + '.join(compose_files)}): {proc.stderr.decode()}")
    return proc.stdout


def build(out_dir: Path) -> Path:
    ver = version()
    top = f"{NAME}-{ver}"
    mtime = int(_git("log", "-1", "--format=%ct").strip())
    contents: dict[str, tuple[bytes, int]] = {}
    for rel in files():
        mode = 0o755 if os.access(REPO / rel, os.X_OK) else 0o644
        contents[rel] = ((REPO / rel).read_bytes(), mode)
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp)
        for rel, (data, _) in contents.items():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            (tree / rel).write_bytes(data)
        for rel, (compose_files, profiles) in RENDERS.items():
            header = (
                f"# Rendered by `python -m dev.bundle` for {top}: "
                f"{' + '.join(compose_files)}, profiles: {' '.join(profiles) or 'none'}.\n"
                "# For review only; install.sh runs the compose files themselves.\n"
            ).encode()
            contents[rel] = (header + render(tree, compose_files, profiles), 0o644)
    contents["install.sh"] = (INSTALL_SH.encode(), 0o755)
    contents["VERSION"] = (f"{ver}\n".encode(), 0o644)
    sums = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {rel}\n"
        for rel, (data, _) in sorted(contents.items())
    )
    contents["SHA256SUMS"] = (sums.encode(), 0o644)

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{top}.tar.gz"
    # gzip's own header carries a timestamp too: pin it for a reproducible archive.
    with (
        open(target, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for rel, (data, mode) in sorted(contents.items()):
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size, info.mode, info.mtime = len(data), mode, mtime
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.bundle", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output directory")
    args = parser.parse_args(argv)
    try:
        target = build(args.out)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"bundle: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except (BundleError, subprocess.TimeoutExpired) as exc:
        print(
            f"bundle: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}",
            file=sys.stderr,
        )
        return 1
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    print(f"bundle: {target} ({target.stat().st_size // 1024} KiB, sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
