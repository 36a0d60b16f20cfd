"""Bad input to every user-facing command: one clear line, the right exit code, no traceback.

Each case is a fault an SRE could make or meet (a missing file, a directory in its place,
an empty file, the wrong shape, a value out of range, a name that does not exist, and the
faults of issue 20), the command as a user types it, run in a throwaway copy of the
repository (tests/commands/fakes.py: a fake Docker CLI, no real stack, no fixed port), the
exit code it must end with (make's own 2 when the recipe fails) and a line its output must
hold. No case may print "Traceback". The cases marked "(item N)" are the issue's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.commands.fakes import (
    ROOT,
    SYSTEM_PATH,
    FakeServer,
    Repo,
    closed_port,
    copy_repo,
)

MAKE = ("make", "--no-print-directory")
PASSWORD = "s3cret-never-printed"


@dataclass(frozen=True)
class Case:
    command: str  # the user-facing command (counted per command in the report)
    fault: str
    argv: tuple[str, ...]  # "{url}" is the fake HTTP server, "{closed}" a port nobody serves
    rc: int
    line: str  # a line of stdout + stderr holds this
    setup: Callable[[Repo], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    stdin: bytes | None = None
    serve: Callable[[str, str], tuple[int, str, bytes]] | None = None
    check: Callable[[Repo, FakeServer, str], None] | None = None


# --- setups --------------------------------------------------------------------------------


def _secrets(repo: Repo) -> None:
    proc = repo.run("python3", "-m", "tools.secrets")
    assert proc.returncode == 0, proc.stderr


def _write(rel: str, data: str | bytes) -> Callable[[Repo], None]:
    return lambda repo: repo.write(rel, data)


def _edit(rel: str, old: str, new: str) -> Callable[[Repo], None]:
    return lambda repo: repo.edit(rel, old, new)


def _edit_keep_mtime(rel: str, old: str, new: str) -> Callable[[Repo], None]:
    """An edit make must not take for a newer file (pyproject.toml would rebuild .venv)."""
    def go(repo: Repo) -> None:
        st = (repo.path / rel).stat()
        repo.edit(rel, old, new)
        os.utime(repo.path / rel, ns=(st.st_atime_ns, st.st_mtime_ns))
    return go


def _remove(rel: str) -> Callable[[Repo], None]:
    def go(repo: Repo) -> None:
        p = repo.path / rel
        if p.is_symlink() or p.is_file():
            p.unlink()
        else:
            shutil.rmtree(p)
    return go


def _mkdir(rel: str) -> Callable[[Repo], None]:
    return lambda repo: (repo.path / rel).mkdir(parents=True)


def _then(*steps: Callable[[Repo], None]) -> Callable[[Repo], None]:
    def go(repo: Repo) -> None:
        for step in steps:
            step(repo)
    return go


def _committed(*steps: Callable[[Repo], None]) -> Callable[[Repo], None]:
    return _then(*steps, lambda repo: repo.git_commit())


# --- checks ----------------------------------------------------------------------------------


def _nothing_started(repo: Repo, _server: FakeServer, out: str) -> None:
    assert not (repo.path / ".native-ran").exists(), "the native run started"
    log = Path(repo.env["COMPOSE_LOG"])
    assert not log.exists() or " up" not in log.read_text(), "compose up ran"
    assert not (repo.path / "secrets").exists(), "make up wrote secrets before stopping"
    assert "make up-native" in out


def _native_ran(repo: Repo, _server: FakeServer, _out: str) -> None:
    assert (repo.path / ".native-ran").read_text() == "up"


def _slo_untouched(repo: Repo, _server: FakeServer, _out: str) -> None:
    for rel in ("prometheus/rules/slo.yml", "tests/rules/slo-api-availability.page.test.yml",
                "docs/alerting.md"):
        assert (repo.path / rel).read_bytes() == (ROOT / rel).read_bytes(), f"{rel} changed"


def _no_secret_written(repo: Repo, _server: FakeServer, _out: str) -> None:
    written = [p.name for p in (repo.path / "secrets").rglob("*") if p.is_file()]
    assert len(written) <= 1, f"secrets written before the refusal: {written}"


def _one_cause(repo: Repo, _server: FakeServer, out: str) -> None:
    fails = [ln for ln in out.splitlines() if ln.startswith("FAIL")]
    assert sum("Docker engine" in ln or "docker engine" in ln for ln in fails) == 1, out
    assert "DOCKER_ROOT_DIR" not in out and "DOCKER_SOCKET" not in out, out
    assert "SKIP  docker socket: not checked: needs the Docker engine" in out


def _no_unknown_flag(repo: Repo, _server: FakeServer, out: str) -> None:
    assert "unknown flag" not in out, out
    assert "SKIP  compose config: not checked: needs Compose" in out


def _no_dist(repo: Repo, _server: FakeServer, _out: str) -> None:
    assert not list((repo.path / "dist").glob("*.tar.gz")) if (repo.path / "dist").is_dir() \
        else True, "a bundle was built"


def _no_password(repo: Repo, _server: FakeServer, out: str) -> None:
    assert PASSWORD not in out


def _no_request(repo: Repo, server: FakeServer, _out: str) -> None:
    assert server.requests == [], server.requests


# --- answers of the fake HTTP server -----------------------------------------------------------


def _html(_m: str, _p: str) -> tuple[int, str, bytes]:
    return 200, "text/html", b"<!doctype html><title>Grafana</title>"


def _unauthorized(_m: str, _p: str) -> tuple[int, str, bytes]:
    return 401, "text/plain", b"Unauthorized\n"


def _no_result(_m: str, _p: str) -> tuple[int, str, bytes]:
    return 200, "application/json", b'{"status": "success", "data": {}}'


def _bad_query(_m: str, _p: str) -> tuple[int, str, bytes]:
    return 400, "application/json", (b'{"status":"error","errorType":"bad_data",'
                                      b'"error":"1:5: parse error: unexpected character"}')


def _reload_fails(_m: str, _p: str) -> tuple[int, str, bytes]:
    return 500, "text/plain", b"failed to reload config: couldn't load configuration: x\n"


# --- the table -----------------------------------------------------------------------------------

UP = (*MAKE, "up")
SLO = (*MAKE, "slo")
SECRETS = (*MAKE, "secrets")
DOCTOR = (*MAKE, "doctor")
BUNDLE = (*MAKE, "bundle")
DIAGNOSE = (*MAKE, "diagnose")
RELOAD = (*MAKE, "reload", "LINT_GROUPS=rules unread")
ANALYZER = ("python3", "-m", "tools.log_analyzer")
ENGINE_UP = {"FAKE_DOCKER": "up", "FAKE_COMPOSE": "{bin}/compose-wrapper"}
NO_DOCKER = {"PATH": SYSTEM_PATH}
SLO_API = "prometheus/slos.yml"
WINDOWS_DOC = (ROOT / SLO_API).read_text().split("\n---\n")[0] + "\n"
STOPPED = ("no Docker engine reachable: Cannot connect to the Docker daemon at "
           "unix:///var/run/docker.sock. Is the docker daemon running?")


def _log(**fields: object) -> bytes:
    import json

    base = {"timestamp": "2026-01-01T00:00:00Z", "level": "ERROR", "message": "db timeout"}
    return (json.dumps({**base, **fields}) + "\n").encode()


CASES: list[Case] = [
    # make up ---------------------------------------------------------------------------------
    Case("make up", "engine stopped (item 4)", UP, 2,
         f"FAIL  docker engine: {STOPPED} -> fix: start the engine: sudo systemctl start docker",
         check=_nothing_started),
    Case("make up", "engine socket not readable (item 4)", UP, 2,
         "fix: let this user use the engine's socket: sudo usermod -aG docker $USER",
         env={"FAKE_DOCKER": "denied"}, check=_nothing_started),
    Case("make up", "CLI reports ServerErrors with exit 0 (item 4)", UP, 2,
         f"FAIL  docker engine: {STOPPED}", env={"FAKE_DOCKER": "servererrors"},
         check=_nothing_started),
    Case("make up", "no docker CLI at all", UP, 2,
         "FAIL  docker engine: docker CLI not found -> fix: install Docker Engine >= 24",
         env=NO_DOCKER, check=_nothing_started),
    Case("make up", "NATIVE=1 is the explicit native run (item 4)", (*UP, "NATIVE=1"), 0,
         "native stub: up", check=_native_ran),
    Case("make up", "compose.yaml does not parse", UP, 2,
         "make up: stopped before starting anything",
         setup=_write("compose.yaml", "services:\n  prometheus: [\n"), env=ENGINE_UP),
    Case("make up", "a directory where a secret file belongs", UP, 2,
         "secrets/grafana_admin_password: is a directory where a file belongs",
         setup=_mkdir("secrets/grafana_admin_password"), env=ENGINE_UP),
    Case("make up", "an empty secret no other file derives from (item 7)", UP, 2,
         "secrets/grafana_admin_password: file is empty",
         setup=_write("secrets/grafana_admin_password", ""), env=ENGINE_UP),
    # make slo --------------------------------------------------------------------------------
    Case("make slo", "spec missing", SLO, 2,
         "prometheus/slos.yml: cannot read: No such file or directory",
         setup=_remove(SLO_API), check=_slo_untouched),
    Case("make slo", "a directory in the spec's place", SLO, 2,
         "prometheus/slos.yml: is a directory, not the SLO spec file",
         setup=_then(_remove(SLO_API), _mkdir(SLO_API)), check=_slo_untouched),
    Case("make slo", "empty spec", SLO, 2,
         "prometheus/slos.yml: needs exactly one `kind: AlertWindows` document",
         setup=_write(SLO_API, ""), check=_slo_untouched),
    Case("make slo", "slos is a mapping, not a list", SLO, 2,
         "service api: 'slos' must be a list",
         setup=_write(SLO_API, WINDOWS_DOC + "---\nversion: prometheus/v1\nservice: api\n"
                               "slos: {name: availability}\n"), check=_slo_untouched),
    Case("make slo", "objective out of range", SLO, 2,
         "objective 120 must be a percentage in (0, 100)",
         setup=_edit(SLO_API, "objective: 99.9\n", "objective: 120\n"), check=_slo_untouched),
    Case("make slo", "objective the page can never reach (item 3)", SLO, 2,
         "the 1h/5m page would need 14.4 x 10% = 144% bad events and can never fire",
         setup=_edit(SLO_API, "objective: 99.9\n", "objective: 90\n"), check=_slo_untouched),
    Case("make slo", "a key that does not exist", SLO, 2,
         "unknown key 'objetive'",
         setup=_edit(SLO_API, "objective: 99.9\n", "objetive: 99.9\n"), check=_slo_untouched),
    Case("make slo", "increase() in place of rate() (item 3)", SLO, 2,
         "sum of increase() (use rate(): the rules record per-second rates",
         setup=_edit(SLO_API, "(rate(http_requests_total", "(increase(http_requests_total"),
         check=_slo_untouched),
    Case("make slo", "a Latin-1 spec (item 3)", SLO, 2,
         "prometheus/slos.yml: not UTF-8 text (byte 0xe9",
         setup=lambda repo: repo.write(SLO_API, (ROOT / SLO_API).read_text().replace(
             "# Service level", "# Service level (café)", 1).encode("latin-1")),
         check=_slo_untouched),
    Case("make slo", "a binary spec (item 3)", SLO, 2,
         "prometheus/slos.yml: not UTF-8 text",
         setup=_write(SLO_API, bytes(range(256))), check=_slo_untouched),
    Case("make slo", "a function call at the top of a query (item 10)", SLO, 2,
         "the function clamp_min() at the top",
         setup=_then(_edit(SLO_API, "error_query: >-\n          sum by (env, service) (rate(",
                           "error_query: >-\n          clamp_min(sum by (env, service) (rate("),
                     _edit(SLO_API, 'status_code=~"5.."}[{{.window}}]))',
                           'status_code=~"5.."}[{{.window}}])), 0)')),
         check=_slo_untouched),
    Case("make slo", "min_events, which the lone-failure guard replaced (item 11)", SLO, 2,
         "min_events was replaced",
         setup=_edit(SLO_API, "      name: ApiErrorBudgetBurn\n",
                     "      name: ApiErrorBudgetBurn\n      min_events: 100\n"),
         check=_slo_untouched),
    Case("make slo", "an SLO name Sloth's rule refuses", SLO, 2,
         "name '-availability' must start and end with a letter or digit",
         setup=_edit(SLO_API, "- name: availability", "- name: -availability"),
         check=_slo_untouched),
    # make secrets ------------------------------------------------------------------------------
    Case("make secrets", "secrets/ is a file", SECRETS, 2,
         "secrets: exists but is not a directory", setup=_write("secrets", "x")),
    Case("make secrets", "a directory where a file belongs", SECRETS, 2,
         "secrets/elasticsearch_password: is a directory where a file belongs",
         setup=_mkdir("secrets/elasticsearch_password"), check=_no_secret_written),
    Case("make secrets", "a file where a directory belongs", SECRETS, 2,
         "secrets/rabbitmq: is a file where a directory belongs",
         setup=_write("secrets/rabbitmq", "x"), check=_no_secret_written),
    Case("make secrets", "an empty password (item 7)", SECRETS, 2,
         "secrets/grafana_admin_password: file is empty",
         setup=_write("secrets/grafana_admin_password", "\n"), check=_no_secret_written),
    Case("make secrets", "a password that is not UTF-8 (item 7)", SECRETS, 2,
         "secrets/postgres_password: not UTF-8 text (byte 0xff",
         setup=_write("secrets/postgres_password", b"\xffpass\xfe"), check=_no_secret_written),
    Case("make secrets", "a web-config template without its placeholder", SECRETS, 2,
         "placeholder BCRYPT_HASH_FROM_MAKE_SECRETS not found",
         setup=_edit("prometheus/web-config.staging.yml", "BCRYPT_HASH_FROM_MAKE_SECRETS", "x")),
    # make doctor -------------------------------------------------------------------------------
    Case("make doctor", "engine stopped: the cause once (item 5)", DOCTOR, 2,
         "SKIP  docker root: not checked: needs the Docker engine (see `docker engine` above)",
         check=_one_cause),
    Case("make doctor", "engine reports ServerErrors with exit 0", DOCTOR, 2,
         f"FAIL  docker engine: {STOPPED}", env={"FAKE_DOCKER": "servererrors"},
         check=_one_cause),
    Case("make doctor", "no Compose plugin, no standalone (item 5)", DOCTOR, 2,
         "FAIL  docker compose: neither the `docker compose` plugin nor a standalone "
         "docker-compose is installed", setup=_remove(".tools"), check=_no_unknown_flag),
    Case("make doctor", "staging without bcrypt (item 5)",
         (*DOCTOR, "COMPOSE_FILES=-f compose.yaml -f compose.staging.yaml", "PROFILES="), 2,
         "the web configs need a bcrypt hash and this host has no bcrypt -> fix: apt install "
         "python3-bcrypt", setup=_then(_remove(".venv"), _secrets)),
    Case("make doctor", "an empty secret (item 7)", DOCTOR, 2,
         "FAIL  secrets: empty: secrets/grafana_admin_password",
         setup=_then(_secrets, _write("secrets/grafana_admin_password", ""))),
    Case("make doctor", "compose.yaml missing", DOCTOR, 2, "compose.yaml: not found",
         setup=_remove("compose.yaml")),
    Case("make doctor", "compose.yaml does not parse", DOCTOR, 2,
         "FAIL  compose config: compose.yaml does not render:",
         setup=_write("compose.yaml", "services:\n  prometheus: [\n")),
    Case("make doctor", "a compose file that does not exist",
         (*DOCTOR, "COMPOSE_FILES=-f compose.yaml -f compose.nope.yaml"), 2,
         "compose.nope.yaml: not found"),
    # make bundle (the copy is a git repository) ---------------------------------------------------
    Case("make bundle", "a new rules file not added to git (item 6)",
         (*BUNDLE, "LINT_GROUPS=json"), 2,
         "bundle: not in git, so not shipped: prometheus/rules/new.yml; git add them",
         setup=_then(lambda repo: repo.git_commit(),
                     _write("prometheus/rules/new.yml", "groups: []\n")), check=_no_dist),
    Case("make bundle", "broken PromQL (item 6)", (*BUNDLE, "LINT_GROUPS=rules"), 2,
         'unknown function with name "rte"',
         setup=_committed(_edit("prometheus/rules/api.yml", "(rate(", "(rte(")),
         check=_no_dist),
    Case("make bundle", "an undefined receiver (item 6)", (*BUNDLE, "LINT_GROUPS=alertmanager"), 2,
         'undefined receiver "pager"',
         setup=_committed(_edit("alertmanager/alertmanager.yml", "receiver: critical",
                                "receiver: pager")), check=_no_dist),
    Case("make bundle", "not a git repository", (*BUNDLE, "LINT_GROUPS=json"), 2,
         "bundle: git rev-parse --short=10 HEAD: fatal: not a git repository", check=_no_dist),
    Case("make bundle", "pyproject.toml without a version", (*BUNDLE, "LINT_GROUPS=json"), 2,
         "bundle: pyproject.toml: no [project] version",
         setup=_committed(_edit_keep_mtime("pyproject.toml", 'version = "0.1.0"\n', "")),
         check=_no_dist),
    Case("make bundle", "dist is a file", (*BUNDLE, "LINT_GROUPS=json"), 2,
         "/repo/dist: File exists",
         setup=_then(lambda repo: repo.git_commit(), _write("dist", "x"))),
    # make diagnose -----------------------------------------------------------------------------
    Case("make diagnose", "URL without a scheme (item 9)",
         (*DIAGNOSE, "PROMETHEUS_URL=127.0.0.1:9090"), 2,
         "diagnose: --prometheus 127.0.0.1:9090: not an http(s) URL with a host"),
    Case("make diagnose", "malformed URL (item 9)", (*DIAGNOSE, "PROMETHEUS_URL=http://[::1"), 2,
         "diagnose: --prometheus: not a URL (Invalid IPv6 URL)"),
    Case("make diagnose", "a password in the URL (item 9)",
         (*DIAGNOSE, f"PROMETHEUS_URL=http://admin:{PASSWORD}@127.0.0.1:9"), 2,
         "a password in the URL shows in `ps`", check=_no_password),
    Case("make diagnose", "an HTML answer (item 9)", (*DIAGNOSE, "PROMETHEUS_URL={url}"), 2,
         "answered with text/html, not Prometheus' JSON", serve=_html),
    Case("make diagnose", "basic auth demanded, no password (item 9)",
         (*DIAGNOSE, "PROMETHEUS_URL={url}"), 2, "401: Prometheus asks for a password",
         serve=_unauthorized),
    Case("make diagnose", "the password refused (item 9)",
         (*DIAGNOSE, "PROMETHEUS_URL={url}"), 2,
         "the password in ", setup=_write("secrets/basic_auth_password", PASSWORD),
         serve=_unauthorized, check=_no_password),
    Case("make diagnose", "nothing listening", (*DIAGNOSE, "PROMETHEUS_URL={closed}"), 2,
         "cannot connect: [Errno 111] Connection refused"),
    Case("make diagnose", "password file is a directory",
         (*DIAGNOSE, "PROMETHEUS_URL={url}", "PROMETHEUS_PASSWORD_FILE=secrets"), 2,
         "secrets: is a directory, not the password file", setup=_mkdir("secrets")),
    Case("make diagnose", "password file empty", (*DIAGNOSE, "PROMETHEUS_URL={url}"), 2,
         "the password file is empty", setup=_write("secrets/basic_auth_password", "")),
    Case("make diagnose", "password file that does not exist",
         (*DIAGNOSE, "PROMETHEUS_URL={url}", "PROMETHEUS_PASSWORD_FILE=nope"), 2,
         "nope: cannot read the password file: No such file or directory"),
    Case("make diagnose", "JSON of the wrong shape", (*DIAGNOSE, "PROMETHEUS_URL={url}"), 2,
         "the answer has no data.result list", serve=_no_result),
    Case("make diagnose", "Prometheus rejects the query", (*DIAGNOSE, "PROMETHEUS_URL={url}"), 2,
         "HTTP 400: 1:5: parse error: unexpected character", serve=_bad_query),
    # the log analyzer (README: python -m tools.log_analyzer FILE|-) -------------------------------
    Case("log analyzer", "file missing", (*ANALYZER, "nope.log"), 2,
         "log_analyzer: nope.log: No such file or directory"),
    Case("log analyzer", "a directory", (*ANALYZER, "docs"), 2,
         "log_analyzer: docs: Is a directory"),
    Case("log analyzer", "empty file", (*ANALYZER, "empty.log"), 0, '"lines": 0',
         setup=_write("empty.log", "")),
    Case("log analyzer", "epoch timestamp (item 8)", (*ANALYZER, "-"), 0,
         '"unusable timestamp": 1', stdin=_log(timestamp=1767225600) + _log()),
    Case("log analyzer", "nginx-style timestamp (item 8)", (*ANALYZER, "-"), 0,
         '"unusable timestamp": 1', stdin=_log(timestamp="01/Jan/2026:00:00:00 +0000") + _log()),
    Case("log analyzer", 'duration_ms "5ms" (item 8)', (*ANALYZER, "-"), 0,
         '"unusable duration_ms": 1', stdin=_log(duration_ms="5ms") + _log(duration_ms=5)),
    Case("log analyzer", "duration_ms null (item 8)", (*ANALYZER, "-"), 0,
         '"unusable duration_ms": 1', stdin=_log(duration_ms=None) + _log(duration_ms=5)),
    Case("log analyzer", "naive and aware timestamps mixed (item 8)", (*ANALYZER, "-"), 0,
         '"last_seen": "2026-01-01T00:00:01+00:00"',
         stdin=_log(timestamp="2026-01-01T00:00:00") + _log(timestamp="2026-01-01T00:00:01Z")),
    Case("log analyzer", "an object user_id (item 8)", (*ANALYZER, "-"), 0,
         '"unusable user_id": 1', stdin=_log(user_id={"id": 1}, status=500) + _log()),
    Case("log analyzer", "invalid UTF-8 on stdin, LC_ALL=C (item 8)", (*ANALYZER, "-"), 0,
         '"invalid UTF-8": 1', env={"LC_ALL": "C"}, stdin=b'{"message": "caf\xe9"}\n' + _log()),
    Case("log analyzer", "a binary file", (*ANALYZER, "bin.log"), 0, '"invalid UTF-8": ',
         setup=_write("bin.log", bytes(range(256)) * 8)),
    Case("log analyzer", "JSON lines of the wrong shape", (*ANALYZER, "-"), 0,
         '"not a JSON object": 2', stdin=b'[1, 2]\n"text"\n' + _log()),
    # make reload -----------------------------------------------------------------------------
    Case("make reload", "a broken rule: lint stops it",
         (*RELOAD, "PROMETHEUS_URL={url}", "ALERTMANAGER_URL={url}"), 2,
         'unknown function with name "rte"',
         setup=_edit("prometheus/rules/api.yml", "(rate(", "(rte("), check=_no_request),
    Case("make reload", "a rules file Prometheus never reads (item 2)",
         (*RELOAD, "PROMETHEUS_URL={url}", "ALERTMANAGER_URL={url}"), 2,
         "prometheus/rules/extra.yaml: never read",
         setup=_write("prometheus/rules/extra.yaml", "groups: []\n"), check=_no_request),
    Case("make reload", "nothing listening",
         (*RELOAD, "PROMETHEUS_URL={closed}", "ALERTMANAGER_URL={closed}"), 2,
         "not reloaded: Failed to connect to 127.0.0.1 port"),
    Case("make reload", "the reload is refused",
         (*RELOAD, "PROMETHEUS_URL={url}", "ALERTMANAGER_URL={url}"), 2,
         "make reload: prometheus at http://127.0.0.1:", serve=_reload_fails,
         check=lambda repo, server, out: _assert_in(
             "failed to reload config: couldn't load configuration: x", out)),
    Case("make reload", "basic auth demanded",
         (*RELOAD, "PROMETHEUS_URL={url}", "ALERTMANAGER_URL={url}"), 2,
         "The requested URL returned error: 401", serve=_unauthorized),
    Case("make reload", "a directory where the password file belongs",
         (*RELOAD, "PROMETHEUS_URL={url}", "ALERTMANAGER_URL={url}"), 2,
         "make reload: secrets/basic_auth_password: not a file",
         setup=_mkdir("secrets/basic_auth_password"), check=_no_request),
]


def _assert_in(text: str, out: str) -> None:
    assert text in out, out


def _argv(case: Case, repo: Repo, server: FakeServer) -> list[str]:
    closed = f"http://127.0.0.1:{closed_port()}"
    return [a.replace("{url}", server.url).replace("{closed}", closed) for a in case.argv]


def _ids(cases: list[Case]) -> list[str]:
    return [f"{c.command}: {c.fault}" for c in cases]


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_bad_input(case: Case, repo: Repo, server: FakeServer) -> None:
    if case.setup:
        case.setup(repo)
    if case.serve:
        server.answer = case.serve
    env = {k: v.replace("{bin}", str(repo.bin)) for k, v in case.env.items()}
    repo.env.update(env)
    proc = repo.run(*_argv(case, repo, server), stdin=case.stdin)
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert "Traceback" not in out, out
    assert any(case.line in line for line in out.splitlines()), \
        f"expected a line with {case.line!r}:\n{out}"
    assert proc.returncode == case.rc, out
    if case.check:
        case.check(repo, server, out)


# --- the bundle's install.sh --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bundle, built from a committed copy of the repository."""
    base = tmp_path_factory.mktemp("bundle")
    repo = Repo(copy_repo(base / "repo"), base, {})
    repo.git_commit()
    proc = subprocess.run([str(ROOT / ".venv/bin/python"), "-m", "dev.bundle", "--out",
                           str(base / "dist")], cwd=repo.path, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    (path,) = (base / "dist").glob("*.tar.gz")
    return path


@dataclass(frozen=True)
class InstallCase:
    fault: str
    rc: int
    line: str
    setup: Callable[[Path], None] | None = None
    env: dict[str, str] = field(default_factory=dict)


def _secrets_in(top: Path) -> None:
    subprocess.run(["python3", "-m", "tools.secrets"], cwd=top, check=True,
                   capture_output=True, env={"PATH": SYSTEM_PATH})


INSTALL_CASES = [
    InstallCase("a file altered after the build", 1,
                "install: checksum mismatch: the bundle was altered or truncated",
                setup=lambda top: (top / "compose.yaml").write_text("services: {}\n")),
    InstallCase("a file missing (truncated tarball)", 1, "tools/doctor.py: FAILED open or read",
                setup=lambda top: (top / "tools/doctor.py").unlink()),
    InstallCase("SHA256SUMS missing", 1,
                "install: SHA256SUMS is missing: unpack the whole tarball again",
                setup=lambda top: (top / "SHA256SUMS").unlink()),
    InstallCase("no Docker engine", 1, f"FAIL  docker engine: {STOPPED}"),
    InstallCase("no docker CLI", 1, "FAIL  docker engine: docker CLI not found",
                env={"PATH": SYSTEM_PATH}),
    InstallCase("secrets/ is a file", 1, "secrets: exists but is not a directory",
                setup=lambda top: (top / "secrets").write_text("x")),
    InstallCase("an empty secret (item 7)", 1, "secrets/grafana_admin_password: file is empty",
                setup=lambda top: ((top / "secrets").mkdir(),
                                   (top / "secrets/grafana_admin_password").write_text(""))),
]


@pytest.mark.parametrize("case", INSTALL_CASES, ids=[c.fault for c in INSTALL_CASES])
def test_install_sh_bad_input(case: InstallCase, tarball: Path, repo: Repo,
                              tmp_path: Path) -> None:
    with tarfile.open(tarball) as tar:
        tar.extractall(tmp_path / "host", filter="data")
    (top,) = (tmp_path / "host").iterdir()
    if case.setup:
        case.setup(top)
    env = {**repo.env, **case.env}
    proc = subprocess.run(["sh", "install.sh"], cwd=top, env=env, capture_output=True,
                          text=True, timeout=180)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    assert any(case.line in line for line in out.splitlines()), \
        f"expected a line with {case.line!r}:\n{out}"
    assert proc.returncode == case.rc, out
    log = Path(repo.env["COMPOSE_LOG"])
    assert not log.exists(), "compose ran"


def test_every_user_facing_command_has_its_cases() -> None:
    counts: dict[str, int] = {}
    for c in CASES:
        counts[c.command] = counts.get(c.command, 0) + 1
    counts["install.sh"] = len(INSTALL_CASES)
    assert set(counts) == {"make up", "make slo", "make secrets", "make doctor", "make bundle",
                           "install.sh", "make diagnose", "log analyzer", "make reload"}
    assert min(counts.values()) >= 6, counts
