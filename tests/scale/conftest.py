"""The native scale profile for the proofs of tests/scale (native/scale.py).

The session starts the profile if it is not running and stops it at the end if it started it
(NATIVE_KEEP=1 keeps it). It binds its own ports and keeps its state in .run/scale/, so this
suite runs at the same time as the base native suite (make test runs both concurrently).
With CI=true a missing binary fails the suite instead of skipping it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from native import scale
from native.stack import NativeError
from tests.scale import helpers


def missing_tools() -> list[str]:
    return [name for name in scale.TOOL_NAMES if not (scale.TOOLS / name).exists()]


@pytest.fixture(scope="session")
def scale_run() -> Iterator[None]:
    missing = missing_tools()
    if missing:
        reason = f"scale profile: .tools/bin/{', '.join(missing)} missing (run `make bootstrap`)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    was_running = scale.running()
    try:
        # Starts it, or restarts what runs with other flags and starts anything stopped.
        scale.up()
    except NativeError as exc:
        pytest.fail(f"scale profile failed to start: {exc}", pytrace=False)
    yield
    if was_running:
        scale.up()  # back to the shipped flags
    elif not os.environ.get("NATIVE_KEEP"):
        scale.down()


@pytest.fixture
def client() -> Iterator[helpers.Client]:
    c = helpers.Client()
    yield c
    c.close()
