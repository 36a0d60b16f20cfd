"""Command line: python -m apollonia {api,analyzer,loadgen,all} [options].

Every option also reads an environment variable (shown in --help), so the same image runs
in compose, staging and the native run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .faults import FaultError
from .loadgen import UnsafeTarget


def env(name: str, default: str | None = None) -> str | None:
    """An env var, or the content of the file named by <name>_FILE (for secrets)."""
    value = os.environ.get(name)
    if value:
        return value
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip() or default
        except OSError as exc:
            raise SystemExit(f"apollonia: {name}_FILE={path}: {exc.strerror}") from None
    return default


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} outside 1-65535")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m apollonia", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    host_default = env("APOLLONIA_HOST", "127.0.0.1")
    log_default = env("APOLLONIA_LOG_LEVEL", "INFO")
    otlp_default = env("OTEL_EXPORTER_OTLP_ENDPOINT")

    def common(p: argparse.ArgumentParser, port: int) -> None:
        p.add_argument("--host", default=host_default, help="bind address [APOLLONIA_HOST]")
        p.add_argument("--port", type=_port, default=int(env("APOLLONIA_PORT", str(port))),
                       help="listen port [APOLLONIA_PORT]")
        p.add_argument("--otlp-endpoint", default=otlp_default,
                       help="OTLP/HTTP base URL, e.g. http://127.0.0.1:4318; unset = no export "
                            "[OTEL_EXPORTER_OTLP_ENDPOINT]")
        p.add_argument("--log-level", default=log_default, help="[APOLLONIA_LOG_LEVEL]")

    api = sub.add_parser("api", help="run the api service")
    common(api, 8000)
    api.add_argument("--analyzer-url", default=env("ANALYZER_URL", "http://127.0.0.1:8001"),
                     help="[ANALYZER_URL]")
    api.add_argument("--database-url", default=env("DATABASE_URL"),
                     help="PostgreSQL DSN; unset = simulated [DATABASE_URL or DATABASE_URL_FILE]")
    api.add_argument("--redis-url", default=env("REDIS_URL"),
                     help="unset = simulated [REDIS_URL or REDIS_URL_FILE]")
    api.add_argument("--rabbitmq-url", default=env("RABBITMQ_URL"),
                     help="unset = simulated [RABBITMQ_URL or RABBITMQ_URL_FILE]")

    analyzer = sub.add_parser("analyzer", help="run the analyzer service")
    common(analyzer, 8001)
    analyzer.add_argument("--rabbitmq-url", default=env("RABBITMQ_URL"),
                          help="consume analyzer_queue; unset = jobs over HTTP only "
                               "[RABBITMQ_URL or RABBITMQ_URL_FILE]")

    def loadgen_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--rate", type=float, default=float(env("LOADGEN_RATE", "6")),
                       help="non-upload requests per second [LOADGEN_RATE]")
        p.add_argument("--upload-rate", type=float,
                       default=float(env("LOADGEN_UPLOAD_RATE", "2")),
                       help="uploads per second [LOADGEN_UPLOAD_RATE]")
        p.add_argument("--duration", type=float, default=None,
                       help="stop after this many seconds (default: run forever)")

    loadgen = sub.add_parser("loadgen", help="run the load generator")
    loadgen.add_argument("--api-url", default=env("API_URL", "http://127.0.0.1:8000"),
                         help="[API_URL]")
    loadgen.add_argument("--log-level", default=log_default)
    loadgen_opts(loadgen)

    everything = sub.add_parser("all", help="api + analyzer + load generator as child processes")
    everything.add_argument("--host", default=host_default)
    everything.add_argument("--api-port", type=_port, default=8000)
    everything.add_argument("--analyzer-port", type=_port, default=8001)
    everything.add_argument("--no-loadgen", action="store_true")
    everything.add_argument("--log-level", default=log_default)
    loadgen_opts(everything)

    probe = sub.add_parser("probe", help="exit 0 if URL answers 2xx within 3 s (healthchecks)")
    probe.add_argument("url")
    return parser


def _serve(app: object, host: str, port: int) -> None:
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=5, server_header=False)
    uvicorn.Server(config).run()


def run_all(args: argparse.Namespace) -> int:
    """Start api, analyzer and load generator as child processes; stop all when one ends."""
    base = [sys.executable, "-m", "apollonia"]
    analyzer_url = f"http://{args.host}:{args.analyzer_port}"
    api_url = f"http://{args.host}:{args.api_port}"
    common = ["--host", args.host, "--log-level", args.log_level]
    commands = [
        base + ["analyzer", *common, "--port", str(args.analyzer_port)],
        base + ["api", *common, "--port", str(args.api_port), "--analyzer-url", analyzer_url],
    ]
    if not args.no_loadgen:
        commands.append(base + ["loadgen", "--api-url", api_url, "--rate", str(args.rate),
                                "--upload-rate", str(args.upload_rate),
                                "--log-level", args.log_level])
    children = [subprocess.Popen(cmd) for cmd in commands]
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    while not stopping:
        for child in children:
            if child.poll() is not None:
                code = child.returncode or 1
                stopping = True
                break
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
    return code


def loadgen_fault_upload_rate(environ: dict[str, str] | None = None) -> float | None:
    """APOLLONIA_FAULT_UPLOAD_RATE for the load generator (None when unset)."""
    from .faults import KNOBS, coerce

    raw = (os.environ if environ is None else environ).get("APOLLONIA_FAULT_UPLOAD_RATE", "")
    if not raw.strip():
        return None
    try:
        return coerce(KNOBS["upload_rate"], raw)
    except FaultError as exc:
        raise FaultError(f"APOLLONIA_FAULT_UPLOAD_RATE: {exc}") from None


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def probe_url(url: str) -> int:
    """A healthcheck without curl in the image: 0 when the URL answers 2xx."""
    import httpx

    try:
        response = httpx.get(url, timeout=3.0)
    except httpx.HTTPError as exc:
        print(f"apollonia probe: {url}: {type(exc).__name__}", file=sys.stderr)
        return 1
    return 0 if response.is_success else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .logs import setup_logging

    try:
        if args.command == "api":
            from .api import ApiConfig, create_app

            setup_logging("api", args.log_level)
            app = create_app(ApiConfig(
                analyzer_url=args.analyzer_url, database_url=args.database_url,
                redis_url=args.redis_url, rabbitmq_url=args.rabbitmq_url,
                otlp_endpoint=args.otlp_endpoint))
            _serve(app, args.host, args.port)
        elif args.command == "analyzer":
            from .analyzer import AnalyzerConfig, create_app

            setup_logging("analyzer", args.log_level)
            app = create_app(AnalyzerConfig(otlp_endpoint=args.otlp_endpoint,
                                            rabbitmq_url=args.rabbitmq_url))
            _serve(app, args.host, args.port)
        elif args.command == "loadgen":
            from .loadgen import LoadGenerator

            setup_logging("loadgen", args.log_level)
            generator = LoadGenerator(args.api_url, rate=args.rate, upload_rate=args.upload_rate,
                                      fault_upload_rate=loadgen_fault_upload_rate())
            signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl+C: log the summary
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(generator.run(args.duration))
        elif args.command == "probe":
            return probe_url(args.url)
        else:
            return run_all(args)
    except (FaultError, UnsafeTarget) as exc:
        print(f"apollonia: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
