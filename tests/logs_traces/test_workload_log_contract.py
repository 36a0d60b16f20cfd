"""The workload's real JSON formatter against the Fluent Bit level filter and the index
template: every line it writes is kept (unless DEBUG) and fits the mapping."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime

import pytest
import yaml
from apollonia.logs import JSONFormatter, request_id_var, user_id_var
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from tests.logs_traces.conftest import (
    FLUENT_BIT_CONFIG,
    WORKLOAD_LOG_FIELDS,
    WORKLOAD_REQUEST_FIELDS,
)

# Elasticsearch field types a JSON value of each Python type is indexed into without error.
COMPATIBLE = {
    str: {"keyword", "text", "date"},
    int: {"keyword", "integer", "long", "short", "double", "float"},
    float: {"keyword", "double", "float"},
}


def level_filter() -> re.Pattern[str]:
    with FLUENT_BIT_CONFIG.open(encoding="utf-8") as fh:
        cfg = yaml.safe_load(fh)
    grep = next(f for f in cfg["pipeline"]["filters"] if f["name"] == "grep")
    key, _, pattern = grep["regex"].partition(" ")
    assert key == "level"
    return re.compile(pattern)


def emit(level: int, msg: str, exc: bool = False, **extra: object) -> dict:
    """One line as the api writes it, inside a span and a request context."""
    formatter = JSONFormatter("api")
    tracer = TracerProvider().get_tracer("contract-test")
    rid, uid = request_id_var.set("5b0c1e7a9d2f4c83"), user_id_var.set("user-17")
    try:
        with tracer.start_as_current_span("POST /api/v1/media"):
            exc_info = None
            if exc:
                try:
                    raise RuntimeError("boom")
                except RuntimeError:
                    exc_info = sys.exc_info()
            record = logging.LogRecord(
                "apollonia.api", level, __file__, 1, msg, (), exc_info, func="upload"
            )
            record.__dict__.update(extra)
            return json.loads(formatter.format(record))
    finally:
        request_id_var.reset(rid)
        user_id_var.reset(uid)
        assert not trace.get_current_span().get_span_context().is_valid


REQUEST_LINE = {"method": "POST", "route": "/api/v1/media", "status": 201, "duration_ms": 9.81}


@pytest.mark.parametrize(
    ("level", "kept"),
    [
        (logging.DEBUG, False),
        (logging.INFO, True),
        (logging.WARNING, True),
        (logging.ERROR, True),
        (logging.CRITICAL, True),
    ],
)
def test_level_filter_keeps_what_the_guide_keeps(level, kept):
    line = emit(level, "request finished", **REQUEST_LINE)
    assert bool(level_filter().search(line["level"])) is kept


def test_request_line_has_every_contract_field_and_fits_the_mapping(index_template):
    props = index_template["template"]["mappings"]["properties"]
    line = emit(logging.ERROR, "request failed", exc=True, **REQUEST_LINE)
    expected = set(WORKLOAD_LOG_FIELDS) | set(WORKLOAD_REQUEST_FIELDS)
    assert expected <= set(line), f"missing: {expected - set(line)}"
    assert re.fullmatch(r"[0-9a-f]{32}", line["trace_id"]), "trace_id not in Jaeger's format"
    datetime.fromisoformat(line["timestamp"])  # strict_date_optional_time accepts it
    for key, value in line.items():
        assert key in props, f"{key} would be mapped dynamically"
        assert props[key]["type"] in COMPATIBLE[type(value)], f"{key}={value!r}"


def test_extra_fields_of_upload_lines_fit_the_mapping(index_template):
    props = index_template["template"]["mappings"]["properties"]
    line = emit(logging.INFO, "media uploaded", media_id="ab12", format="mp3", size_bytes=2048)
    for key in ("media_id", "format", "size_bytes"):
        assert props[key]["type"] in COMPATIBLE[type(line[key])], key
