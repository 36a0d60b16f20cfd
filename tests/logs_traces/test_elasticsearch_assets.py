"""The index template and ILM policies: valid, and consistent with what the workload logs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.logs_traces.conftest import (
    ES_DIR,
    WORKLOAD_LOG_FIELDS,
    WORKLOAD_REQUEST_FIELDS,
    load_json,
)

# Elasticsearch types a JSON value of each Python type can be indexed into without a
# mapping error (numbers and booleans are coerced into keyword; text takes strings).
COMPATIBLE = {
    str: {"keyword", "text", "date"},
    int: {"keyword", "integer", "long", "short", "double", "float", "date"},
    float: {"keyword", "double", "float"},
}

# One request line and one error line as the workload's formatter writes them.
SAMPLE_LINES = [
    {
        "timestamp": "2026-11-29T00:15:02.123456+00:00",
        "level": "INFO",
        "service": "api",
        "logger": "apollonia.api.access",
        "message": "GET /api/v1/media 200",
        "module": "middleware",
        "function": "dispatch",
        "line": 42,
        "request_id": "0f8e2d6c-5a7b-4c1d-9e3f-2b6a8c4d1e70",
        "user_id": "user-17",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
        "method": "GET",
        "route": "/api/v1/media",
        "status": 200,
        "duration_ms": 12.7,
    },
    {
        "timestamp": "2026-11-29T00:15:03.000001+00:00",
        "level": "ERROR",
        "service": "analyzer",
        "logger": "apollonia.analyzer",
        "message": "inference failed",
        "module": "worker",
        "function": "process",
        "line": 88,
        "request_id": "",
        "user_id": "",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "53995c3f42cd8ad8",
        "exception": "Traceback (most recent call last):\n  ...\nRuntimeError: boom",
    },
]


@pytest.fixture(scope="module")
def properties(index_template):
    return index_template["template"]["mappings"]["properties"]


def test_template_targets_daily_log_indices(index_template):
    assert index_template["index_patterns"] == ["apollonia-*"]
    settings = index_template["template"]["settings"]
    assert settings["index.number_of_replicas"] == 0, "single node would stay yellow"
    assert settings["index.lifecycle.name"] == "apollonia-logs"
    # A rejected line is lost silently (Fluent Bit counts a partly rejected bulk as delivered,
    # tests/fixtures/fluent-bit-5.1.1/run.json bulk_201_400_201), so refuse as little as
    # possible: a field whose value does not fit its mapping is skipped, not the whole line
    # rejected; a new field past the field limit stays unindexed instead of failing the line.
    assert settings["index.mapping.ignore_malformed"] is True
    assert settings["index.mapping.total_fields.ignore_dynamic_beyond_limit"] is True


def test_fields_the_issue_requires(properties):
    for field in ("level", "service", "trace_id", "request_id"):
        assert properties[field]["type"] == "keyword", field
    # Fluent Bit writes nanoseconds (time_key_nanos): date_nanos keeps them, so lines of the
    # same millisecond still sort in order; date would truncate to milliseconds.
    assert properties["@timestamp"]["type"] == "date_nanos"


def test_every_workload_field_is_mapped_explicitly(properties):
    for field in (*WORKLOAD_LOG_FIELDS, *WORKLOAD_REQUEST_FIELDS):
        assert field in properties, f"{field} left to dynamic mapping"
    for field in ("cluster_name", "environment"):  # added by Fluent Bit
        assert properties[field]["type"] == "keyword"


def test_free_text_fields_are_searchable_as_text(properties):
    assert properties["message"]["type"] == "text"
    assert properties["exception"]["type"] == "text"


@pytest.mark.parametrize("line", SAMPLE_LINES, ids=["request", "error"])
def test_sample_lines_fit_the_mapping(properties, line):
    for key, value in line.items():
        mapped = properties[key]["type"]
        assert mapped in COMPATIBLE[type(value)], f"{key}={value!r} cannot go into {mapped}"
        if mapped == "date":
            datetime.fromisoformat(value)  # strict_date_optional_time accepts ISO 8601
        if mapped == "short":
            assert -32768 <= value <= 32767


def test_unknown_string_fields_become_keywords(index_template):
    dyn = index_template["template"]["mappings"]["dynamic_templates"]
    rule = next(iter(dyn[0].values()))
    assert rule["match_mapping_type"] == "string"
    assert rule["mapping"]["type"] == "keyword"


@pytest.mark.parametrize("name", ["ilm-logs.json", "ilm-traces.json"])
def test_ilm_policy_deletes_after_retention(name):
    text = (ES_DIR / name).read_text(encoding="utf-8")
    phases = json.loads(text)["policy"]["phases"]
    assert set(phases) <= {"hot", "warm", "cold", "frozen", "delete"}
    assert phases["delete"] == {"min_age": "7d", "actions": {"delete": {}}}
    # setup.sh rewrites exactly this string with the configured number of days.
    assert text.count('"min_age": "7d"') == 1
    # No rollover: the indices are date-named by their writers, not behind a write alias.
    assert "rollover" not in phases.get("hot", {}).get("actions", {})


def test_template_names_an_existing_policy(index_template):
    policy = index_template["template"]["settings"]["index.lifecycle.name"]
    setup = (ES_DIR / "setup.sh").read_text(encoding="utf-8")
    assert f"/_ilm/policy/{policy} " in setup
    assert load_json(ES_DIR / "ilm-logs.json")["policy"]["phases"]["delete"]


def test_index_of_today_matches_template(index_template):
    import fnmatch

    today = f"apollonia-{datetime.now(UTC):%Y.%m.%d}"
    assert any(fnmatch.fnmatchcase(today, p) for p in index_template["index_patterns"])
