"""The workload's dependencies in the native run: PostgreSQL, Redis, RabbitMQ and the
PostgreSQL and Redis exporters (RabbitMQ exports its own metrics, like in compose).

The servers come from `make bootstrap` (dev/bootstrap-servers.sh links them into
.tools/bin). Everything listens on 127.0.0.1 and keeps its state under .run/:

    .run/secrets/                  generated passwords and the workload's DSNs (0700/0600):
                                   postgres_password, redis_password, rabbitmq_password,
                                   database_url, redis_url, rabbitmq_url
    .run/postgres/data/            the initdb'd cluster (superuser apollonia, database apollonia)
    .run/redis/redis.conf          persistence off; its password (0600)
    .run/rabbitmq/                 the node's HOME (Erlang cookie), mnesia/, rabbitmq.conf
                                   (listeners, credentials; 0600), enabled_plugins

Ports: the servers' defaults shifted so they never collide with a PostgreSQL, Redis or
RabbitMQ installed on the same machine (5432, 6379, 5672/15672/15692/25672, epmd 4369);
the exporters keep their well-known defaults, as in compose.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from native.common import HOST, RUN, TOOLS, NativeError

SECRETS = RUN / "secrets"

POSTGRES_PORT = 15432  # 5432 + 10000
REDIS_PORT = 16379  # 6379 + 10000
# RabbitMQ's own ports + 1: 15672/25672 + 10000 would land on another RabbitMQ default.
AMQP_PORT = 5673
RABBITMQ_METRICS_PORT = 15693  # rabbitmq_prometheus (15692 by default)
RABBITMQ_DIST_PORT = 25673  # Erlang distribution (the CLI tools talk to the node on it)
EPMD_PORT = 4370  # a private epmd: another Erlang node's epmd on 4369 is never touched
POSTGRES_EXPORTER_PORT = 9187
REDIS_EXPORTER_PORT = 9121

DATABASE = USER = "apollonia"
RABBITMQ_NODE = "apollonia@localhost"
# Like compose's postgres image: 100 connections. HighDatabaseConnections fires above 80%.
MAX_CONNECTIONS = 100

# name in .tools/bin -> what it is; a dependency runs natively only when all of its are there.
NEEDS = {
    "postgres": ("postgres", "initdb", "pg_isready", "postgres-exporter"),
    "redis": ("redis-server", "redis-exporter"),
    "rabbitmq": ("rabbitmq-server", "erl", "epmd"),
}
TITLES = {"postgres": "PostgreSQL", "redis": "Redis", "rabbitmq": "RabbitMQ"}


@dataclass(frozen=True)
class Program:
    """One supervised process of a dependency (turned into a Component by native/stack.py)."""

    name: str
    port: int
    title: str
    command: str
    ready: Callable[[], bool]
    url: str
    environment: tuple[tuple[str, str], ...] = ()
    also_listens: tuple[int, ...] = ()
    stopsignal: str = "TERM"


def available() -> dict[str, bool]:
    """Which dependencies `make bootstrap` provided (all their programs in .tools/bin)."""
    return {dep: all((TOOLS / prog).exists() for prog in progs) for dep, progs in NEEDS.items()}


def missing() -> list[str]:
    return [dep for dep, ok in available().items() if not ok]


# --- secrets --------------------------------------------------------------------------------


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600), in a directory created if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)


def _password(name: str) -> str:
    """The generated password of a server, created on first use (by `prepare`)."""
    path = SECRETS / f"{name}_password"
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(24) + "\n")
    SECRETS.chmod(0o700)
    return path.read_text().strip()


def _read(name: str) -> str:
    """A password without creating it ('' before the first `prepare`)."""
    path = SECRETS / f"{name}_password"
    return path.read_text().strip() if path.exists() else ""


DSN_FILES = {name: SECRETS / name.lower() for name in ("DATABASE_URL", "REDIS_URL", "RABBITMQ_URL")}


def write_dsn_files() -> None:
    """The workload's settings, as in compose: <NAME>_FILE -> a file with the URL."""
    urls = {
        "DATABASE_URL": f"postgresql://{USER}:{_password('postgres')}@{HOST}:{POSTGRES_PORT}/{DATABASE}",
        "REDIS_URL": f"redis://:{_password('redis')}@{HOST}:{REDIS_PORT}/0",
        "RABBITMQ_URL": f"amqp://{USER}:{_password('rabbitmq')}@{HOST}:{AMQP_PORT}/",
    }
    for name, url in urls.items():
        path = DSN_FILES[name]
        if not path.exists() or path.read_text().strip() != url:
            _write_private(path, url + "\n")


