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
SCALE = rules.REPO / "compose.scale.yaml"
AGENT = rules.REPO / "compose.agent.yaml"


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


@pytest.fixture(scope="session")
def scale_config(compose_available: None) -> dict[str, Any]:
    """compose.yaml + compose.scale.yaml with the demo, as the scale profile runs."""
    return rules.render([COMPOSE, SCALE], profiles=("demo",))


@pytest.fixture(scope="session")
def agent_config(compose_available: None) -> dict[str, Any]:
    """compose.agent.yaml alone, as a remote host runs it."""
    return rules.render([AGENT], profiles=())


CONFIGS = ["local", "staging", "scale", "agent"]


@pytest.fixture(params=CONFIGS)
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


@pytest.fixture
def mutated_scale(
    tmp_path: Path, compose_available: None
) -> Callable[[Callable[[dict[str, Any]], None]], dict[str, Any]]:
    """Render compose.yaml with a mutated copy of compose.scale.yaml (a file next to the
    original, so its relative paths and `extends` still resolve)."""

    def apply(mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        doc = rules.load_compose_yaml(SCALE.read_text())
        mutate(doc)
        target = rules.REPO / f".compose.scale.mutated-{tmp_path.name}.yaml"
        try:
            target.write_text(rules.dump_compose_yaml(doc))
            return rules.render([COMPOSE, target], profiles=("demo",))
        finally:
            target.unlink(missing_ok=True)

    return apply
