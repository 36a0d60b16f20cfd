"""Fixtures of the command tests (tests/commands/fakes.py)."""

from tests.commands.fakes import repo, server  # noqa: F401
