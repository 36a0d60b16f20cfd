"""Automated diagnosis: the guide's troubleshooting queries, corrected, run against Prometheus.

    python -m tools.diagnose [--prometheus URL] [--password-file FILE] [--user NAME]
    make diagnose [PROMETHEUS_URL=...] [PROMETHEUS_PASSWORD_FILE=...]

Prints one line per check (ok / warning / critical) with the measured value and,
for a finding, the follow-up breakdowns and what to look at next. Exits 1 when a
check is critical, 2 when Prometheus cannot be queried (one line saying why).

Staging puts Prometheus behind basic auth: the password is read from a file
(--password-file, default secrets/basic_auth_password when it exists), never from the
command line or the URL, and never printed. Standard library only: it runs with the
system python3 on a staging host, where there is no virtualenv.

Changed from the guide: quantiles are aggregated `by (le, ...)`, the error rate is
a ratio of separately summed rates, and the memory check uses metrics the stack
really exports (process_resident_memory_bytes, python_gc_collections_total)
instead of the guide's memory_usage_bytes / gc_collections_total, which nothing
emits.
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PASSWORD_FILE = REPO / "secrets" / "basic_auth_password"
TIMEOUT = 10


@dataclass(frozen=True)
class Diagnosis:
    name: str
    query: str  # one number (the worst series) is compared with the thresholds
    warning: float
    critical: float
    unit: str
    breakdowns: dict[str, str] = field(default_factory=dict)
    advice: tuple[str, ...] = ()


DIAGNOSES: tuple[Diagnosis, ...] = (
    Diagnosis(
        name="high_latency",
        query="max(service:http_request_duration_seconds:p95_rate5m)",
        warning=1.0,
        critical=2.0,
        unit="s",
        breakdowns={
            "p95 by endpoint": "topk(5, service_endpoint:http_request_duration_seconds:p95_rate5m)",
            "database p95": "service:database_query_duration_seconds:p95_rate5m",
        },
        advice=(
            "Check database query performance",
            "Review slow endpoints (Jaeger: sort by duration)",
            "Consider caching or scaling out",
        ),
    ),
    Diagnosis(
        name="high_error_rate",
        query="max(service:http_requests_error_ratio:rate5m)",
        warning=0.05,
        critical=0.10,
        unit="ratio",
        breakdowns={
            "5xx by endpoint": 'topk(5, sum by (service, endpoint, status_code) '
            '(rate(http_requests_total{status_code=~"5.."}[5m])))',
        },
        advice=(
            "Search the logs for level:ERROR with the failing route",
            "Check database and dependency connectivity",
            "Review recent deployments",
        ),
    ),
    Diagnosis(
        name="memory_pressure",
        query='max(process_resident_memory_bytes{job=~"apollonia-.*"})',
        warning=1.5e9,
        critical=2.0e9,
        unit="bytes",
        breakdowns={
            "growth per hour": "deriv(process_resident_memory_bytes"
            '{job=~"apollonia-.*"}[30m]) * 3600',
            "GC collections/s": "sum by (service, generation) "
            "(rate(python_gc_collections_total[10m]))",
        },
        advice=(
            "Look for leaks: steady growth with flat traffic",
            "Check container limits and OOM kills (cAdvisor)",
        ),
    ),
    Diagnosis(
        name="database",
        query="max(service:database_query_duration_seconds:p95_rate5m)",
        warning=0.5,
        critical=1.0,
        unit="s",
        breakdowns={
            "avg by table": "topk(5, service_table:database_query_duration_seconds:avg_rate5m)",
            "active connections": "database_connections_active",
        },
        advice=("Check slow query log and missing indexes", "Check connection pool saturation"),
    ),
    Diagnosis(
        name="queue_backlog",
        query='max(queue_messages_total{queue_name="analyzer_queue"})',
        warning=100,
        critical=500,
        unit="messages",
        breakdowns={"ML error ratio": "service:ml_processing_error_ratio:rate5m"},
        advice=("Check the analyzer is consuming (up, errors)", "Scale analyzer workers"),
    ),
)


class DiagnoseError(Exception):
    """Prometheus cannot be queried; one line saying why (never holding a password)."""


class Client:
    """GET /api/v1/query against one Prometheus, with basic auth when a password is set."""

    def __init__(self, base_url: str, user: str = "admin", password: str | None = None,
                 password_source: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = None
        self.password_source = password_source
        if password is not None:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self.auth = f"Basic {token}"

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.base_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        if self.auth:
            request.add_header("Authorization", self.auth)
        where = f"{self.base_url}/api/v1/query"
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:
                kind = resp.headers.get_content_type()
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read() if exc.fp else b""
            if exc.code == 401:
                if self.auth:
                    raise DiagnoseError(
                        f"{where}: 401: the password in {self.password_source} was refused "
                        "(the staging password is secrets/basic_auth_password)") from exc
                raise DiagnoseError(
                    f"{where}: 401: Prometheus asks for a password (staging): pass "
                    "--password-file FILE (make diagnose PROMETHEUS_PASSWORD_FILE=FILE), "
                    "default secrets/basic_auth_password") from exc
            raise DiagnoseError(f"{where}: HTTP {exc.code}: {_error(raw) or exc.reason}") \
                from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, socket.timeout | TimeoutError):
                reason = f"no answer in {TIMEOUT} s"
            raise DiagnoseError(f"{where}: cannot connect: {reason}") from exc
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise DiagnoseError(
                f"{where}: answered with {kind}, not Prometheus' JSON: is "
                f"{self.base_url} Prometheus (e.g. http://127.0.0.1:9090)?") from exc
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else None
            raise DiagnoseError(f"{where}: query failed: {error or 'not a Prometheus answer'}")
        result = (body.get("data") or {}).get("result") if isinstance(body.get("data"), dict) \
            else None
        if not isinstance(result, list):
            raise DiagnoseError(f"{where}: the answer has no data.result list: is "
                                f"{self.base_url} Prometheus?")
        return result


def _error(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return " ".join(raw.decode("utf-8", "replace").split())[:200]
    return str(body.get("error", "")) if isinstance(body, dict) else ""


def _value(series: dict[str, Any]) -> float:
    try:
        return float(series["value"][1])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise DiagnoseError(f"a series without a numeric value: {str(series)[:200]}") from exc


def run(client: Client) -> int:
    worst = 0
    for d in DIAGNOSES:
        result = client.query(d.query)
        if not result:
            print(f"{'no data':9} {d.name}: {d.query}")
            continue
        value = _value(result[0])
        level = 2 if value >= d.critical else 1 if value >= d.warning else 0
        worst = max(worst, level)
        print(f"{('ok', 'warning', 'critical')[level]:9} {d.name}: {value:.4g} {d.unit}")
        if level:
            for title, promql in d.breakdowns.items():
                for series in client.query(promql):
                    metric = series.get("metric") if isinstance(series, dict) else None
                    labels = ",".join(f"{k}={v}" for k, v in sorted((metric or {}).items()))
                    print(f"          {title}: {{{labels}}} {_value(series):.4g}")
            for line in d.advice:
                print(f"          - {line}")
    return 1 if worst == 2 else 0


def check_url(url: str) -> str:
    """The URL, or DiagnoseError naming what is wrong with it (without a password)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise DiagnoseError(f"--prometheus: not a URL ({exc}); e.g. http://127.0.0.1:9090") \
            from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = url if "@" not in url else "(a URL with credentials)"
        raise DiagnoseError(f"--prometheus {shown}: not an http(s) URL with a host; e.g. "
                            "http://127.0.0.1:9090")
    if parts.username is not None or parts.password is not None:
        host = parts.hostname + (f":{port}" if port else "")
        raise DiagnoseError(
            f"--prometheus {parts.scheme}://…@{host}: a password in the URL shows in `ps`, in "
            "the shell history and in error messages; put it in a file and pass "
            "--password-file FILE (default secrets/basic_auth_password)")
    return url


def read_password(path: Path, given: bool) -> str | None:
    """The password in the file; None when the default file is absent."""
    if not given and not path.exists():
        return None
    try:
        data = path.read_bytes()
    except IsADirectoryError as exc:
        raise DiagnoseError(f"{path}: is a directory, not the password file") from exc
    except OSError as exc:
        raise DiagnoseError(f"{path}: cannot read the password file: {exc.strerror}") from exc
    try:
        password = data.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise DiagnoseError(f"{path}: the password file is not UTF-8 text") from exc
    if not password:
        raise DiagnoseError(f"{path}: the password file is empty (make secrets writes one)")
    return password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.diagnose",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--password-file", type=Path, default=None,
                        help="basic-auth password (default: secrets/basic_auth_password if "
                             "it exists)")
    parser.add_argument("--user", default="admin", help="basic-auth user (default: admin)")
    args = parser.parse_args(argv)
    path = args.password_file or DEFAULT_PASSWORD_FILE
    try:
        url = check_url(args.prometheus)
        password = read_password(path, args.password_file is not None)
        client = Client(url, args.user, password, str(path))
        return run(client)
    except DiagnoseError as exc:
        print(f"diagnose: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader (e.g. `| head`) stopped early: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
