"""Static checks of fluent-bit/fluent-bit.yaml: the settings issue 7 asks for, parsed, not grepped.

Fluent Bit does not run in `make test`: each test pins one property whose absence loses or
mangles log lines (or breaks the Prometheus scrape) and says why. What the pinned binary did
with this very config is in tests/fixtures/fluent-bit-5.1.1/ (test_fluent_bit_recorded.py).
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import pytest
import yaml

from tests.logs_traces.conftest import FLUENT_BIT_CONFIG, ROOT, load_json

ON = (True, "on", "true", "On", "True")
ALLOWED_ENV = {"CLUSTER_NAME", "ENVIRONMENT", "ES_PASSWORD"}


def plugins(cfg: dict[str, Any], kind: str, name: str) -> list[dict[str, Any]]:
    return [p for p in cfg["pipeline"][kind] if p["name"] == name]


def one(cfg: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    found = plugins(cfg, kind, name)
    assert len(found) == 1, f"expected exactly one {kind[:-1]} {name!r}, found {len(found)}"
    return found[0]


def as_list(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


def test_top_level_sections_are_yaml_format(fluent_bit):
    assert set(fluent_bit) <= {"env", "service", "parsers", "pipeline", "includes"}
    assert set(fluent_bit["pipeline"]) == {"inputs", "filters", "outputs"}


def test_every_variable_is_documented(fluent_bit):
    text = FLUENT_BIT_CONFIG.read_text(encoding="utf-8")
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))
    assert used == ALLOWED_ENV, f"undocumented or unused variables: {used ^ ALLOWED_ENV}"


def test_password_comes_from_the_secret_file_not_the_config(fluent_bit):
    assert fluent_bit["env"]["ES_PASSWORD"] == "file:///run/secrets/elasticsearch_password"
    es = one(fluent_bit, "outputs", "es")
    assert es["http_passwd"] == "${ES_PASSWORD}"
    assert es["http_user"] == "elastic"


def test_http_server_health_and_storage_metrics(fluent_bit):
    svc = fluent_bit["service"]
    assert svc["http_server"] in ON and svc["http_listen"] == "0.0.0.0"
    assert int(svc["http_port"]) == 2020
    assert svc["health_check"] in ON, "/api/v1/health needs health_check on"
    assert svc["storage.metrics"] in ON


def test_filesystem_buffering_on_every_input(fluent_bit):
    # compose.yaml mounts the fluent-bit-storage volume here (the root filesystem is read-only).
    assert fluent_bit["service"]["storage.path"] == "/fluent-bit/storage/"
    for inp in fluent_bit["pipeline"]["inputs"]:
        assert inp.get("storage.type") == "filesystem", f"input {inp['name']} buffers in memory"


def test_memory_bound_fits_the_container_limit(fluent_bit):
    # Up to max_chunks_up chunks of ~2 MB stay in memory, plus the backlog and the forward
    # input's buffer; compose.yaml limits Fluent Bit to 96 MB.
    svc = fluent_bit["service"]
    chunks_mb = int(svc["storage.max_chunks_up"]) * 2
    backlog_mb = int(str(svc["storage.backlog.mem_limit"]).removesuffix("M"))
    forward_mb = int(str(one(fluent_bit, "inputs", "forward")["buffer_max_size"]).removesuffix("M"))
    assert chunks_mb + backlog_mb + forward_mb <= 64


def test_retry_backoff_is_capped(fluent_bit):
    # Default cap is 2000 s: after a long outage delivery would resume only half an hour later.
    assert int(fluent_bit["service"]["scheduler.cap"]) <= 60


def test_forward_input_for_docker_fluentd_driver(fluent_bit):
    fwd = one(fluent_bit, "inputs", "forward")
    # The Docker daemon dials from the host through the published 127.0.0.1:24224.
    assert fwd["listen"] == "0.0.0.0" and int(fwd["port"]) == 24224


def test_tail_input_for_staging_hosts(fluent_bit):
    tail = one(fluent_bit, "inputs", "tail")
    assert tail["path"].startswith("/var/log/apollonia/")
    assert tail["tag"].startswith("apollonia.")
    assert tail["db"].startswith(fluent_bit["service"]["storage.path"]), "positions lost on restart"
    parser_names = {p["name"] for p in fluent_bit["parsers"]}
    assert tail["parser"] in parser_names


def test_json_body_is_parsed_before_level_filter(fluent_bit):
    filters = fluent_bit["pipeline"]["filters"]
    names = [f["name"] for f in filters]
    parser = one(fluent_bit, "filters", "parser")
    assert parser["key_name"] == "log", "Docker's fluentd driver puts the line in 'log'"
    assert parser["reserve_data"] in ON, "container_name etc. would be dropped"
    formats = {p["name"]: p["format"] for p in fluent_bit["parsers"]}
    assert formats[parser["parser"]] == "json"
    assert names.index("parser") < names.index("grep") < names.index("log_to_metrics")


def test_cluster_name_and_environment_added_from_env(fluent_bit):
    adds = [a for f in plugins(fluent_bit, "filters", "modify") for a in as_list(f.get("add", []))]
    assert "cluster_name ${CLUSTER_NAME}" in adds
    assert "environment ${ENVIRONMENT}" in adds


def grep_regex(cfg: dict[str, Any]) -> re.Pattern[str]:
    key, _, pattern = one(cfg, "filters", "grep")["regex"].partition(" ")
    assert key == "level"
    return re.compile(pattern)


@pytest.mark.parametrize("level", ["ERROR", "WARNING", "WARN", "INFO", "CRITICAL", "UNPARSED"])
def test_grep_keeps(fluent_bit, level):
    assert grep_regex(fluent_bit).search(level)


@pytest.mark.parametrize("level", ["DEBUG", "info", "NOTSET", "", "INFORMATIONAL"])
def test_grep_drops(fluent_bit, level):
    assert not grep_regex(fluent_bit).search(level)


def test_unparsed_lines_get_a_level_before_grep(fluent_bit):
    filters = fluent_bit["pipeline"]["filters"]
    names = [f["name"] for f in filters]
    rename = next(
        i
        for i, f in enumerate(filters)
        if f["name"] == "modify" and "Key_does_not_exist level" in as_list(f.get("condition", []))
    )
    assert filters[rename]["rename"] == "log message"
    # Unconditional Add (sets missing keys only): a non-JSON line and a JSON line without a
    # "level" key both get UNPARSED, so the grep below keeps them (main dropped the latter).
    add = next(
        i
        for i, f in enumerate(filters)
        if f["name"] == "modify" and "level UNPARSED" in as_list(f.get("add", []))
    )
    assert "condition" not in filters[add]
    assert rename < add < names.index("grep")


def test_partial_messages_are_joined_before_parsing(fluent_bit):
    """Docker splits lines over 16 KiB (moby daemon/logger/copier.go defaultBufSize) into
    partial messages; they must be joined before the parser reads "log", and by the first
    filter: records re-emitted by its emitter run every filter after it."""
    first = fluent_bit["pipeline"]["filters"][0]
    assert first["name"] == "multiline" and first["mode"] == "partial_message"
    assert first["multiline.key_content"] == "log"
    assert first["emitter_storage.type"] == "filesystem", "re-emitted records would be in memory"


def test_replayed_bulk_is_idempotent_and_succeeds(fluent_bit):
    """generate_id + index: a bulk resent after a lost answer overwrites the same documents
    (200); with the default create it gets only 409s, a failure to 5.1.1, forever."""
    es = one(fluent_bit, "outputs", "es")
    assert es["generate_id"] in ON
    assert es["write_operation"] == "index"
    # The hash covers @timestamp: with nanoseconds two identical lines get two ids.
    assert es["time_key_nanos"] in ON


def test_elasticsearch_output_for_es8_and_later(fluent_bit):
    es = one(fluent_bit, "outputs", "es")
    assert "type" not in {k.lower() for k in es}, "Type _doc is rejected by Elasticsearch 8+"
    assert es["suppress_type_name"] in ON
    assert es["logstash_format"] in ON and es["logstash_prefix"] == "apollonia"
    assert es["logstash_dateformat"] == "%Y.%m.%d"
    assert es["time_key"] == "@timestamp"
    assert es["generate_id"] in ON, "retried bulk requests would duplicate lines"
    assert es["host"] == "elasticsearch" and int(es["port"]) == 9200


def test_no_loss_retry_and_bounded_disk_queue(fluent_bit):
    es = one(fluent_bit, "outputs", "es")
    assert es["retry_limit"] == "no_limits", "default retry_limit 1 drops a chunk after one retry"
    size = re.fullmatch(r"(\d+)([KMG])", str(es["storage.total_limit_size"]))
    assert size, "storage.total_limit_size must be set, else the disk queue is unbounded"
    mib = int(size[1]) * {"K": 1 / 1024, "M": 1, "G": 1024}[size[2]]
    assert mib >= 256, "too small to ride out an outage of several minutes"


def test_index_prefix_matches_the_index_template(fluent_bit):
    es = one(fluent_bit, "outputs", "es")
    patterns = load_json(ROOT / "elasticsearch" / "index-template.json")["index_patterns"]
    assert any(fnmatch.fnmatchcase(f"{es['logstash_prefix']}-2026.11.29", p) for p in patterns)


def test_outputs_receive_what_inputs_tag(fluent_bit):
    es_match = one(fluent_bit, "outputs", "es")["match"]
    # compose: tag "{{.Name}}", prefixed by the forward input.
    docker_tag = one(fluent_bit, "inputs", "forward")["tag_prefix"] + "apollonia-api-1"
    tail_tag = one(fluent_bit, "inputs", "tail")["tag"].replace("*", "var.log.apollonia.api.log")
    for tag in (docker_tag, tail_tag):
        assert fnmatch.fnmatchcase(tag, es_match), f"{tag} never reaches Elasticsearch"
        for f in fluent_bit["pipeline"]["filters"]:
            assert fnmatch.fnmatchcase(tag, f["match"]), f"filter {f['name']} skips {tag}"


def test_log_counts_exported_for_prometheus(fluent_bit):
    l2m = one(fluent_bit, "filters", "log_to_metrics")
    prom = one(fluent_bit, "outputs", "prometheus_exporter")
    assert l2m["metric_mode"] == "counter"
    assert prom["match"] == l2m["tag"], "log-derived metrics never reach the exporter"
    assert not fnmatch.fnmatchcase(l2m["tag"], one(fluent_bit, "outputs", "es")["match"])
    assert prom["host"] == "0.0.0.0" and int(prom["port"]) == 2021
    labels = dict(item.split(" ", 1) for item in as_list(l2m["add_label"]))
    assert labels == {"log_service": "$service", "level": "$level"}
    # Target labels are Prometheus' business (contract): an app label named like one would be
    # renamed exported_<name> on scrape.
    assert not set(labels) & {"service", "env", "job", "instance"}


def inventory_targets(job: str) -> list[str]:
    path = ROOT / "prometheus" / "targets" / "compose" / f"{job}.yml"
    with path.open(encoding="utf-8") as fh:
        return [t for group in yaml.safe_load(fh) for t in group["targets"]]


def test_prometheus_inventory_scrapes_both_fluent_bit_ports(fluent_bit):
    port = int(fluent_bit["service"]["http_port"])
    exporter = int(one(fluent_bit, "outputs", "prometheus_exporter")["port"])
    assert inventory_targets("fluent-bit") == [f"fluent-bit:{port}"]
    assert inventory_targets("fluent-bit-logs") == [f"fluent-bit:{exporter}"]
