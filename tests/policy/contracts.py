"""Image contracts (tests/policy/images.yml) and the rules that check compose against them.

Like tests/policy/rules.py, each rule takes a rendered configuration (`docker-compose
config --format json`) and returns violations, one readable line each. The secret rules
follow the bundle's delivery design: only the one-shot STAGER service mounts files of
secrets/ (as compose secrets); it copies each consumer's secrets into a per-consumer
volume owned by the consumer's user, mode STAGED_MODE (tools/volume-init.sh), planned by
its STAGE_<dir> environment variables.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.policy import rules

REPO = rules.REPO
IMAGES_FILE = Path(__file__).with_name("images.yml")
STAGER = "volume-init"
STAGED_ROOT = "/staged"
STAGE_PREFIX = "STAGE_"
# What tools/volume-init.sh gives every staged file (test_volume_init.py runs it).
STAGED_MODE = 0o400
PROBE_DIR = "/probe"
FACTS = (
    "user",
    "shells",
    "http_clients",
    "tools",
    "entrypoint",
    "file_variables",
    "writes",
    "volumes",
    "memory_floor",
    "ports",
    "workdir",
    "paths",
    "absent",
)
# owner/repo@<tag or commit>:<path>, a URL, or a file of this repository (its own
# Dockerfile, configs, the field notes); "none ..." where upstream documents nothing.
_SOURCE = re.compile(r"^(?:[\w.-]+/[\w.-]+@[\w./-]+:\S+|https://\S+|none\b)")
_FIELD_NOTES = "shared/reference/field-notes.md"
# Utilities any image with a shell has (busybox, coreutils).
_SHELL_UTILITIES = {"cat", "printf", "echo", "test", "true", "false", "exec", "["}
_HTTP = {"curl", "wget"}
Row = dict[str, Any]


# --- the data file -----------------------------------------------------------------


def _cites(source: str) -> bool:
    first = source.split()[0]
    return bool(_SOURCE.match(source)) or first == _FIELD_NOTES or (REPO / first).is_file()


def load(path: Path = IMAGES_FILE) -> dict[str, Row]:
    doc = yaml.safe_load(path.read_text()) or {}
    return {row["image"]: row for row in doc.get("images") or []}


def row_problems(rows: Mapping[str, Row]) -> list[str]:
    """Every row states every fact, each with a source that names a file or a URL."""
    bad = []
    for image, row in rows.items():
        sources = row.get("sources") or {}
        for fact in FACTS:
            if fact not in row:
                bad.append(f"{image}: fact {fact} missing")
            elif not str(sources.get(fact) or "").strip():
                bad.append(f"{image}: fact {fact} has no source")
            elif not _cites(str(sources[fact])):
                bad.append(f"{image}: source of {fact} names neither a file nor a URL")
        for fact in sources.keys() - set(FACTS):
            bad.append(f"{image}: source for unknown fact {fact}")
    return bad


# --- which images the compose files pin --------------------------------------------


def compose_files(repo: Path = REPO) -> list[Path]:
    """Every compose file of the repository root: new ones are covered automatically."""
    return sorted(repo.glob("compose*.yaml")) + sorted(repo.glob("compose*.yml"))


_IMAGE_LINE = re.compile(r"^\s*image:\s*[\"']?(?P<ref>[^\s\"'#]+)", re.M)
_DEFAULT = re.compile(r"\$\{\w+:-([^}]+)\}")


_FROM = re.compile(r"^FROM\s+(?:--\S+\s+)*(?P<ref>\S+)", re.M | re.I)
_DOCKERFILE_KEY = re.compile(r"^\s*dockerfile:\s*[\"']?(?P<path>[^\s\"'#]+)", re.M)


def pinned_images(text: str) -> set[str]:
    """Image references a compose file runs by default (`${X_IMAGE:-ref}` -> ref)."""
    return {_DEFAULT.sub(r"\1", m.group("ref")) for m in _IMAGE_LINE.finditer(text)}


def built_from(repo: Path = REPO) -> list[Path]:
    """The Dockerfiles the compose files build: their FROM images need rows too (the engine
    suite makes facsimiles of them)."""
    found = {repo / m.group("path") for path in compose_files(repo)
             for m in _DOCKERFILE_KEY.finditer(path.read_text())}
    return sorted(p for p in found if p.is_file())


def base_images(text: str) -> set[str]:
    """FROM images of a Dockerfile (its own build stages excluded)."""
    refs = [m.group("ref") for m in _FROM.finditer(text)]
    stage = re.compile(r"^FROM\s+\S+\s+AS\s+(\S+)", re.M | re.I)
    stages = {m.group(1).lower() for m in stage.finditer(text)}
    return {r for r in refs if r.lower() not in stages}


def coverage(files: Iterable[Path], rows: Mapping[str, Row]) -> list[str]:
    bad, used = [], set()
    for path in files:
        text = path.read_text()
        refs = base_images(text) if "Dockerfile" in path.name else pinned_images(text)
        for ref in sorted(refs):
            used.add(ref)
            if ref not in rows:
                bad.append(f"{path.name}: image {ref} has no row in tests/policy/images.yml")
    for ref in sorted(rows.keys() - used):
        bad.append(f"images.yml: row {ref} is used by no compose file or Dockerfile they build "
                   "(stale after a bump?)")
    return bad


# --- helpers over a rendered service ----------------------------------------------------


def _row(svc: Mapping[str, Any], rows: Mapping[str, Row]) -> Row | None:
    return rows.get(str(svc.get("image", "")))


def effective_user(svc: Mapping[str, Any], row: Row) -> tuple[int, int] | str:
    """(uid, gid) the container runs as, or a message when compose's user is unknown."""
    image_user = row.get("user") or {}
    user = str(svc.get("user") or "")
    if not user:
        return int(image_user["uid"]), int(image_user["gid"])
    name, _, group = user.partition(":")
    if name.isdigit():
        uid = int(name)
    elif name == image_user.get("name"):
        uid = int(image_user["uid"])
    elif name == "root":
        uid = 0
    else:
        return f"user {name} is not the image's user ({image_user.get('name')})"
    if group.isdigit():
        gid = int(group)
    elif not group:
        gid = int(image_user["gid"]) if uid == int(image_user["uid"]) else uid
    else:
        return f"group {group} is not numeric"
    return uid, gid


