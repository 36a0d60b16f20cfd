"""Root filesystems for facsimile images, written as tarballs that `docker import` takes.

Three starting points:
  busybox     Debian's static busybox with every applet in /bin (the shape of the
              prometheus/busybox and Alpine bases: sh, wget, cat, ... and nothing else);
  scratch     nothing but the files an image row names (FROM scratch / distroless images);
  debian      a Debian suite (bookworm or sid) made by mmdebstrap (minbase, no docs or
              manuals, as Docker's slim images), with the packages a row names.
Then one pass over the tarball (`shape`) gives it the row's contract: users and groups with
the upstream uid/gid (renumbering Debian's own where they differ, and every file they own),
the owner and mode of each declared path, added files, and removed tools (a tool the upstream
image lacks must be absent here too, or a healthcheck that needs it would pass only here).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
MIRROR = "http://deb.debian.org/debian"
# Slim like Docker's Debian-based images: no documentation, manuals or translations.
_DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*",
                  "/usr/share/locale/*", "/usr/share/lintian/*")


class RootfsError(RuntimeError):
    pass


@dataclass
class Account:
    name: str
    uid: int
    gid: int
    group: str
    home: str = "/"
    shell: str = "/sbin/nologin"


@dataclass
class Shape:
    """What `shape` does to a root filesystem tarball."""

    accounts: list[Account] = field(default_factory=list)
    # image path -> (uid, gid, mode); directories are created when missing
    paths: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    # image path -> bytes (mode 0755 if executable else 0644), or a symlink target ("-> x")
    files: dict[str, tuple[bytes | str, int]] = field(default_factory=dict)
    # image paths removed, with everything under them
    remove: list[str] = field(default_factory=list)


# --- starting points ---------------------------------------------------------------------


def _add_bytes(tar: tarfile.TarFile, path: str, data: bytes, mode: int, uid: int = 0,
               gid: int = 0) -> None:
    info = tarfile.TarInfo(path.lstrip("/"))
    info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, gid, 0
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, path: str, mode: int = 0o755, uid: int = 0,
             gid: int = 0) -> None:
    info = tarfile.TarInfo(path.lstrip("/"))
    info.type, info.mode, info.uid, info.gid, info.mtime = tarfile.DIRTYPE, mode, uid, gid, 0
    tar.addfile(info)


def _add_link(tar: tarfile.TarFile, path: str, target: str) -> None:
    info = tarfile.TarInfo(path.lstrip("/"))
    info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, 0o777, 0
    tar.addfile(info)


def _libraries(binaries: Iterable[Path]) -> list[Path]:
    """The shared libraries (and the loader) the dynamically linked binaries need."""
    found: set[Path] = set()
    for binary in binaries:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
                found.add(Path(parts[2]))
            elif parts and parts[0].startswith("/"):
                found.add(Path(parts[0]))
    return sorted(found)


def minimal(out: Path, kind: str, busybox: Path | None, binaries: Mapping[str, Path]) -> None:
    """A busybox or scratch root: the binaries at their image paths, the glibc they link
    against (the building machine's, Debian 12), the host's CA bundle, /tmp 1777."""
    seen_dirs = {"/bin", "/etc", "/etc/ssl", "/etc/ssl/certs", "/lib", "/lib64", "/usr",
                 "/usr/bin", "/usr/lib", "/usr/share", "/root", "/var", "/var/run", "/proc",
                 "/sys", "/dev", "/tmp"}
    with tarfile.open(out, "w") as tar:
        for d in sorted(seen_dirs - {"/tmp"}):
            _add_dir(tar, d, 0o700 if d == "/root" else 0o755)
        _add_dir(tar, "/tmp", 0o1777)
        if kind == "busybox":
            if busybox is None:
                raise RootfsError("busybox base needs the busybox binary (make bootstrap)")
            _add_bytes(tar, "/bin/busybox", busybox.read_bytes(), 0o755)
            applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True,
                                     check=True).stdout.split()
            for applet in applets:
                if applet != "busybox":
                    _add_link(tar, f"/bin/{applet}", "busybox")
        for image_path, source in sorted(binaries.items()):
            _ensure_parents(tar, image_path, seen_dirs)
            _add_bytes(tar, image_path, source.read_bytes(), 0o755 if os.access(source, os.X_OK)
                       else 0o644)
        elf = [p for p in binaries.values() if p.read_bytes()[:4] == b"\x7fELF"]
        for lib in _libraries(elf):
            real = lib.resolve()
            _ensure_parents(tar, str(lib), seen_dirs)
            _add_bytes(tar, str(lib), real.read_bytes(), 0o755)
        if HOST_CA_BUNDLE.exists():
            _add_bytes(tar, str(HOST_CA_BUNDLE), HOST_CA_BUNDLE.read_bytes(), 0o644)


def _ensure_parents(tar: tarfile.TarFile, path: str, seen: set[str]) -> None:
    parts = Path(path).parent.parts
    for i in range(2, len(parts) + 1):
        d = "/" + "/".join(parts[1:i])
        if d not in seen:
            _add_dir(tar, d)
            seen.add(d)


def debian(out: Path, mmdebstrap: Path, suite: str, packages: list[str]) -> None:
    """mmdebstrap minbase of `suite` with `packages`, written to `out` (a tarball)."""
    if shutil.which("apt-get") is None:
        raise RootfsError("a Debian root filesystem needs apt-get on this machine")
    cmd = ["perl", str(mmdebstrap), "--variant=minbase", "--mode=root", "--quiet",
           "--format=tar", f"--include={','.join(packages)}" if packages else "--include=",
           *(f"--dpkgopt=path-exclude={p}" for p in _DPKG_EXCLUDES),
           # Signatures are checked; the Release file's Valid-Until is not: the archive this
           # machine reaches may be a frozen mirror whose unstable Release has expired.
           "--aptopt=Acquire::Check-Valid-Until \"false\"",
           # No service may start during the build (postgresql, redis, rabbitmq postinsts).
           "--customize-hook=rm -f \"$1\"/etc/machine-id",
           suite, str(out), MIRROR]
    # mmdebstrap runs mmtarfilter (beside it) for the path excludes.
    env = {**os.environ, "PATH": f"{mmdebstrap.parent}:{os.environ.get('PATH', '')}"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-4:])
        raise RootfsError(f"mmdebstrap {suite} {' '.join(packages)} failed: {tail}")


# --- the contract pass ---------------------------------------------------------------------


def _parse_accounts(passwd: str, group: str) -> tuple[list[list[str]], list[list[str]]]:
    return ([line.split(":") for line in passwd.splitlines() if line.count(":") == 6],
            [line.split(":") for line in group.splitlines() if line.count(":") == 3])


def _renumber(passwd: list[list[str]], group: list[list[str]], accounts: list[Account]
              ) -> tuple[dict[int, int], dict[int, int]]:
    """Give each account its upstream uid/gid; move any other entry that holds that id out of
    the way (to a free id), and return the old -> new maps for the files they own."""
    uid_map: dict[int, int] = {}
    gid_map: dict[int, int] = {}
    used_uids = {int(p[2]) for p in passwd}
    used_gids = {int(g[2]) for g in group}

    def free(used: set[int]) -> int:
        candidate = 60000
        while candidate in used:
            candidate -= 1
        used.add(candidate)
        return candidate

    for acc in accounts:
        g = next((g for g in group if g[0] == acc.group), None)
        holder = next((g for g in group if int(g[2]) == acc.gid and g[0] != acc.group), None)
        if holder:
            new = free(used_gids)
            gid_map[int(holder[2])] = new
            holder[2] = str(new)
        if g is None:
            group.append([acc.group, "x", str(acc.gid), ""])
        elif int(g[2]) != acc.gid:
            gid_map[int(g[2])] = acc.gid
            g[2] = str(acc.gid)
        used_gids.add(acc.gid)
    for p in passwd:  # primary groups follow their group's new id
        if int(p[3]) in gid_map:
            p[3] = str(gid_map[int(p[3])])
    for acc in accounts:
        p = next((p for p in passwd if p[0] == acc.name), None)
        holder = next((p for p in passwd if int(p[2]) == acc.uid and p[0] != acc.name), None)
        if holder:
            new = free(used_uids)
            uid_map[int(holder[2])] = new
            holder[2] = str(new)
        if p is None:
            passwd.append([acc.name, "x", str(acc.uid), str(acc.gid), acc.name, acc.home,
                           acc.shell])
        else:
            if int(p[2]) != acc.uid:
                uid_map[int(p[2])] = acc.uid
            p[2], p[3] = str(acc.uid), str(acc.gid)
        used_uids.add(acc.uid)
    return uid_map, gid_map


def shape(src: Path, out: Path, spec: Shape) -> None:
    """Copy the tarball `src` to `out` with the contract of `spec` applied."""
    with tarfile.open(src) as tar:
        members = tar.getmembers()
        names = {m.name.rstrip("/").removeprefix("./"): m for m in members}

        def read(path: str) -> str:
            m = names.get(path)
            f = tar.extractfile(m) if m is not None else None
            return f.read().decode() if f else ""

        passwd, group = _parse_accounts(read("etc/passwd"), read("etc/group"))
        if not passwd:
            passwd = [["root", "x", "0", "0", "root", "/root", "/bin/sh"]]
            group = [["root", "x", "0", ""]]
        uid_map, gid_map = _renumber(passwd, group, spec.accounts)
        removed = tuple(p.strip("/") for p in spec.remove)
        replaced = {p.lstrip("/") for p in [*spec.files, *spec.paths]} | {"etc/passwd",
                                                                         "etc/group"}
        with tarfile.open(out, "w") as dst:
            for m in members:
                name = m.name.rstrip("/").removeprefix("./")
                if not name or name.startswith(removed) and any(
                        name == r or name.startswith(r + "/") for r in removed):
                    continue
                if name in replaced and not m.isdir():
                    continue
                m.uid = uid_map.get(m.uid, m.uid)
                m.gid = gid_map.get(m.gid, m.gid)
                m.uname = m.gname = ""
                if m.isdir() and "/" + name in spec.paths:
                    m.uid, m.gid, m.mode = spec.paths["/" + name]
                dst.addfile(m, tar.extractfile(m) if m.isreg() else None)
            seen = {"/" + m.name.rstrip("/").removeprefix("./") for m in dst.getmembers()}
            _add_bytes(dst, "/etc/passwd",
                       "".join(":".join(p) + "\n" for p in passwd).encode(), 0o644)
            _add_bytes(dst, "/etc/group",
                       "".join(":".join(g) + "\n" for g in group).encode(), 0o644)
            for path, (uid, gid, mode) in sorted(spec.paths.items()):
                if path not in seen:
                    _ensure_parents(dst, path, seen)
                    _add_dir(dst, path, mode, uid, gid)
                    seen.add(path)
            for path, (content, mode) in sorted(spec.files.items()):
                _ensure_parents(dst, path, seen)
                if isinstance(content, str):
                    _add_link(dst, path, content)
                else:
                    _add_bytes(dst, path, content, mode)