# --- readiness checks (the servers' own protocols) -------------------------------------------


def _tcp(port: int, send: bytes = b"", expect: bytes = b"", timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            if send:
                sock.sendall(send)
            data = b""
            while expect and expect not in data and len(data) < 4096:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                data += chunk
            return not expect or expect in data
    except OSError:
        return False


def postgres_ready() -> bool:
    """pg_isready: the server accepts connections to the apollonia database."""
    proc = subprocess.run(
        [str(TOOLS / "pg_isready"), "-q", "-h", HOST, "-p", str(POSTGRES_PORT), "-d", DATABASE,
         "-U", USER, "-t", "2"], capture_output=True, timeout=10,
    )
    return proc.returncode == 0


def redis_ready() -> bool:
    """AUTH + PING over the socket: +OK then +PONG."""
    password = _read("redis")
    auth = f"*2\r\n$4\r\nAUTH\r\n${len(password)}\r\n{password}\r\n".encode()
    return _tcp(REDIS_PORT, auth + b"*1\r\n$4\r\nPING\r\n", b"+PONG")


def amqp_ready() -> bool:
    """AMQP 0-9-1 protocol header answered with Connection.Start (a method frame, type 1)."""
    try:
        with socket.create_connection((HOST, AMQP_PORT), timeout=2) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            frame = sock.recv(7)
    except OSError:
        return False
    return len(frame) == 7 and frame[0] == 1


def http_ok(port: int, path: str) -> Callable[[], bool]:
    def check() -> bool:
        import httpx

        try:
            return httpx.get(f"http://{HOST}:{port}{path}", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def rabbitmq_ready() -> bool:
    return amqp_ready() and http_ok(RABBITMQ_METRICS_PORT, "/metrics")()


# --- PostgreSQL -------------------------------------------------------------------------------


def _as_server_user(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root. As root, run it in a user namespace where it is
    `nobody` (files stay owned by root outside, so .run/ needs no chown and no parent
    directory has to be traversable by another user)."""
    if os.geteuid() != 0:
        return argv
    nobody = pwd.getpwnam("nobody")
    return ["unshare", "--user", f"--map-user={nobody.pw_uid}", f"--map-group={nobody.pw_gid}",
            "--", *argv]


def prepare_postgres() -> None:
    base = RUN / "postgres"
    data = base / "data"
    password_file = SECRETS / "postgres_password"
    if data.exists() and not password_file.exists():
        shutil.rmtree(data)  # a cluster whose password is lost: start over (demo data)
    password = _password("postgres")
    if (data / "PG_VERSION").exists():
        return
    base.mkdir(parents=True, exist_ok=True)
    if data.exists():
        shutil.rmtree(data)  # an interrupted initdb
    pwfile = base / ".initdb-password"
    _write_private(pwfile, password + "\n")
    try:
        _run(_as_server_user([
            str(TOOLS / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8",
            "--no-instructions",
        ]), "initdb")
    finally:
        pwfile.unlink(missing_ok=True)
    # The database the workload uses, created in single-user mode (no server, no socket).
    _run(_as_server_user([str(TOOLS / "postgres"), "--single", "-D", str(data), "postgres"]),
         "create database", stdin=f"CREATE DATABASE {DATABASE};\n")


def _run(argv: list[str], what: str, stdin: str | None = None) -> None:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise NativeError(f"PostgreSQL {what} failed: {detail[-1] if detail else proc.returncode}")


def postgres_programs() -> list[Program]:
    server = _as_server_user([
        str(TOOLS / "postgres"), "-D", str(RUN / "postgres/data"),
        "-c", f"listen_addresses={HOST}", "-c", f"port={POSTGRES_PORT}",
        "-c", "unix_socket_directories=", "-c", f"max_connections={MAX_CONNECTIONS}",
    ])
    exporter_env = (
        # The same settings as the compose service (DATA_SOURCE_PASS_FILE: no password in
        # the environment or on the command line).
        ("DATA_SOURCE_URI", f"{HOST}:{POSTGRES_PORT}/{DATABASE}?sslmode=disable"),
        ("DATA_SOURCE_USER", USER),
        ("DATA_SOURCE_PASS_FILE", str(SECRETS / "postgres_password")),
    )
    return [
        Program("postgres", POSTGRES_PORT, "PostgreSQL", " ".join(server), postgres_ready,
                f"postgresql://{HOST}:{POSTGRES_PORT}/{DATABASE}",
                # SIGINT is PostgreSQL's "fast" shutdown; supervisor's default SIGTERM is the
                # "smart" one, which waits for every client (the pools) to disconnect.
                stopsignal="INT"),
        Program("postgres-exporter", POSTGRES_EXPORTER_PORT, "PostgreSQL exporter",
                f"{TOOLS}/postgres-exporter --web.listen-address={HOST}:{POSTGRES_EXPORTER_PORT}",
                http_ok(POSTGRES_EXPORTER_PORT, "/metrics"),
                f"http://{HOST}:{POSTGRES_EXPORTER_PORT}/metrics", exporter_env),
    ]


# --- Redis ------------------------------------------------------------------------------------


def prepare_redis() -> None:
    base = RUN / "redis"
    # A cache: no persistence (as in compose), bounded memory, loopback only.
    _write_private(base / "redis.conf", "\n".join([
        "# Generated by `python -m native up` (native/deps.py); bind address and port are",
        "# on its command line (supervisord.conf).",
        f"dir {base}",
        'save ""', "appendonly no", "maxmemory 48mb", "maxmemory-policy allkeys-lru",
        f"requirepass {_password('redis')}", "",
    ]))


def redis_programs() -> list[Program]:
    return [
        Program("redis", REDIS_PORT, "Redis",
                f"{TOOLS}/redis-server {RUN}/redis/redis.conf --bind {HOST} --port {REDIS_PORT}",
                redis_ready, f"redis://{HOST}:{REDIS_PORT}/0"),
        Program("redis-exporter", REDIS_EXPORTER_PORT, "Redis exporter",
                f"{TOOLS}/redis-exporter --redis.addr=redis://{HOST}:{REDIS_PORT}"
                f" --web.listen-address={HOST}:{REDIS_EXPORTER_PORT}",
                http_ok(REDIS_EXPORTER_PORT, "/metrics"),
                f"http://{HOST}:{REDIS_EXPORTER_PORT}/metrics",
                # redis_exporter reads the password from its environment (supervisord.conf
                # is 0600), never from the command line.
                (("REDIS_PASSWORD", _read("redis")),)),
    ]


# --- RabbitMQ ---------------------------------------------------------------------------------


def prepare_rabbitmq() -> None:
    base = RUN / "rabbitmq"
    if (base / "mnesia").exists() and not (SECRETS / "rabbitmq_password").exists():
        shutil.rmtree(base / "mnesia")  # its default user was created with a lost password
    password = _password("rabbitmq")
    (base / "home").mkdir(parents=True, exist_ok=True)
    # Only the Prometheus plugin: natively there is no management UI (one port less).
    (base / "enabled_plugins").write_text("[rabbitmq_prometheus].\n")
    _write_private(base / "rabbitmq.conf", "\n".join([
        "# Generated by `python -m native up` (native/deps.py).",
        f"listeners.tcp.default = {HOST}:{AMQP_PORT}",
        f"prometheus.tcp.ip = {HOST}",
        f"prometheus.tcp.port = {RABBITMQ_METRICS_PORT}",
        # The default user is created on the first boot; `guest` never exists.
        f"default_user = {USER}", f"default_pass = {password}",
        "",
    ]))


def rabbitmq_environment() -> tuple[tuple[str, str], ...]:
    """Every path RabbitMQ would otherwise take from /etc/rabbitmq or /var/lib/rabbitmq."""
    base = RUN / "rabbitmq"
    return (
        ("HOME", str(base / "home")),  # the Erlang cookie (.erlang.cookie) goes here
        ("RABBITMQ_NODENAME", RABBITMQ_NODE),
        ("RABBITMQ_NODE_IP_ADDRESS", HOST),
        ("RABBITMQ_NODE_PORT", str(AMQP_PORT)),
        ("RABBITMQ_DIST_PORT", str(RABBITMQ_DIST_PORT)),
        # The distribution listener on loopback only (it listens on every address otherwise).
        ("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", "-kernel inet_dist_use_interface {127,0,0,1}"),
        ("ERL_EPMD_ADDRESS", HOST),
        ("ERL_EPMD_PORT", str(EPMD_PORT)),
        ("RABBITMQ_MNESIA_BASE", str(base / "mnesia")),
        ("RABBITMQ_LOG_BASE", str(base / "log")),
        ("RABBITMQ_LOGS", "-"),  # to stdout: supervisor keeps .run/logs/rabbitmq.log
        ("RABBITMQ_CONFIG_FILE", str(base / "rabbitmq")),
        ("RABBITMQ_CONFIG_FILES", str(base / "conf.d")),
        ("RABBITMQ_ADVANCED_CONFIG_FILE", str(base / "advanced.config")),
        ("RABBITMQ_CONF_ENV_FILE", str(base / "rabbitmq-env.conf")),
        ("RABBITMQ_ENABLED_PLUGINS_FILE", str(base / "enabled_plugins")),
    )


def rabbitmq_programs() -> list[Program]:
    return [
        # Its own epmd, supervised (the node would otherwise start a daemon that outlives it).
        Program("epmd", EPMD_PORT, "epmd (RabbitMQ's port mapper)",
                f"{TOOLS}/epmd -address {HOST} -port {EPMD_PORT}",
                lambda: _tcp(EPMD_PORT), f"{HOST}:{EPMD_PORT}"),
        # The script sources rabbitmq-env from its own directory: run it by its real path.
        Program("rabbitmq", AMQP_PORT, "RabbitMQ",
                os.path.realpath(TOOLS / "rabbitmq-server"), rabbitmq_ready,
                f"amqp://{HOST}:{AMQP_PORT}/ (metrics http://{HOST}:{RABBITMQ_METRICS_PORT}/metrics)",
                rabbitmq_environment(), also_listens=(RABBITMQ_METRICS_PORT, RABBITMQ_DIST_PORT)),
    ]


PREPARE = {"postgres": prepare_postgres, "redis": prepare_redis, "rabbitmq": prepare_rabbitmq}
PROGRAMS = {"postgres": postgres_programs, "redis": redis_programs, "rabbitmq": rabbitmq_programs}


def prepare() -> None:
    for dep, ok in available().items():
        if ok:
            PREPARE[dep]()
    write_dsn_files()


def programs() -> list[Program]:
    return [p for dep, ok in available().items() if ok for p in PROGRAMS[dep]()]


def workload_environment(service: str) -> tuple[tuple[str, str], ...]:
    """The api's and analyzer's settings for the real servers (compose uses the same names)."""
    uses = {"api": ("DATABASE_URL", "REDIS_URL", "RABBITMQ_URL"), "analyzer": ("RABBITMQ_URL",)}
    dep_of = {"DATABASE_URL": "postgres", "REDIS_URL": "redis", "RABBITMQ_URL": "rabbitmq"}
    ok = available()
    return tuple((f"{name}_FILE", str(DSN_FILES[name])) for name in uses.get(service, ())
                 if ok[dep_of[name]])


def rabbitmqctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """RabbitMQ's CLI against the native node (same cookie, node name and epmd port)."""
    ctl = Path(os.path.realpath(TOOLS / "rabbitmq-server")).with_name("rabbitmqctl")
    env = {"PATH": f"{TOOLS}:/usr/bin:/bin", **dict(rabbitmq_environment())}
    return subprocess.run([str(ctl), "-n", RABBITMQ_NODE, *args], env=env, capture_output=True,
                          text=True, timeout=timeout)
