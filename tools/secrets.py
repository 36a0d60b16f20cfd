"""Create the stack's secret files in secrets/ (git-ignored) on first run.

    python -m tools.secrets [--root DIR]

Every secret is a random value written once: an existing file is never
overwritten, so a password you put there yourself is kept. Values are never
printed; the README says how to read one (e.g. `cat secrets/grafana_admin_password`).

Layout (what compose.yaml and compose.staging.yaml mount):
  grafana_admin_password, elasticsearch_password, postgres_password,
  rabbitmq_password, basic_auth_password,
  agent_remote_write_password                   random passwords, one per file
  database_url, rabbitmq_url                    the demo workload's DSNs (with those passwords)
  rabbitmq/20-credentials.conf                  RabbitMQ default user (no *_FILE support)
  alertmanager/                                 receiver secrets, from alertmanager/secrets.example/
  prometheus-web-config.yml, alertmanager-web-config.yml
                                                staging basic auth (bcrypt of basic_auth_password)

Permissions: secrets/ and its subdirectories are 0700 and every file 0600, owned by
you: no other host user can read them. Containers never read these files directly:
compose.yaml's one-shot volume-init job (root with CAP_DAC_READ_SEARCH) copies each
consumer's secrets into that consumer's own volume, owned by the user it runs as,
mode 0400 (Elasticsearch refuses anything but 0400/0600). Files an earlier version
wrote world-readable are tightened to 0600 (contents never change).

A directory where a file belongs (Docker creates one when the stack is started
before `make secrets` with an old short-syntax bind), an existing secret that is empty
or not UTF-8 text, or a folder you cannot write to is reported as one line with the
fix; nothing is written until all of that is sound. Should a write still fail (a full
disk), the line says which files were created before it.
"""

from __future__ import annotations

import argparse
import os
import secrets as random_source
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PASSWORDS = (
    "grafana_admin_password",
    "elasticsearch_password",
    "postgres_password",
    "rabbitmq_password",
    "basic_auth_password",
    # Remote hosts' remote-write password (vmauth, compose.scale.yaml / compose.agent.yaml):
    # copy the central host's file to each remote host.
    "agent_remote_write_password",
)
# Files derived from the passwords (rendered in ensure()).
DERIVED = ("database_url", "rabbitmq_url", "rabbitmq/20-credentials.conf")
BASIC_AUTH_USER = "admin"
RABBITMQ_USER = "apollonia"
# Placeholder in the tracked web-config templates, replaced by the bcrypt hash.
HASH_PLACEHOLDER = "BCRYPT_HASH_FROM_MAKE_SECRETS"
WEB_CONFIG_TEMPLATES = {
    "prometheus-web-config.yml": Path("prometheus/web-config.staging.yml"),
    "alertmanager-web-config.yml": Path("alertmanager/web-config.staging.yml"),
}
# Cost 10: a login costs ~50 ms; the web toolkit caches successful checks.
BCRYPT_ROUNDS = 10


class SecretsError(Exception):
    """A problem the user can fix; reported as one line."""


def random_password() -> str:
    # URL-safe, so it can sit in a URL's userinfo (healthchecks) without escaping.
    return random_source.token_urlsafe(24)


def bcrypt_available() -> bool:
    """True when bcrypt_hash can hash (the staging web configs need it)."""
    try:
        import bcrypt  # noqa: F401
    except ImportError:
        return shutil.which("htpasswd") is not None
    return True


def bcrypt_hash(password: str) -> str | None:
    """bcrypt via the `bcrypt` package (the venv; Debian: python3-bcrypt) or Apache's
    htpasswd; None when neither exists (only the staging web configs need it)."""
    try:
        import bcrypt
    except ImportError:
        htpasswd = shutil.which("htpasswd")
        if htpasswd is None:
            return None
        proc = subprocess.run(
            [htpasswd, "-niBC", str(BCRYPT_ROUNDS), BASIC_AUTH_USER],
            input=password,
            capture_output=True,
            text=True,
            check=True,
        )
        return proc.stdout.strip().split(":", 1)[1]
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode()


FILE_MODE = 0o600
DIR_MODE = 0o700


def _mkdir(path: Path) -> None:
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)


def _write_new(path: Path, content: str, created: list[str], root: Path) -> None:
    """Write content to path only if it does not exist yet (O_EXCL: no race, no overwrite)."""
    _mkdir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        os.chmod(path, FILE_MODE)
        return
    with os.fdopen(fd, "w") as fh:
        fh.write(content)
    os.chmod(path, FILE_MODE)
    created.append(str(path.relative_to(root)))


def expected_files(repo: Path) -> list[Path]:
    """Relative paths of every file `ensure` writes (templates read from repo)."""
    rels = [Path(n) for n in PASSWORDS] + [Path(r) for r in DERIVED]
    rels += [Path(n) for n, t in WEB_CONFIG_TEMPLATES.items() if (repo / t).is_file()]
    example = repo / "alertmanager" / "secrets.example"
    if example.is_dir():
        rels += [
            Path("alertmanager") / p.relative_to(example)
            for p in sorted(example.rglob("*"))
            if p.is_file()
        ]
    return rels


def check_layout(out: Path, repo: Path) -> None:
    """Fail before writing anything when a file's place is taken by a directory (or a
    directory's by a file): the state a stack started before `make secrets` leaves."""
    for rel in expected_files(repo):
        for parent in reversed(rel.parents[:-1]):
            p = out / parent
            if p.exists() and not p.is_dir():
                raise SecretsError(f"{p}: is a file where a directory belongs; remove it")
        p = out / rel
        if p.is_dir():
            raise SecretsError(
                f"{p}: is a directory where a file belongs (Docker made it when the stack "
                f"was started before `make secrets`); remove it (sudo rmdir {p}), then run "
                "make secrets again"
            )


