"""`python -m native up|down|status|start|stop|restart <name>`."""

import sys

from native.stack import main

raise SystemExit(main(sys.argv[1:]))
