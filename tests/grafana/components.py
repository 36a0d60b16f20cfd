"""Which component of the stack emits each metric a dashboard reads.

Used by the dashboard rules (every metric must be emitted by some component) and by the
native check (panels whose metrics all come from components the native run starts must
return data there). Sources of truth, in order:

1. recording rules          prometheus/rules/*.yml (tests.metrics_catalog.recorded_names)
2. the workload             introspected from workload/apollonia/metrics.py registries
3. Prometheus itself        series it synthesises for every target (up, scrape_*)
4. exporters and the stack  the exact names below, taken from each project's metric docs
                            and source; the native suite checks the native ones live, so a
                            wrong entry here fails there.
5. Fluent Bit, Jaeger and   what the pinned versions expose (tests/fixtures/: recorded from
   the Elasticsearch         the real Fluent Bit binary, derived from Jaeger's source and from
   exporter                  the exporter's v1.9.0 collector tests).
"""

from __future__ import annotations

from functools import cache

from prometheus_client import CollectorRegistry

from tests.metrics_catalog import EXPOSITIONS, exposition_series, recorded_names

# Components the native run starts (native/): everything else needs a Docker host.
NATIVE_COMPONENTS = frozenset({
    "api", "analyzer", "prometheus", "alertmanager", "node-exporter", "blackbox-exporter",
    "postgres-exporter", "redis-exporter", "recording-rules",
})

PROMETHEUS_SYNTHETIC = frozenset({
    "ALERTS",  # alerting rules (Watchdog always fires)
    "up", "scrape_duration_seconds", "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling", "scrape_series_added",
})

EXPORTER_METRICS: dict[str, frozenset[str]] = {
    "node-exporter": frozenset({
        "node_boot_time_seconds", "node_cpu_seconds_total", "node_memory_MemTotal_bytes",
        "node_memory_MemAvailable_bytes", "node_load1", "node_load5", "node_load15",
        "node_filesystem_avail_bytes", "node_filesystem_size_bytes",
        "node_network_receive_bytes_total", "node_network_transmit_bytes_total",
        "node_disk_read_bytes_total", "node_disk_written_bytes_total", "node_uname_info",
        "node_scrape_collector_success",
    }),
    "blackbox-exporter": frozenset({
        "probe_success", "probe_duration_seconds", "probe_http_status_code",
    }),
    "prometheus": frozenset({
        "prometheus_config_last_reload_successful", "prometheus_tsdb_head_series",
        "prometheus_tsdb_head_samples_appended_total",
        "prometheus_rule_evaluation_failures_total",
        "prometheus_rule_group_last_duration_seconds",
        "prometheus_notifications_errors_total", "prometheus_notifications_dropped_total",
        "prometheus_notifications_queue_length",
    }),
    "alertmanager": frozenset({
        "alertmanager_config_last_reload_successful", "alertmanager_alerts",
        "alertmanager_silences", "alertmanager_notifications_total",
        "alertmanager_notifications_failed_total",
    }),
    # cAdvisor: https://github.com/google/cadvisor/blob/master/docs/storage/prometheus.md
    "cadvisor": frozenset({
        "container_cpu_usage_seconds_total", "container_memory_working_set_bytes",
        "container_network_receive_bytes_total", "container_network_transmit_bytes_total",
        "container_spec_memory_limit_bytes",
    }),
    # prometheus-community/postgres_exporter and oliver006/redis_exporter.
    "postgres-exporter": frozenset({"pg_up"}),
    "redis-exporter": frozenset({"redis_up"}),
}


def _family_samples(registry: CollectorRegistry) -> set[str]:
    """Sample names a registry can expose, whether or not a child was created yet."""
    names: set[str] = set()
    for family in registry.collect():
        if family.type == "histogram":
            names |= {f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"}
        elif family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "summary":
            names |= {family.name, f"{family.name}_sum", f"{family.name}_count"}
        else:
            names.add(family.name)
        names |= {s.name for s in family.samples}
    return names


@cache
def workload_metrics() -> dict[str, frozenset[str]]:
    """Metric names of the api and the analyzer, from the workload's own registries."""
    from apollonia import metrics  # workload package (pip install -e .)

    out = {}
    for component, cls in (("api", metrics.ApiMetrics), ("analyzer", metrics.AnalyzerMetrics)):
        registry = metrics.new_registry()
        cls(registry)
        out[component] = frozenset(_family_samples(registry))
    return out


@cache
def workload_gauges() -> frozenset[str]:
    """Workload gauges, some of which end in _total (media_files_total, queue_messages_total)."""
    from apollonia import metrics

    names: set[str] = set()
    for cls in (metrics.ApiMetrics, metrics.AnalyzerMetrics):
        registry = metrics.new_registry()
        cls(registry)
        names |= {f.name for f in registry.collect() if f.type == "gauge"}
    return frozenset(names)


@cache
def catalog() -> dict[str, frozenset[str]]:
    """Component -> metric names it emits."""
    return {
        **workload_metrics(),
        "recording-rules": frozenset(recorded_names()),
        "prometheus-scrape": PROMETHEUS_SYNTHETIC,
        **EXPORTER_METRICS,
        **{c: frozenset(exposition_series(c)) for c in EXPOSITIONS},
    }


def components_of(metric: str) -> set[str]:
    """Components emitting `metric` (empty: nothing in the stack emits it)."""
    found = {c for c, names in catalog().items() if metric in names}
    if "prometheus-scrape" in found:
        # Synthesised for every target: present whenever any native target is scraped.
        return {"prometheus"}
    return found


def needs_outside_native(metrics: set[str]) -> set[str]:
    """Components not in the native run that a query with these metrics needs."""
    missing: set[str] = set()
    for metric in metrics:
        comps = components_of(metric)
        if comps and not comps & NATIVE_COMPONENTS:
            missing |= comps
    return missing
