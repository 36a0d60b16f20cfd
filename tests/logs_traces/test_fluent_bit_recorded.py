"""What the pinned Fluent Bit 5.1.1 binary did with fluent-bit/fluent-bit.yaml, from the run
recorded in tests/fixtures/fluent-bit-5.1.1/ (run.json: the figures; the two *.txt files: its
/api/v2/metrics/prometheus and :2021/metrics output).

The binary does not run in `make test` (CI has none). The first test ties the recording to the
config: change a setting and it fails until the run is repeated with the real binary against
tests/logs_traces/es_standin.py and lines from tests/logs_traces/docker_fluentd.py (see
docs/logs-and-traces.md, "Proving the log path"). Comments do not count, settings do.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.logs_traces.conftest import FLUENT_BIT_CONFIG, ROOT, load_yaml
from tests.metrics_catalog import exposition_series

FIXTURE = ROOT / "tests" / "fixtures" / "fluent-bit-5.1.1"


def config_digest(path: Path) -> str:
    """sha256 of the parsed config: what Fluent Bit reads, not how it is commented."""
    return hashlib.sha256(json.dumps(load_yaml(path), sort_keys=True).encode()).hexdigest()


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    return json.loads((FIXTURE / "run.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def this(run: dict[str, Any]) -> dict[str, Any]:
    return run["this_config"]


def test_recording_is_of_this_config_and_the_pinned_binary(run):
    assert run["binary"] == "Fluent Bit v5.1.1"
    compose = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    assert "fluent/fluent-bit:5.1.1}" in compose, "re-record when the image pin moves"
    assert run["config_sha256"] == config_digest(FLUENT_BIT_CONFIG), (
        "fluent-bit/fluent-bit.yaml changed since the real binary was run against it: "
        "repeat the recording (docs/logs-and-traces.md) and replace "
        "tests/fixtures/fluent-bit-5.1.1/"
    )


def test_log_line_counter_has_the_name_rules_and_dashboards_use():
    """Item 1: without a subsystem 5.1.1 exported apollonia_counter_log_lines_total."""
    series = exposition_series("fluent-bit-logs")
    assert series == {"apollonia_log_lines_total": {frozenset({"log_service", "level"})}}


def test_log_to_metrics_settings_give_that_name(run):
    """Item 1: 5.1.1 names the counter namespace_subsystem_name and fills a missing subsystem
    with the metric mode (plugins/filter_log_to_metrics/log_to_metrics.c, the "Check property
    subsystem name" branch); both runs show it."""
    l2m = next(f for f in load_yaml(FLUENT_BIT_CONFIG)["pipeline"]["filters"]
               if f["name"] == "log_to_metrics")
    subsystem = l2m.get("metric_subsystem") or l2m["metric_mode"]
    name = f"{l2m['metric_namespace']}_{subsystem}_{l2m['metric_name']}"
    assert [name] == run["this_config"]["log_metric_names_on_2021"]
    assert name == "apollonia_log_lines_total", "the name rules and dashboards read"
    assert run["previous_config"]["log_metric_names_on_2021"] == [
        "apollonia_counter_log_lines_total"]


def test_no_line_lost_or_doubled_through_an_outage(this):
    for case in ("outage_60s_connection_refused",):
        c = this[case]
        assert c["lines_indexed"] == c["lines_sent"] == 3000 and c["duplicates"] == 0
        assert c["dropped"] == 0 and c["retries_failed"] == 0


def test_a_lost_answer_is_replayed_once_and_clears(run, this):
    """Item 2: Elasticsearch indexed three bulks and the answers were lost (reset)."""
    c = this["lost_answers_3_bulks"]
    assert c["write_operation"] == ["index"]
    assert c["answers"] == [0, 0, 0, 200, 200, 200], "each chunk resent once, then done"
    assert c["duplicates"] == 0 and c["documents_rewritten_by_a_resend"] == c["lines_sent"]
    old = run["previous_config"]["lost_answers_3_bulks"]
    assert old["write_operation"] == ["create"] and old["bulk_requests_in_90s"] > 3 * 4, (
        "the previous config's create got only 409s: resent again and again"
    )


def test_long_lines_arrive_as_one_document_with_its_trace_id(run, this):
    """Item 3: a 40,000-byte line is three partial messages from Docker's driver."""
    c = this["lines"]
    assert c["line_40000_bytes_events"] == 3
    assert c["line_40000_bytes_documents"] == 1 and c["documents_with_trace_id"] == 1
    assert c["message_lengths"] == [40000]
    assert run["previous_config"]["lines"]["line_40000_bytes_documents"] == 3
    # The last piece never came (a container killed mid-line): after flush_ms the pieces
    # that did come are re-emitted as one record through the filesystem-buffered emitter.
    cut = this["line_40000_bytes_last_piece_never_sent"]
    assert cut["pieces_sent"] == 2 and cut["documents"] == 1
    assert cut["message_lengths"] == [2 * 16 * 1024] and cut["partial_keys_left"] == [[]]


def test_identical_lines_in_one_second_are_both_kept(run, this):
    """Item 4: sub-second timestamps from the driver, nanoseconds in @timestamp and the id."""
    c = this["lines"]
    assert c["identical_lines_indexed"] == c["identical_lines_same_second_sent"] == 2
    assert all(len(ts.split(".")[1]) == len("123456789Z") for ts in c["timestamps"])
    assert run["previous_config"]["lines"]["identical_lines_indexed"] == 1


def test_compose_sends_sub_second_timestamps():
    compose = load_yaml(ROOT / "compose.yaml")
    options = compose["x-demo-logging"]["options"]
    assert options["fluentd-sub-second-precision"] == "true"


def test_health_stays_200_through_output_trouble(this):
    """Item 5: why the alerts read the output's counters, not /api/v1/health."""
    for case in ("outage_60s_connection_refused", "unavailable_60s_http_503"):
        assert this[case]["health_during"] == [200]
        assert this[case]["retries_during"] > 100 and this[case]["errors_during"] == 0


def test_a_partly_rejected_bulk_counts_as_delivered_and_logs_nothing(this):
    """Item 6: the documented limit; the template makes rejections rare instead."""
    c = this["bulk_201_400_201"]
    assert c["bulk_requests"] == 1 and c["retries_delta"] == 0 and c["errors_delta"] == 0
    assert c["proc_records_delta"] == 3 and c["error_log_lines"] == []


def test_json_lines_without_a_level_are_kept(run, this):
    """Item 7: previously dropped by the level filter."""
    assert this["lines"]["json_without_level_indexed_as"] == ["UNPARSED"]
    assert run["previous_config"]["lines"]["json_without_level_indexed_as"] == []


def test_disk_queue_hours_in_the_docs_match_the_measurement(this):
    """Item 7: bytes on disk per line, and the hours the documented queue holds."""
    disk = this["disk_queue"]
    assert disk["line_bytes"] == 411 and 500 < disk["bytes_per_line"] < 560
    es = next(o for o in load_yaml(FLUENT_BIT_CONFIG)["pipeline"]["outputs"] if o["name"] == "es")
    limit = int(str(es["storage.total_limit_size"]).removesuffix("M")) * 10**6  # M = 10^6
    used = 100 - disk["capacity_percent_left"]
    assert abs(used - 100 * disk["chunk_bytes"] / limit) < 0.01, "M is 10^6 bytes in 5.1.1"
    hours = limit / (28 * disk["bytes_per_line"]) / 3600  # the demo's measured 28 lines/s
    doc = (ROOT / "docs" / "logs-and-traces.md").read_text(encoding="utf-8")
    assert f"about {round(hours)} hours" in doc, f"docs should say about {round(hours)} hours"


def test_stop_grace_period_exceeds_the_flush_grace():
    grace = int(load_yaml(FLUENT_BIT_CONFIG)["service"]["grace"])
    period = load_yaml(ROOT / "compose.yaml")["services"]["fluent-bit"]["stop_grace_period"]
    assert period.endswith("s") and int(period[:-1]) > grace, "Docker's default is 10 s"
