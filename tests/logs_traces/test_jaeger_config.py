"""Static checks of jaeger/config.yaml (Jaeger v2.20.0, an OpenTelemetry Collector distribution).

Jaeger cannot be built here (its go.mod needs Go 1.26), so the facts come from its v2.20.0
source, cited per test:
* internal/storage/elasticsearch/config/config.go and config_rotation.go: the mapstructure
  keys below, which are deprecated, and the validation that rejects old and new forms together;
* create_mappings is a current key (CreateIndexTemplates, default true in
  internal/storage/v1/elasticsearch/options.go DefaultConfig), not a deprecated one;
* auth.basic.password_file is read once at start unless reload_interval is set;
* the image is built on Alpine (scripts/build/docker/base/Dockerfile: alpine 3.24.1), so
  busybox wget is there; the bundled `jaeger` receiver (thrift, gRPC) still exists
  (cmd/jaeger/internal/components.go): the workload simply speaks OTLP only.
"""

from __future__ import annotations

import fnmatch
import re
from datetime import timedelta

import yaml

from tests.logs_traces.conftest import ES_DIR, ROOT, load_json, load_yaml

ES_BACKEND_KEYS = {
    "server_urls",
    "remote_read_clusters",
    "auth",
    "tls",
    "sniffing",
    "disable_health_check",
    "health_check_timeout_startup",
    "send_get_body_as",
    "query_timeout",
    "http_compression",
    "custom_headers",
    "bulk_processing",
    "version",
    "log_level",
    "indices",
    "create_mappings",
    "max_doc_count",
    "max_span_age",
    "max_trace_duration",
    "service_cache_ttl",
    "adaptive_sampling_lookback",
    "tags_as_fields",
    # deprecated (config_rotation.go legacyRotationFlagsList):
    "use_aliases",
    "use_ilm",
    "span_read_alias",
    "span_write_alias",
    "service_read_alias",
    "service_write_alias",
}
DEPRECATED_ES_KEYS = {
    "use_aliases", "use_ilm", "span_read_alias", "span_write_alias", "service_read_alias",
    "service_write_alias",
}
INDEX_OPTION_KEYS = {"priority", "date_layout", "shards", "replicas", "rollover_frequency",
                     "rotation"}
# "Deprecated: superseded by rotation.periodic.date_layout / .rollover_frequency"; together with
# a rotation section they are a start-up error (validateRotationConfig).
DEPRECATED_INDEX_KEYS = {"date_layout", "rollover_frequency"}
ROTATION_KEYS = {"periodic", "manual_rollover", "auto_rollover", "data_stream"}
PERIODIC_KEYS = {"date_layout", "rollover_frequency"}
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
    assert traces["processors"] == ["memory_limiter", "batch"]
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
    # The bundled jaeger receiver (thrift) still exists; the workload exports OTLP only.
    assert set(protocols) == {"grpc", "http"}


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
    # Jaeger installs its index templates (the current key, not deprecated).
    assert es["create_mappings"] is True
    for kind in ("spans", "services", "dependencies", "sampling"):
        options = es["indices"][kind]
        assert set(options) <= INDEX_OPTION_KEYS, f"indices.{kind}: {set(options)}"
        assert not set(options) & DEPRECATED_INDEX_KEYS, (
            f"indices.{kind}: date_layout/rollover_frequency moved under rotation.periodic"
        )
        # Single node: a replica can never be assigned and the cluster would stay yellow.
        assert options["replicas"] == 0 and options["shards"] == 1
        rotation = options["rotation"]
        assert set(rotation) <= ROTATION_KEYS and len(rotation) == 1, "exactly one strategy"
        assert set(rotation["periodic"]) <= PERIODIC_KEYS
        # Daily indices: the retention service and max_span_age count in days.
        assert rotation["periodic"] == {"date_layout": "2006-01-02", "rollover_frequency": "day"}


def test_memory_is_bounded_inside_the_container_limit(jaeger):
    """A memory_limiter first in the pipeline and GOMEMLIMIT, both under the limit."""
    traces = jaeger["service"]["pipelines"]["traces"]
    assert traces["processors"][0] == "memory_limiter"
    limiter = jaeger["processors"]["memory_limiter"]
    compose = load_yaml(ROOT / "compose.yaml")["services"]["jaeger"]
    limit_mib = int(compose["deploy"]["resources"]["limits"]["memory"].removesuffix("m"))
    gomemlimit = int(compose["environment"]["GOMEMLIMIT"].removesuffix("MiB"))
    assert limiter["limit_mib"] < gomemlimit < limit_mib
    assert 0 < limiter["spike_limit_mib"] < limiter["limit_mib"]


def test_query_service_does_not_trace_itself(jaeger):
    # jaegerquery/factory.go sets EnableTracing = true by default.
    assert jaeger["extensions"]["jaeger_query"]["enable_tracing"] is False


def test_metric_names_do_not_depend_on_collector_defaults(jaeger):
    """Collector v0.155 defaults these to true (no _total, no unit suffix, no scope labels):
    the names in tests/fixtures/jaeger-2.20.0/. Pinned so a default change cannot rename them."""
    prom = jaeger["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"][
        "prometheus"]
    assert prom["without_type_suffix"] is True
    assert prom["without_units"] is True
    assert prom["without_scope_info"] is True


def test_password_from_secret_file_only(jaeger):
    basic = es_backend(jaeger)["auth"]["basic"]
    # Read once at start (reload_interval unset = 0): docs say to restart after a change.
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