def _argv(value: Any) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def _shell_commands(script: str) -> set[str]:
    """Command names of a small shell script (first word of each simple command,
    after variable assignments and `exec`; command substitutions included)."""
    script = re.sub(r"'[^']*'", "''", script)  # single-quoted text runs nothing
    substitutions = re.findall(r"\$\(([^()]*)\)", script)
    script = re.sub(r"\$\(([^()]*)\)", "X", script)
    names = set()
    for part in [script, *substitutions]:
        for segment in re.split(r"&&|\|\||[;|&]", part):
            try:
                words = shlex.split(segment)
            except ValueError:
                words = segment.split()
            while words and (re.match(r"^\w+=", words[0]) or words[0] in ("exec", "!")):
                words.pop(0)
            if words:
                names.add(words[0])
    return names


def _mounts(svc: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(svc.get("volumes") or [])


def _with_rows(
    cfg: rules.Config, rows: Mapping[str, Row]
) -> Iterator[tuple[str, dict[str, Any], Row]]:
    """(name, service, its image's row) for every service whose image has a row."""
    for name, svc in rules.services(cfg).items():
        row = _row(svc, rows)
        if row is not None:
            yield name, svc, row


def _has_probe(svc: Mapping[str, Any]) -> bool:
    return any(m.get("target") == PROBE_DIR for m in _mounts(svc))


# --- commands the images must provide ------------------------------------------------


def _check_binary(name: str, row: Row, svc: Mapping[str, Any], what: str) -> str | None:
    base = name.rsplit("/", 1)[-1]
    if name.startswith(PROBE_DIR + "/"):
        return None if _has_probe(svc) else f"{what} runs {name} but mounts no {PROBE_DIR}"
    have = set(row.get("http_clients") or []) | set(row.get("tools") or [])
    have |= set(row.get("shells") or [])
    have |= {e.rsplit("/", 1)[-1] for e in row.get("entrypoint") or []}
    if base in have:
        return None
    kind = "HTTP client" if base in _HTTP else "binary"
    return f"{what} calls {base}, a {kind} {svc.get('image')} does not have (images.yml)"


def command_violations(cfg: rules.Config, rows: Mapping[str, Row]) -> list[str]:
    """Healthchecks and entrypoint overrides only call what the image ships."""
    bad = []
    for name, svc, row in _with_rows(cfg, rows):
        shells = set(row.get("shells") or [])
        test = _argv((svc.get("healthcheck") or {}).get("test"))
        calls: list[tuple[str, str]] = []
        if test[:1] == ["CMD"] and len(test) > 1:
            calls.append((test[1], "healthcheck"))
        elif test[:1] == ["CMD-SHELL"]:
            if not shells:
                bad.append(f"{name}: healthcheck needs a shell, {svc.get('image')} has none")
            for cmd in _shell_commands(" ".join(test[1:])):
                if cmd not in _SHELL_UTILITIES:
                    calls.append((cmd, "healthcheck"))
        entry = _argv(svc.get("entrypoint"))
        first = entry[0] if entry else None
        if first is None and not row.get("entrypoint") and svc.get("command"):
            first = _argv(svc.get("command"))[0]
        if first:
            calls.append((first, "entrypoint"))
            if first.rsplit("/", 1)[-1] in {"sh", "bash"} and "-c" in entry:
                script = entry[entry.index("-c") + 1]
                for cmd in _shell_commands(script):
                    if cmd not in _SHELL_UTILITIES:
                        calls.append((cmd, "entrypoint script"))
        for binary, what in calls:
            problem = _check_binary(binary, row, svc, f"{name}: {what}")
            if problem:
                bad.append(problem)
    return bad


# --- secrets ------------------------------------------------------------------------------


@dataclass
class Stage:
    volume: str
    owner: tuple[int, int]
    names: set[str]


def stages(cfg: rules.Config, generated: set[Path] | None = None) -> dict[str, Stage]:
    """Staged volumes by name, from the stager's STAGE_* plan and its /staged mounts."""
    svcs = rules.services(cfg)
    stager = svcs.get(STAGER) or {}
    env = stager.get("environment") or {}
    by_target = {m.get("target"): m.get("source") for m in _mounts(stager)}
    declared = cfg.get("secrets") or {}
    out = {}
    for key, value in env.items():
        if not key.startswith(STAGE_PREFIX) or not value:
            continue
        directory = key[len(STAGE_PREFIX) :]
        volume = by_target.get(f"{STAGED_ROOT}/{directory}")
        if volume is None:
            continue
        owner_text, *names = str(value).split()
        uid, _, gid = owner_text.partition(":")
        files: set[str] = set()
        for secret in names:
            source = Path(str((declared.get(secret) or {}).get("file") or ""))
            inside = {p.name for p in generated or () if p.parent == source}
            files |= inside or {secret}
        out[volume] = Stage(volume, (int(uid), int(gid or uid)), files)
    return out


def _text_of_mounts(svc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(container path, text) of every repository file the service bind-mounts."""
    found = []
    for m in _mounts(svc):
        if m.get("type") != "bind":
            continue
        src = Path(str(m.get("source")))
        if not src.is_relative_to(REPO) or not src.exists():
            continue
        files = [src] if src.is_file() else [p for p in sorted(src.rglob("*")) if p.is_file()]
        for f in files:
            target = m["target"] if f == src else f"{m['target']}/{f.relative_to(src)}"
            try:
                found.append((target, f.read_text()))
            except (UnicodeDecodeError, OSError):
                continue
    return found


def _service_strings(svc: Mapping[str, Any]) -> str:
    parts = [str(v) for v in (svc.get("environment") or {}).values()]
    parts += _argv((svc.get("healthcheck") or {}).get("test"))
    parts += _argv(svc.get("entrypoint")) + _argv(svc.get("command"))
    return "\n".join(parts)


def secret_violations(
    cfg: rules.Config,
    rows: Mapping[str, Row],
    generated: set[Path],
    staged_mode: int = STAGED_MODE,
    repo: Path = REPO,
) -> list[str]:
    bad = []
    plan = stages(cfg, generated)
    secrets_dir = repo / "secrets"
    for name, svc in rules.services(cfg).items():
        if name != STAGER:
            for ref in svc.get("secrets") or []:
                bad.append(
                    f"{name}: compose secret {ref.get('source')} is a bind mount that keeps the "
                    "host file's owner and mode; stage it through volume-init"
                )
        for m in _mounts(svc):
            src = Path(str(m.get("source") or ""))
            if m.get("type") == "bind" and src.is_relative_to(secrets_dir):
                bad.append(
                    f"{name}: bind-mounts {src.relative_to(repo)} directly (host owner and "
                    "mode); stage it through volume-init"
                )
        row = _row(svc, rows)
        if row is None or name == STAGER:
            continue
        user = effective_user(svc, row)
        staged = {
            m["target"]: plan[m["source"]]
            for m in _mounts(svc)
            if m.get("type") == "volume" and m.get("source") in plan
        }
        for m in _mounts(svc):
            if m.get("source") in plan and not m.get("read_only"):
                bad.append(f"{name}: staged secrets {m['source']} must be mounted read-only")
            elif (
                m.get("type") == "volume"
                and str(m.get("source")).startswith("secrets-")
                and m.get("source") not in plan
            ):
                bad.append(f"{name}: volume {m['source']} is staged by no STAGE_* plan")
        for stage in staged.values():
            if isinstance(user, str):
                bad.append(f"{name}: {user}")
            elif user != stage.owner:
                bad.append(
                    f"{name}: runs as {user[0]}:{user[1]} but its staged secrets "
                    f"({stage.volume}) belong to {stage.owner[0]}:{stage.owner[1]}"
                )
        # Every reference to a staged path names a staged file.
        texts = [("compose", _service_strings(svc)), *_text_of_mounts(svc)]
        work = str(svc.get("working_dir") or "")
        for where, text in texts:
            for target, stage in {**{"/run/secrets": None}, **staged}.items():
                prefixes = [re.escape(target)]
                base = str(Path(where).parent) if where != "compose" else work
                if stage is not None and base and target.startswith(base + "/"):
                    prefixes.append(r"(?<![\w./-])" + re.escape(target[len(base) + 1 :]))
                for prefix in prefixes:
                    for ref in re.findall(prefix + r"/([\w.-]+)", text):
                        if stage is None:
                            bad.append(
                                f"{name}: reads {target}/{ref} but mounts no staged secrets there"
                            )
                        elif ref not in stage.names:
                            bad.append(
                                f"{name}: {where} reads {target}/{ref}, which {STAGER} does not "
                                f"stage into {stage.volume}"
                            )
        # *_FILE variables naming a secret: the image must read them, in a mode the
        # stager gives (other *_FILE variables, e.g. a heartbeat file in /tmp, are not
        # secrets and not checked).
        accepted = row.get("file_variables") or {}
        secret_dirs = ["/run/secrets", *staged]
        for key, value in (svc.get("environment") or {}).items():
            if not key.endswith("_FILE") or not value:
                continue
            if not any(str(value).startswith(d + "/") for d in secret_dirs):
                continue
            rule = next((r for pat, r in accepted.items() if fnmatch.fnmatchcase(key, pat)), None)
            if rule is None:
                bad.append(f"{name}: {key} is not a *_FILE variable {svc.get('image')} reads")
                continue
            modes = rule.get("modes")
            if isinstance(modes, list) and f"{staged_mode:04o}" not in modes:
                bad.append(
                    f"{name}: {key}: {svc.get('image')} accepts modes {', '.join(modes)}, "
                    f"volume-init stages {staged_mode:04o}"
                )
            if not any(str(value).startswith(t + "/") for t in staged):
                bad.append(f"{name}: {key}={value} is not in a staged secrets volume")
    return dedupe(bad)


def dedupe(lines: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(lines))


def generated_bind_violations(cfg: rules.Config, generated: set[Path]) -> list[str]:
    """A bind of a file `make secrets` writes must not let the engine create it: Docker
    makes a root-owned directory there and `make secrets` then fails."""
    bad = []
    for name, svc in rules.services(cfg).items():
        for m in _mounts(svc):
            src = Path(str(m.get("source") or ""))
            generated_file = src in generated or src.is_relative_to(REPO / "secrets")
            creates = (m.get("bind") or {}).get("create_host_path", False)
            if m.get("type") == "bind" and generated_file and creates:
                bad.append(
                    f"{name}: {src.relative_to(REPO)} is bound with create_host_path "
                    "(short syntax): use long syntax with bind: {create_host_path: false}"
                )
    return bad


# --- writable paths, memory, ports ---------------------------------------------------------


def write_violations(cfg: rules.Config, rows: Mapping[str, Row]) -> list[str]:
    bad = []
    for name, svc, row in _with_rows(cfg, rows):
        if not svc.get("read_only") or svc.get("entrypoint"):
            continue  # (an overridden entrypoint does not run the image's process)
        writable = {str(t).split(":")[0] for t in svc.get("tmpfs") or []}
        writable |= {m["target"] for m in _mounts(svc) if not m.get("read_only")}
        writable |= set(row.get("volumes") or [])
        for path in row.get("writes") or []:
            if not any(path == w or path.startswith(w.rstrip("/") + "/") for w in writable):
                bad.append(
                    f"{name}: read_only, but {svc.get('image')} writes {path}: "
                    "mount a volume or tmpfs there"
                )
    return bad


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMG]i?B?)?$", re.I)
_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "KI": 2**10, "MI": 2**20, "GI": 2**30}


def size_bytes(value: Any) -> int:
    m = _SIZE.match(str(value).strip())
    if not m:
        raise ValueError(f"not a size: {value}")
    unit = (m.group(2) or "").upper().rstrip("B")
    return int(float(m.group(1)) * _UNITS[unit])


def memory_floor_violations(cfg: rules.Config, rows: Mapping[str, Row]) -> list[str]:
    bad = []
    for name, svc, row in _with_rows(cfg, rows):
        if not row.get("memory_floor"):
            continue
        floor = size_bytes(row["memory_floor"])
        limit = int(
            ((svc.get("deploy") or {}).get("resources") or {}).get("limits", {}).get("memory") or 0
        )
        if limit < floor:
            bad.append(
                f"{name}: memory limit {limit / 2**20:.0f} MiB is below {svc.get('image')}'s "
                f"documented floor of {row['memory_floor']}"
            )
    return bad


def port_violations(cfg: rules.Config, rows: Mapping[str, Row]) -> list[str]:
    """An exposed port is a default of the image or set in the service's command/config."""
    bad = []
    for name, svc, row in _with_rows(cfg, rows):
        defaults = {int(p) for p in row.get("ports") or []}
        configured = _service_strings(svc) + "\n".join(t for _, t in _text_of_mounts(svc))
        for port in sorted(rules.listening_ports(svc) - defaults):
            if not re.search(rf"(?<![\d.]){port}(?!\d)", configured):
                bad.append(
                    f"{name}: exposes {port}, which {svc.get('image')} does not listen on by "
                    "default and no command or mounted config sets"
                )
    return bad


def all_violations(cfg: rules.Config, rows: Mapping[str, Row], generated: set[Path]) -> list[str]:
    return [
        *command_violations(cfg, rows),
        *secret_violations(cfg, rows, generated),
        *generated_bind_violations(cfg, generated),
        *write_violations(cfg, rows),
        *memory_floor_violations(cfg, rows),
        *port_violations(cfg, rows),
    ]
