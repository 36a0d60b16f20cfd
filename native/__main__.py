"""`python -m native up|down|status|start|stop|restart <name>` (native/cli.py)."""

import sys

from native.cli import main

raise SystemExit(main(sys.argv[1:]))
