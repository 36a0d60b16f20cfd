"""Shared loaders for the static log/trace configuration tests (no running services needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FLUENT_BIT_CONFIG = ROOT / "fluent-bit" / "fluent-bit.yaml"
JAEGER_CONFIG = ROOT / "jaeger" / "config.yaml"
ES_DIR = ROOT / "elasticsearch"

# The fields the workload's JSON log formatter writes (contract with the workload helper).
WORKLOAD_LOG_FIELDS = (
    "timestamp",
    "level",
    "service",
    "logger",
    "message",
    "module",
    "function",
    "line",
    "request_id",
    "user_id",
    "trace_id",
    "span_id",
    "exception",
)
WORKLOAD_REQUEST_FIELDS = ("method", "route", "status", "duration_ms")


def load_yaml(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict), f"{path}: top level is not a mapping"
    return data


def load_json(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        data = json.load(fh)
    assert isinstance(data, dict), f"{path}: top level is not an object"
    return data


@pytest.fixture(scope="session")
def fluent_bit() -> dict[str, Any]:
    return load_yaml(FLUENT_BIT_CONFIG)


@pytest.fixture(scope="session")
def jaeger() -> dict[str, Any]:
    return load_yaml(JAEGER_CONFIG)


@pytest.fixture(scope="session")
def index_template() -> dict[str, Any]:
    return load_json(ES_DIR / "index-template.json")
