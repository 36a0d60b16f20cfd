"""Fixtures shared by the live suites: one fresh Alertmanager state for the whole run, and the
incidents on the real dependencies (tests/integration/dependencies.py), started together with
test_live_alerting.py's scenario so their waits overlap.

test_live_full.py (the alerts whose `for` is longer than `make test` may wait) is collected
only with LIVE_FULL=1: `make test-live-full`."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

if os.environ.get("LIVE_FULL") != "1":
    collect_ignore = ["test_live_full.py"]


@pytest.fixture(scope="session")
def fresh_alertmanager(backend: str, stack) -> float:  # noqa: ANN001 - Endpoints
    """Restart Alertmanager without its notification log, once (silences are kept).

    An alert notified in an earlier run (or still sitting in an aggregation group) would
    otherwise be deduplicated for repeat_interval or wait for its old group's group_interval,
    and the deadlines would not hold. Once per session, before any live alert is produced, so
    a later restart never drops a notification another test is waiting for."""
    if backend != "native":
        pytest.skip("native-only: restarts Alertmanager (use --backend=native)")
    from native import stack as native

    # The moment before the restart: the new Alertmanager may notify (the Watchdog, group_wait
    # 0s) before it reports ready, and that notification belongs to this run.
    before = time.time()
    native.reset_alertmanager_state()
    return before


@pytest.fixture(scope="session")
def dependency_incidents(backend: str, stack, fresh_alertmanager: float):  # noqa: ANN001,ANN201
    """The running incidents, or None when the native run simulates its dependencies (then
    test_live_dependencies.py skips, or fails with CI=true; the other live tests still run)."""
    if backend != "native":
        yield None
        return
    from native import deps
    from tests.integration import dependencies

    if deps.missing():
        yield None
        return
    with dependencies.started() as incidents:
        yield incidents


@pytest.fixture
def incidents(dependency_incidents) -> Iterator[object]:  # noqa: ANN001
    if dependency_incidents is None:
        from native import deps
        from native.stack import in_ci

        reason = f"the native run simulates {', '.join(deps.missing()) or 'its dependencies'}"
        if in_ci():
            pytest.fail(f"CI=true: {reason} (make bootstrap must provide them)", pytrace=False)
        pytest.skip(f"{reason}: `make bootstrap` says why")
    yield dependency_incidents
