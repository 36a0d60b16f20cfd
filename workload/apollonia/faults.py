"""Fault injection knobs: set at start-up from APOLLONIA_FAULT_<NAME> env vars, changed at run
time through POST /admin/faults (JSON, partial update), shown by GET, cleared by DELETE.

Each knob exists to drive one alert to fire and, once cleared, to resolve (docs/workload.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("apollonia.faults")


class FaultError(ValueError):
    """A knob name or value that cannot be applied; the message names the problem."""


@dataclass(frozen=True)
class Knob:
    name: str
    kind: type  # float, int or bool
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False  # None = "not forced, use the natural value"
    help: str = ""


KNOBS: dict[str, Knob] = {
    k.name: k
    for k in (
        Knob("error_ratio", float, 0.0, 0.0, 1.0, help="share of requests answered 500"),
        Knob("latency_seconds", float, 0.0, 0.0, 30.0, help="latency added to each request"),
        Knob("queue_backlog", int, None, 0, 1_000_000, True, "forced analyzer_queue depth"),
        Knob("cache_hit_ratio", float, None, 0.0, 1.0, True, "forced cache hit ratio"),
        Knob("db_connections", int, None, 0, 10_000, True,
             "extra DB connections held open (the gauge, when simulated)"),
        Knob("db_latency_seconds", float, 0.0, 0.0, 30.0, help="latency added to each query"),
        Knob("ml_error_ratio", float, 0.0, 0.0, 1.0, help="share of predictions that fail"),
        Knob("metrics_enabled", bool, True, help="false: /metrics answers 503"),
        Knob("upload_rate", float, None, 0.0, 100.0, True, "uploads/s the load generator sends"),
        Knob("consumer_paused", bool, False,
             help="true: the analyzer stops consuming analyzer_queue (RabbitMQ only)"),
    )
}

APPLIES: dict[str, tuple[str, ...]] = {
    "api": (
        "error_ratio", "latency_seconds", "queue_backlog", "cache_hit_ratio", "db_connections",
        "db_latency_seconds", "metrics_enabled", "upload_rate",
    ),
    "analyzer": ("error_ratio", "latency_seconds", "ml_error_ratio", "metrics_enabled",
                 "consumer_paused"),
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def coerce(knob: Knob, value: Any) -> Any:
    """Validate one value (JSON or env string) for a knob; raises FaultError."""
    if isinstance(value, str):
        text = value.strip().lower()
        if knob.nullable and text in ("", "none", "null"):
            return None
        if knob.kind is bool:
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise FaultError(f"{knob.name}: expected true or false, got {value!r}")
        try:
            value = float(text)
        except ValueError:
            raise FaultError(f"{knob.name}: expected a number, got {value!r}") from None
    if value is None:
        if knob.nullable:
            return None
        raise FaultError(f"{knob.name}: may not be null")
    if knob.kind is bool:
        if isinstance(value, bool):
            return value
        raise FaultError(f"{knob.name}: expected true or false, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultError(f"{knob.name}: expected a number, got {value!r}")
    if value != value:  # NaN
        raise FaultError(f"{knob.name}: expected a number, got NaN")
    if knob.minimum is not None and value < knob.minimum or (
        knob.maximum is not None and value > knob.maximum
    ):
        raise FaultError(f"{knob.name}: {value} is outside [{knob.minimum}, {knob.maximum}]")
    if knob.kind is int:
        if float(value) != int(value):
            raise FaultError(f"{knob.name}: expected a whole number, got {value!r}")
        return int(value)
    return float(value)


class Faults:
    """Current knob values for one service."""

    def __init__(self, service: str, env: Mapping[str, str] | None = None) -> None:
        self.service = service
        self.applies = APPLIES[service]
        self._values: dict[str, Any] = {name: KNOBS[name].default for name in self.applies}
        env = os.environ if env is None else env
        from_env = {}
        for name in self.applies:
            var = f"APOLLONIA_FAULT_{name.upper()}"
            if var in env and env[var].strip() != "":
                try:
                    from_env[name] = coerce(KNOBS[name], env[var])
                except FaultError as exc:
                    raise FaultError(f"{var}: {exc}") from None
        self._values.update(from_env)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        if name in KNOBS:  # a knob this service ignores: always its neutral default
            return KNOBS[name].default
        raise AttributeError(name)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def update(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a partial update atomically (all values valid, or nothing changes)."""
        if not isinstance(changes, Mapping):
            raise FaultError("body must be a JSON object of knob: value")
        staged = {}
        for name, value in changes.items():
            if name not in KNOBS:
                raise FaultError(f"unknown knob {name!r}; known: {', '.join(KNOBS)}")
            if name not in self.applies:
                raise FaultError(
                    f"knob {name!r} has no effect on {self.service}; "
                    f"it takes: {', '.join(self.applies)}"
                )
            staged[name] = coerce(KNOBS[name], value)
        self._values.update(staged)
        if staged:
            log.warning("fault injection changed", extra={"faults": staged})
        return self.as_dict()

    def reset(self) -> dict[str, Any]:
        self._values = {name: KNOBS[name].default for name in self.applies}
        log.warning("fault injection reset")
        return self.as_dict()
