"""Every image the engine runs, read back against its row in tests/policy/images.yml.

The facsimiles are generated from those rows (dev/engine/facsimile.py); this reads the built
image itself (its config, and its file system as `docker export` gives it) so a generator bug,
a Debian package that brings a tool the upstream image lacks, or a row edited without a rebuild
fails here: user and uid, entrypoint, working directory, declared volumes and ports, every shell,
HTTP client and tool the row says is there (found on the image's PATH), every tool it says is
absent (not found), and the owner and mode of every declared path.
"""

from __future__ import annotations

import json
import posixpath
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dev.engine import daemon, facsimile

ROWS = {row["image"]: row for row in facsimile.load_rows()}
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Files:
    """An image's file system, from `docker export` of a container never started."""

    def __init__(self, engine: daemon.Engine, ref: str) -> None:
        cid = engine.docker("create", ref).stdout.decode().strip()
        try:
            export = subprocess.Popen([str(daemon.BIN / "docker"), "export", cid],
                                      env=engine.env(), stdout=subprocess.PIPE)
            assert export.stdout is not None
            with tarfile.open(fileobj=export.stdout, mode="r|") as tar:
                self.members = {"/" + m.name.strip("/").removeprefix("./"): m for m in tar}
            export.wait()
        finally:
            engine.docker("rm", "--force", cid, check=False)

    def resolve(self, path: str, depth: int = 0) -> tarfile.TarInfo | None:
        """The member at `path`, following symlinks (in any component) inside the image."""
        if depth > 20:
            return None
        parts = [p for p in path.split("/") if p]
        current = "/"
        for i, part in enumerate(parts):
            current = posixpath.join(current, part)
            member = self.members.get(current)
            if member is None:
                return None
            if member.issym():
                target = posixpath.normpath(posixpath.join(posixpath.dirname(current),
                                                           member.linkname))
                rest = "/".join(parts[i + 1:])
                return self.resolve(posixpath.join(target, rest) if rest else target, depth + 1)
        return self.members.get(current) if current != "/" else None

    def which(self, tool: str, path_env: str) -> str | None:
        if tool.startswith("/"):
            return tool if self.resolve(tool) is not None else None
        for directory in path_env.split(":"):
            found = self.resolve(posixpath.join(directory, tool))
            if found is not None and (found.isreg() and found.mode & 0o111):
                return posixpath.join(directory, tool)
        return None


@pytest.fixture(scope="module")
def images(engine: daemon.Engine) -> dict[str, tuple[dict[str, Any], Files]]:
    def read(ref: str) -> tuple[dict[str, Any], Files]:
        config = json.loads(engine.docker("image", "inspect", ref).stdout)[0]["Config"]
        return config, Files(engine, ref)

    # `docker export` of each image waits on the engine's I/O: a few at a time.
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(ROWS, pool.map(read, ROWS), strict=True))


def _passwd(engine: daemon.Engine, ref: str) -> str:
    proc = engine.docker("run", "--rm", "--entrypoint", "", "--user", "0", ref, "cat",
                         "/etc/passwd", check=False)
    return proc.stdout.decode()


@pytest.mark.parametrize("ref", sorted(ROWS))
def test_image_matches_its_row(engine: daemon.Engine, images: dict, ref: str) -> None:
    row = ROWS[ref]
    config, files = images[ref]
    env = dict(e.split("=", 1) for e in config.get("Env") or [])
    path_env = env.get("PATH", DEFAULT_PATH)
    problems = []

    user = row["user"]
    if user["uid"] == 0:
        if config.get("User") not in ("", None, "0", "root", "0:0"):
            problems.append(f"user {config.get('User')!r}, row says root")
    else:
        name = config.get("User") or ""
        if name.split(":")[0].isdigit():
            uid = int(name.split(":")[0])
        else:
            lines = [line.split(":") for line in _passwd(engine, ref).splitlines()]
            uid = next((int(x[2]) for x in lines if x[0] == name), -1)
        if uid != user["uid"]:
            problems.append(f"user {name!r} is uid {uid}, row says {user['uid']}")
    if (config.get("Entrypoint") or []) != (row.get("entrypoint") or []):
        problems.append(f"entrypoint {config.get('Entrypoint')}, row {row.get('entrypoint')}")
    if (config.get("WorkingDir") or "/") != row.get("workdir", "/"):
        problems.append(f"workdir {config.get('WorkingDir')!r}, row {row.get('workdir')!r}")
    if set(config.get("Volumes") or {}) != set(row.get("volumes") or []):
        problems.append(f"volumes {sorted(config.get('Volumes') or {})}, row {row.get('volumes')}")
    exposed = {int(p.split("/")[0]) for p in config.get("ExposedPorts") or {}}
    if not set(row.get("ports") or []) <= exposed:
        problems.append(f"ports {sorted(exposed)} lack {set(row['ports']) - exposed}")
    entry = row.get("entrypoint") or []
    if entry and files.which(entry[0], path_env) is None:
        problems.append(f"entrypoint {entry[0]} is not an executable file in the image")
    for tool in [*row.get("shells", []), *row.get("http_clients", []), *row.get("tools", [])]:
        if files.which(tool, path_env) is None:
            problems.append(f"{tool} not found on PATH {path_env}")
    for tool in row.get("absent") or []:
        found = files.which(tool, path_env)
        if found:
            problems.append(f"{tool} present at {found}, the upstream image has none")
    for path, want in (row.get("paths") or {}).items():
        member = files.resolve(path)
        owner, mode = want.split()
        if member is None or not member.isdir():
            problems.append(f"{path} missing")
            continue
        have = f"{member.uid}:{member.gid} {member.mode & 0o7777:04o}"
        if have != f"{owner} {int(mode, 8):04o}":
            problems.append(f"{path} is {have}, row says {want}")
    assert not problems, f"{ref} ({row['facsimile'].get('runs')}): " + "; ".join(problems)
