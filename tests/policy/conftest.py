"""Fixtures for the compose policy tests: rendered configurations of the real files."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.policy import rules

COMPOSE = rules.REPO / "compose.yaml"
STAGING = rules.REPO / "compose.staging.yaml"


@pytest.fixture(scope="session")
def compose_available() -> None:
    if rules.compose_bin() is None:
        pytest.skip("docker-compose not found (make bootstrap installs it into .tools/bin)")


@pytest.fixture(scope="session")
def local_config(compose_available: None) -> dict[str, Any]:
    """compose.yaml with the demo profile, as `make up` runs it on a laptop."""
    return rules.render([COMPOSE], profiles=("demo",))


@pytest.fixture(scope="session")
def staging_config(compose_available: None) -> dict[str, Any]:
    """compose.yaml + compose.staging.yaml without the demo, as a staging host runs it."""
    return rules.render([COMPOSE, STAGING], profiles=())


@pytest.fixture(params=["local", "staging"])
def any_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    return request.getfixturevalue(f"{request.param}_config")


@pytest.fixture(scope="session")
def generated() -> set[Path]:
    return rules.generated_secret_paths()


@pytest.fixture
def mutated(
    tmp_path: Path, compose_available: None
) -> Callable[[Callable[[dict[str, Any]], None]], dict[str, Any]]:
    """Render a mutated copy of compose.yaml (paths still relative to the repo)."""

    def apply(mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        doc = copy.deepcopy(yaml.safe_load(COMPOSE.read_text()))
        mutate(doc)
        target = tmp_path / "compose.yaml"
        target.write_text(yaml.safe_dump(doc, sort_keys=False))
        return rules.render([target], profiles=("demo",))

    return apply