def _read(path: Path) -> str:
    try:
        value = path.read_bytes().decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise SecretsError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "write the value as UTF-8 text, or delete the file to get a new random value"
        ) from exc
    if not value:
        raise SecretsError(f"{path}: file is empty; delete it to get a new random value, "
                           "or write the value into it")
    return value


def check_existing(out: Path, repo: Path) -> None:
    """Every secret that is already there must be a usable value: not empty (an empty
    password file would be taken as present), UTF-8 text."""
    for rel in expected_files(repo):
        p = out / rel
        if p.is_file():
            _read(p)


def check_writable(out: Path, repo: Path) -> None:
    """Each missing file's nearest existing folder must be writable by this user (checked
    before anything is written: no half-made secrets/)."""
    for rel in expected_files(repo):
        p = out / rel
        if p.exists():
            continue
        folder = p.parent
        while not folder.exists():
            folder = folder.parent
        if not os.access(folder, os.W_OK | os.X_OK):
            st = folder.stat()
            raise SecretsError(
                f"{folder}: not writable by you (owner uid {st.st_uid}, mode "
                f"{stat.S_IMODE(st.st_mode):04o}), so {rel} cannot be created; make it yours "
                f"(sudo chown -R {os.getuid()} {out}), then run make secrets again"
            )


def ensure(root: Path, repo: Path | None = None, notes: list[str] | None = None) -> list[str]:
    """Create whatever is missing under root/secrets; return the relative paths created.

    Templates (web configs, alertmanager/secrets.example/) are read from repo (default: root).
    """
    repo = root if repo is None else repo
    if not root.is_dir():
        raise SecretsError(f"{root}: {'not a directory' if root.exists() else 'no such directory'}")
    out = root / "secrets"
    if out.exists() and not out.is_dir():
        raise SecretsError(f"{out}: exists but is not a directory")
    check_layout(out, repo)
    check_existing(out, repo)
    check_writable(out, repo)
    created: list[str] = []
    try:
        _ensure(out, repo, root, created, notes)
    except OSError as exc:
        where = exc.filename or out
        made = ", ".join(created) if created else "nothing"
        raise SecretsError(f"{where}: {exc.strerror}; created before that: {made} (kept; "
                           "fix the cause and run make secrets again)") from exc
    return created


def _ensure(out: Path, repo: Path, root: Path, created: list[str],
            notes: list[str] | None) -> None:
    _mkdir(out)

    for name in PASSWORDS:
        # No trailing newline: not every consumer trims password files.
        _write_new(out / name, random_password(), created, root)

    derived: dict[str, Callable[[], str]] = {
        # The workload's DSNs (read through DATABASE_URL_FILE / RABBITMQ_URL_FILE).
        "database_url": lambda: (
            f"postgresql://apollonia:{_read(out / 'postgres_password')}@postgres:5432/apollonia"
        ),
        "rabbitmq_url": lambda: (
            f"amqp://{RABBITMQ_USER}:{_read(out / 'rabbitmq_password')}@rabbitmq:5672/"
        ),
        "rabbitmq/20-credentials.conf": lambda: (
            "# RabbitMQ default user for the demo (made by make secrets).\n"
            f"default_user = {RABBITMQ_USER}\n"
            f"default_pass = {_read(out / 'rabbitmq_password')}\n"
        ),
    }
    assert tuple(derived) == DERIVED
    for rel, render in derived.items():
        if (out / rel).exists():
            os.chmod(out / rel, FILE_MODE)
        else:
            _write_new(out / rel, render(), created, root)

    for name, template_rel in WEB_CONFIG_TEMPLATES.items():
        template = repo / template_rel
        if (out / name).exists():
            os.chmod(out / name, FILE_MODE)
            continue
        if not template.is_file():
            continue
        text = template.read_text()
        if HASH_PLACEHOLDER not in text:
            raise SecretsError(f"{template}: placeholder {HASH_PLACEHOLDER} not found")
        digest = bcrypt_hash(_read(out / "basic_auth_password"))
        if digest is None:
            if notes is not None:
                notes.append(
                    f"{name} not written: no bcrypt (pip install bcrypt, apt install "
                    "python3-bcrypt or apache2-utils), needed for staging basic auth only"
                )
            continue
        _write_new(out / name, text.replace(HASH_PLACEHOLDER, digest), created, root)

    example = repo / "alertmanager" / "secrets.example"
    if example.is_dir():
        target = out / "alertmanager"
        _mkdir(target)
        for src in sorted(p for p in example.rglob("*") if p.is_file()):
            dst = target / src.relative_to(example)
            if dst.exists():
                os.chmod(dst, FILE_MODE)
            else:
                _write_new(dst, src.read_text(), created, root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.secrets", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--root", type=Path, default=REPO, help="bundle directory (default: this repo)"
    )
    args = parser.parse_args(argv)
    notes: list[str] = []
    try:
        created = ensure(args.root.resolve(), notes=notes)
    except (SecretsError, OSError, subprocess.CalledProcessError) as exc:
        print(f"secrets: {exc}", file=sys.stderr)
        return 1
    except UnicodeDecodeError as exc:  # a template (repository file) that is not UTF-8
        print(f"secrets: a template is not UTF-8 text: {exc}", file=sys.stderr)
        return 1
    if created:
        print("secrets: created (random, git-ignored; values not shown):")
        for rel in created:
            print(f"  {rel}")
    else:
        print("secrets: all present, nothing changed")
    for note in notes:
        print(f"secrets: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
