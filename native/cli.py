"""`python -m native up|down|status [--profile scale]` and `start|stop|restart <name>`.

The one module that knows both profiles: the base run (native/stack.py) and the scale
profile (native/scale.py), which share native/common.py and never import each other.
"""

from __future__ import annotations

import argparse
import sys

from native import scale, stack
from native.common import NativeError, ctl, supervisor_running


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m native",
        description="The native run: the bundle's metrics and alerting stack as local "
                    "processes on 127.0.0.1 (state in .run/).")
    sub = cli.add_subparsers(dest="cmd", required=True)
    verbs = {
        "up": "start (or refresh) the native run and wait until it is ready",
        "down": "stop every process of the native run (and of the scale profile)",
        "status": "show process states and readiness (exit 1 if not ready)",
    }
    for verb, text in verbs.items():
        p = sub.add_parser(verb, help=text)
        # The scale profile (native/scale.py) runs next to the base run, on its own ports.
        p.add_argument("--profile", choices=["scale"], help="also the scale profile")
    for verb in ("start", "stop", "restart"):
        p = sub.add_parser(verb, help=f"{verb} one process (supervisorctl {verb})")
        p.add_argument("name", choices=[c.name for c in stack.components()])
    return cli


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    profile = getattr(args, "profile", None)
    try:
        if args.cmd == "up":
            stack.up()
            print(stack.banner())
            if profile == "scale":
                scale.up()
                print(scale.banner())
        elif args.cmd == "down":
            print("native run stopped" if stack.down() else "native run was not running")
            if scale.running():
                scale.down()
                print("scale profile stopped")
        elif args.cmd == "status":
            ok, text = stack.status()
            print(text)
            if profile == "scale":
                scale_ok, scale_text = scale.status()
                print(scale_text)
                ok = ok and scale_ok
            return 0 if ok else 1
        else:
            if not supervisor_running():
                raise NativeError("native run is not running")
            out = ctl(args.cmd, args.name)
            print(out.stdout.rstrip())
            return out.returncode
    except NativeError as exc:
        print(f"native: {exc}", file=sys.stderr)
        return 1
    return 0
