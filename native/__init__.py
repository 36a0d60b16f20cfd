"""Native run of the bundle's metrics and alerting stack (no Docker): see native/cli.py."""
