"""Facsimile images, generated from tests/policy/images.yml and built into the private engine.

No image registry is reachable here, so every image compose pins is made locally and tagged
exactly as compose pins it, inside the private engine only. Each images.yml row carries the
upstream image's contract (user, shells, HTTP clients and tools present, tools absent,
entrypoint, working directory, declared volumes, the owner and mode of its paths, ports) and a
`facsimile:` section saying how to make it from Debian's build of the same program:

    facsimile:
      base: busybox | scratch | debian     # rootfs.py
      suite: sid                           # debian base: the suite
      packages: [postgresql-18=18.6-3]     # debian base: what to install (pinned)
      files: {/bin/prometheus: tools:usr/bin/prometheus, /x: repo:dev/engine/entrypoints/x}
      links: {/usr/local/bin/python: /usr/bin/python3.11}
      remove: [/bin/bash]                  # debian base: what the upstream image lacks
      accounts: [{name: postgres, uid: 70, gid: 70, group: postgres}]  # default: the row's user
      user: "1000:0"                       # the image's USER line, when not the account's name
      env: {PGDATA: /var/lib/postgresql/data}
      cmd: [postgres]
      standin: what stands in for it       # no Debian package: say what runs instead (label)
      runs: PostgreSQL 18.6 (Debian postgresql-18 18.6-3)

`tools:` files come from the packages dev/bootstrap.sh unpacked into .tools/root (the pins
live there, once); `repo:` files from this repository; `host:` from this machine (its CA
bundle only). The contract facts themselves (user,
entrypoint, workdir, volumes, paths) are applied from the row, so the contract and the image
cannot drift; tests/engine/test_facsimiles.py reads every built image back against its row.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dev.engine import rootfs
from dev.engine.daemon import ROOT, STATE, Engine, EngineError

IMAGES_FILE = ROOT / "tests" / "policy" / "images.yml"
TOOLS_ROOT = ROOT / ".tools" / "root"
MMDEBSTRAP = ROOT / ".tools" / "bin" / "engine" / "mmdebstrap"
BUSYBOX = TOOLS_ROOT / "usr" / "bin" / "busybox"
CACHE = STATE / "cache"
_HERE = Path(__file__).resolve().parent
# The files whose content decides what an image looks like: a change rebuilds it.
_GENERATOR_FILES = (_HERE / "rootfs.py", Path(__file__).resolve())

Row = dict[str, Any]


def load_rows(path: Path = IMAGES_FILE) -> list[Row]:
    doc = yaml.safe_load(path.read_text()) or {}
    return [row for row in doc.get("images") or [] if row.get("facsimile")]


def _source(ref: str) -> Path:
    kind, _, rel = ref.partition(":")
    base = {"tools": TOOLS_ROOT, "repo": ROOT, "host": Path("/")}.get(kind)
    if base is None or not rel:
        raise EngineError(f"images.yml: file source {ref!r} is not tools:, repo: or host:<path>")
    path = base / rel.lstrip("/")
    if not path.exists():
        hint = "run `make bootstrap`" if kind == "tools" else "the file is missing"
        raise EngineError(f"images.yml: {ref} not found at {path} ({hint})")
    return path


def _owner_mode(text: str) -> tuple[int, int, int]:
    owner, mode = str(text).split()
    uid, gid = owner.split(":")
    return int(uid), int(gid), int(mode, 8)


@dataclass
class Plan:
    row: Row

    @property
    def ref(self) -> str:
        return str(self.row["image"])

    @property
    def fac(self) -> dict[str, Any]:
        return dict(self.row["facsimile"])

    def files(self) -> dict[str, Path]:
        return {dest: _source(src) for dest, src in (self.fac.get("files") or {}).items()}

    def shape(self) -> rootfs.Shape:
        user = self.row.get("user") or {}
        accounts = [rootfs.Account(**a) for a in self.fac.get("accounts") or []]
        if not accounts and user.get("name") and user.get("uid") not in (0, None):
            accounts.append(rootfs.Account(user["name"], int(user["uid"]), int(user["gid"]),
                                           str(self.fac.get("group", user["name"]))))
        files: dict[str, tuple[bytes | str, int]] = {}
        base = self.fac.get("base")
        if base == "debian":  # minimal() already placed them for busybox/scratch
            for dest, src in self.files().items():
                files[dest] = (src.read_bytes(), 0o755 if src.stat().st_mode & 0o111 else 0o644)
        for dest, target in (self.fac.get("links") or {}).items():
            files[dest] = (str(target), 0o777)
        return rootfs.Shape(
            accounts=accounts,
            paths={p: _owner_mode(v) for p, v in (self.row.get("paths") or {}).items()},
            files=files,
            remove=list(self.fac.get("remove") or []),
        )

    def changes(self) -> list[str]:
        """`docker import --change` lines: the image config the row states."""
        user = self.row.get("user") or {}
        changes = []
        if self.fac.get("user"):  # the image's USER as upstream writes it (e.g. "1000:0")
            changes.append(f"USER {self.fac['user']}")
        elif user.get("uid") not in (None, 0):
            changes.append(f"USER {user.get('name') or user['uid']}")
        if self.row.get("entrypoint"):
            changes.append(f"ENTRYPOINT {json.dumps(self.row['entrypoint'])}")
        if self.fac.get("cmd"):
            changes.append(f"CMD {json.dumps(self.fac['cmd'])}")
        if self.row.get("workdir"):
            changes.append(f"WORKDIR {self.row['workdir']}")
        for key, value in (self.fac.get("env") or {}).items():
            changes.append(f"ENV {key}={value}")
        for volume in self.row.get("volumes") or []:
            changes.append(f"VOLUME {json.dumps([volume])}")
        for port in self.row.get("ports") or []:
            changes.append(f"EXPOSE {port}")
        return changes

    def key(self) -> str:
        """Hash of everything the image is made of: the row, the generator and each input."""
        digest = hashlib.sha256(json.dumps(self.row, sort_keys=True, default=str).encode())
        for path in [*_GENERATOR_FILES, *sorted(self.files().values())]:
            digest.update(str(path).encode())
            digest.update(path.read_bytes())
        if self.fac.get("base") == "busybox":
            digest.update(BUSYBOX.read_bytes())
        return digest.hexdigest()[:16]


def _base_tarball(plan: Plan, work: Path) -> Path:
    fac = plan.fac
    base = fac.get("base")
    if base in ("busybox", "scratch"):
        out = work / "base.tar"
        rootfs.minimal(out, base, BUSYBOX if base == "busybox" else None, plan.files())
        return out
    if base == "debian":
        suite = str(fac.get("suite", "bookworm"))
        packages = [str(p) for p in fac.get("packages") or []]
        name = hashlib.sha256(json.dumps([suite, packages]).encode()).hexdigest()[:12]
        out = CACHE / f"debian-{suite}-{name}.tar"
        if not out.exists():
            if not MMDEBSTRAP.exists():
                raise EngineError(f"{MMDEBSTRAP} missing: run `make bootstrap`")
            partial = out.with_suffix(".partial")
            rootfs.debian(partial, MMDEBSTRAP, suite, packages)
            partial.rename(out)
        return out
    raise EngineError(f"images.yml: {plan.ref}: facsimile base {base!r} is not "
                      "busybox, scratch or debian")


KEY_LABEL = "org.apollonia.facsimile.key"


def _dockerfile(plan: Plan, base_ref: str, key: str) -> str:
    """What `docker import` cannot set: labels (the key, what runs, a stand-in's name), the
    stop signal and an image healthcheck."""
    fac = plan.fac
    lines = [f"FROM {base_ref}",
             f"LABEL {KEY_LABEL}={json.dumps(key)} "
             f"org.apollonia.facsimile.runs={json.dumps(str(fac.get('runs', '')))}"]
    if fac.get("standin"):
        lines.append(f"LABEL org.apollonia.standin={json.dumps(str(fac['standin']))}")
    if fac.get("stop_signal"):
        lines.append(f"STOPSIGNAL {fac['stop_signal']}")
    if fac.get("healthcheck"):
        lines.append(f"HEALTHCHECK CMD {json.dumps(fac['healthcheck'])}")
    return "\n".join(lines) + "\n"


def build(engine: Engine, plan: Plan) -> bool:
    """Build one image unless the engine already has it with the same key. True if built."""
    key = plan.key()
    have = engine.docker("image", "inspect", "--format",
                         f'{{{{index .Config.Labels "{KEY_LABEL}"}}}}', plan.ref, check=False)
    if have.returncode == 0 and have.stdout.decode().strip() == key:
        return False
    work = CACHE / "work" / hashlib.sha256(plan.ref.encode()).hexdigest()[:12]
    work.mkdir(parents=True, exist_ok=True)
    base_ref = f"apollonia-facsimile-rootfs:{key}"
    try:
        base = _base_tarball(plan, work)
        shaped = work / "image.tar"
        rootfs.shape(base, shaped, plan.shape())
        args = ["import"]
        for change in plan.changes():
            args += ["--change", change]
        with open(shaped, "rb") as data:
            engine.docker(*args, "-", base_ref, stdin=data, timeout=600)
        dockerfile = work / "Dockerfile"
        dockerfile.write_text(_dockerfile(plan, base_ref, key))
        with open(dockerfile, "rb") as text:
            engine.docker("build", "--quiet", "--tag", plan.ref, "-", stdin=text, timeout=300)
        engine.docker("image", "rm", base_ref, check=False)
    except (rootfs.RootfsError, tarfile.TarError, OSError) as exc:
        raise EngineError(f"{plan.ref}: {exc}") from exc
    finally:
        for leftover in work.glob("*.tar"):
            leftover.unlink()
    return True


def build_all(engine: Engine, only: list[str] | None = None) -> list[str]:
    """Build every facsimile (or those in `only`); return the references built now."""
    plans = [Plan(row) for row in load_rows()]
    if only:
        unknown = set(only) - {p.ref for p in plans}
        if unknown:
            raise EngineError(f"no facsimile row for {', '.join(sorted(unknown))} in {IMAGES_FILE}")
        plans = [p for p in plans if p.ref in only]
    built = []
    for plan in plans:
        if build(engine, plan):
            built.append(plan.ref)
            print(f"facsimile: built {plan.ref} ({plan.fac.get('runs', '')})", flush=True)
    if built:  # the images they replaced, now untagged
        engine.docker("image", "prune", "--force", check=False)
    return built
