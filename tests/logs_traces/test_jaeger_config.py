"""Static checks of jaeger/config.yaml (Jaeger v2, an OpenTelemetry Collector distribution).

Key sets below are taken from Jaeger's Elasticsearch storage configuration (config.go,
mapstructure tags) so that a typo fails here instead of at container start.
"""

from __future__ import annotations

import fnmatch
import re
from datetime import timedelta

import yaml

from tests.logs_traces.conftest import ES_DIR, ROOT, load_json

ES_BACKEND_KEYS = {
    "server_urls",
    "remote_read_clusters",
    "auth",
    "tls",
    "sniffing",
    "disable_health_check",
    "send_get_body_as",
    "query_timeout",
    "http_compression",
    "bulk_processing",
    "version",
    "log_level",
    "indices",
    "create_mappings",
    "max_doc_count",
    "max_span_age",
    "service_cache_ttl",
    "adaptive_sampling_lookback",
    "tags_as_fields",
}
DEPRECATED_ES_KEYS = {"use_aliases", "use_ilm", "span_read_alias", "span_write_alias"}
INDEX_OPTION_KEYS = {"priority", "date_layout", "shards", "replicas", "rollover_frequency"}
# Built-in Elasticsearch index templates that create data streams for matching names.
BUILTIN_DATA_STREAM_PATTERNS = ("logs-*-*", "metrics-*-*", "traces-*-*", "synthetics-*-*")


def es_backend(jaeger) -> dict:
    storage = jaeger["extensions"]["jaeger_query"]["storage"]["traces"]
    return jaeger["extensions"]["jaeger_storage"]["backends"][storage]["elasticsearch"]


def parse_duration(text: str) -> timedelta:
    parts = re.findall(r"(\d+)(h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"unsupported duration {text!r}"
    unit = {"h": "hours", "m": "minutes", "s": "seconds"}
    return sum((timedelta(**{unit[u]: int(n)}) for n, u in parts), timedelta())


def test_pipeline_otlp_to_storage(jaeger):
    svc = jaeger["service"]
    traces = svc["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"]
    assert "batch" in traces["processors"]
    assert traces["exporters"] == ["jaeger_storage_exporter"]
    for kind in ("receivers", "processors", "exporters"):
        for name in traces[kind]:
            assert name in jaeger[kind], f"{kind[:-1]} {name} used but not configured"
    assert set(svc["extensions"]) == {"jaeger_storage", "jaeger_query", "healthcheckv2"}
    assert set(svc["extensions"]) <= set(jaeger["extensions"])


def test_receivers_listen_on_all_interfaces(jaeger):
    # Without an endpoint the collector binds localhost only: unreachable from other containers.
    protocols = jaeger["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    assert set(protocols) == {"grpc", "http"}, "thrift/agent protocols are gone upstream"


def test_health_query_and_metrics_endpoints(jaeger):
    ext = jaeger["extensions"]
    assert ext["healthcheckv2"]["use_v2"] is True
    assert ext["healthcheckv2"]["http"]["endpoint"] == "0.0.0.0:13133"
    assert ext["jaeger_query"]["http"]["endpoint"] == "0.0.0.0:16686"
    readers = jaeger["service"]["telemetry"]["metrics"]["readers"]
    prom = readers[0]["pull"]["exporter"]["prometheus"]
    assert (prom["host"], prom["port"]) == ("0.0.0.0", 8888)
    with (ROOT / "prometheus" / "targets" / "compose" / "jaeger.yml").open() as fh:
        targets = [t for group in yaml.safe_load(fh) for t in group["targets"]]
    assert targets == ["jaeger:8888"]


def test_exporter_and_query_use_the_same_elasticsearch_backend(jaeger):
    storage = jaeger["extensions"]["jaeger_query"]["storage"]["traces"]
    assert jaeger["exporters"]["jaeger_storage_exporter"]["trace_storage"] == storage
    backends = jaeger["extensions"]["jaeger_storage"]["backends"]
    assert set(backends[storage]) == {"elasticsearch"}


def test_elasticsearch_keys_are_known_and_current(jaeger):
    es = es_backend(jaeger)
    assert set(es) <= ES_BACKEND_KEYS, f"unknown keys: {set(es) - ES_BACKEND_KEYS}"
    assert not set(es) & DEPRECATED_ES_KEYS
    for kind in ("spans", "services", "dependencies", "sampling"):
        options = es["indices"][kind]
        assert set(options) <= INDEX_OPTION_KEYS, f"indices.{kind}: {set(options)}"
        # Single node: a replica can never be assigned and the cluster would stay yellow.
        assert options["replicas"] == 0 and options["shards"] == 1
        assert options["date_layout"] == "2006-01-02" and options["rollover_frequency"] == "day"


def test_password_from_secret_file_only(jaeger):
    basic = es_backend(jaeger)["auth"]["basic"]
    assert basic == {"username": "elastic", "password_file": "/run/secrets/elasticsearch_password"}
    assert es_backend(jaeger)["server_urls"] == ["http://elasticsearch:9200"]


def test_index_prefix_stays_out_of_other_index_patterns(jaeger):
    prefix = es_backend(jaeger)["indices"]["index_prefix"]
    span_index = f"{prefix}-jaeger-span-2026-11-29"
    log_patterns = load_json(ES_DIR / "index-template.json")["index_patterns"]
    for pattern in (*log_patterns, *BUILTIN_DATA_STREAM_PATTERNS):
        assert not fnmatch.fnmatchcase(span_index, pattern), f"{span_index} matches {pattern}"
    setup = (ES_DIR / "setup.sh").read_text(encoding="utf-8")
    assert f"TRACES_INDEX_PREFIX=${{TRACES_INDEX_PREFIX:-{prefix}}}" in setup


def test_max_span_age_matches_trace_retention(jaeger):
    age = parse_duration(es_backend(jaeger)["max_span_age"])
    policy = load_json(ES_DIR / "ilm-traces.json")["policy"]["phases"]["delete"]["min_age"]
    assert age == timedelta(days=int(policy.removesuffix("d")))
