"""Command line of dev.engine (see the package docstring)."""

from __future__ import annotations

import argparse
import sys

from dev.engine import daemon


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.engine")
    parser.add_argument("command", choices=("start", "stop", "status", "env", "build"))
    parser.add_argument("images", nargs="*", help="build: only these image references")
    parser.add_argument("--name", default="main", help="engine name (own data root and socket)")
    parser.add_argument("--shared-root", action="store_true",
                        help="start: run the daemon where / is an rshared mount")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            engine = daemon.start(args.name, shared_root=args.shared_root)
            print(f"engine {args.name}: Docker {engine.server_version()} at {engine.host}")
        elif args.command == "stop":
            daemon.stop(args.name)
            print(f"engine {args.name}: stopped")
        elif args.command == "status":
            engine = daemon.Engine(args.name)
            print(f"engine {args.name}: {'running' if engine.running() else 'stopped'}")
        elif args.command == "env":
            engine = daemon.Engine(args.name)
            print(f"export DOCKER_HOST={engine.host} PATH={daemon.BIN}:$PATH")
        else:
            from dev.engine import facsimile

            engine = daemon.start(args.name)
            facsimile.build_all(engine, only=args.images or None)
    except daemon.EngineError as exc:
        print(f"dev.engine: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
