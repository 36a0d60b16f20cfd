"""Platform dashboards: infrastructure (hosts, containers) and stack health.

These span several scrape targets, so they carry `job` and `instance` variables and
every query filters on both (the dashboard-linter's template/target job+instance rules).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from .common import (
    PROMETHEUS_UID,
    Q,
    bargauge_panel,
    datasource_var,
    env_var,
    new_dashboard,
    query_var,
    stat_panel,
    table_panel,
    ts,
)

T = 'env="$env", job=~"$job", instance=~"$instance"'

UP_MAPPING = {"0": ("DOWN", "red"), "1": ("UP", "green")}


def _job_instance_vars(job_query: str, job_help: str) -> list[db.QueryVariable]:
    return [
        query_var("job", "Job", job_query, multi=True, include_all=True,
                  description=job_help),
        query_var("instance", "Instance",
                  'label_values(up{env="$env", job=~"$job"}, instance)',
                  multi=True, include_all=True,
                  description="Scrape target address of the selected jobs."),
    ]


def infrastructure() -> db.Dashboard:
    dash = new_dashboard(
        "platform-infrastructure",
        "Infrastructure",
        "Are the hosts and containers healthy? CPU, memory, disk and network from "
        "node-exporter; per-container usage from cAdvisor.",
        ["infrastructure"],
        [
            datasource_var("datasource", "Data source", "prometheus", PROMETHEUS_UID,
                           "Prometheus"),
            env_var(),
            *_job_instance_vars(
                'label_values(up{env="$env", job=~"node|cadvisor"}, job)',
                "node (node-exporter, hosts) and cadvisor (containers).",
            ),
        ],
    )
    fs = f'{T}, fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs|fuse.*"'
    return (
        dash.with_row(db.Row("Hosts"))
        .with_panel(stat_panel(
            "Uptime",
            "Time since each host booted (node_boot_time_seconds).",
            "s", [Q(f"time() - node_boot_time_seconds{{{T}}}", "{{instance}}")]))
        .with_panel(stat_panel(
            "CPU cores",
            "Logical CPUs per host (idle-mode series of node_cpu_seconds_total, one per CPU).",
            "short",
            [Q(f'count by (instance) (rate(node_cpu_seconds_total{{{T}, mode="idle"}}'
               f"[$__rate_interval]))", "{{instance}}")]))
        .with_panel(stat_panel(
            "Memory total",
            "Physical memory per host (node_memory_MemTotal_bytes).",
            "bytes", [Q(f"node_memory_MemTotal_bytes{{{T}}}", "{{instance}}")]))
        .with_panel(stat_panel(
            "Scrape targets down",
            "Node and cAdvisor targets Prometheus cannot scrape (up == 0).",
            "short", [Q(f"count(up{{{T}}} == 0) or vector(0)")],
            thresholds=((None, "green"), (1, "red"))))
        .with_panel(ts(
            "CPU busy",
            "Share of CPU time not idle, averaged over each host's CPUs.",
            "percentunit",
            [Q(f'1 - avg by (instance) (rate(node_cpu_seconds_total{{{T}, mode="idle"}}'
               f"[$__rate_interval]))", "{{instance}}")],
            min_val=0, max_val=1, thresholds=((None, "green"), (0.9, "red"))))
        .with_panel(ts(
            "Memory used",
            "Share of memory not available to new processes: 1 - MemAvailable / MemTotal.",
            "percentunit",
            [Q(f"1 - node_memory_MemAvailable_bytes{{{T}}} / node_memory_MemTotal_bytes{{{T}}}",
               "{{instance}}")],
            min_val=0, max_val=1, thresholds=((None, "green"), (0.9, "red"))))
        .with_panel(ts(
            "Load average",
            "1-minute load average per host (runnable and uninterruptible tasks).",
            "short", [Q(f"node_load1{{{T}}}", "{{instance}}")], span=8))
        .with_panel(bargauge_panel(
            "Disk space used",
            "Share of each real filesystem in use (pseudo and overlay filesystems excluded).",
            "percentunit",
            [Q(f"1 - node_filesystem_avail_bytes{{{fs}}} / node_filesystem_size_bytes{{{fs}}}",
               "{{instance}} {{mountpoint}}")],
            span=8, max_val=1, thresholds=((None, "green"), (0.8, "orange"), (0.9, "red"))))
        .with_panel(ts(
            "Network traffic",
            "Bytes per second received and sent on non-loopback interfaces.",
            "Bps",
            [
                Q(f'sum by (instance) (rate(node_network_receive_bytes_total{{{T}, '
                  f'device!="lo"}}[$__rate_interval]))', "{{instance}} in"),
                Q(f'sum by (instance) (rate(node_network_transmit_bytes_total{{{T}, '
                  f'device!="lo"}}[$__rate_interval]))', "{{instance}} out"),
            ],
            span=8))
        .with_panel(ts(
            "Disk I/O",
            "Bytes per second read from and written to block devices.",
            "Bps",
            [
                Q(f"sum by (instance) (rate(node_disk_read_bytes_total{{{T}}}"
                  f"[$__rate_interval]))", "{{instance}} read"),
                Q(f"sum by (instance) (rate(node_disk_written_bytes_total{{{T}}}"
                  f"[$__rate_interval]))", "{{instance}} write"),
            ],
            span=24))
        .with_row(db.Row("Containers"))
        .with_panel(ts(
            "Container CPU",
            "CPU cores used per container (cAdvisor).",
            "short",
            [Q(f'sum by (name) (rate(container_cpu_usage_seconds_total{{{T}, name!=""}}'
               f"[$__rate_interval]))", "{{name}}")]))
        .with_panel(ts(
            "Container memory",
            "Working-set memory per container, what the kernel counts against a limit.",
            "bytes",
            [Q(f'sum by (name) (container_memory_working_set_bytes{{{T}, name!=""}})',
               "{{name}}")]))
        .with_panel(ts(
            "Container network received",
            "Bytes per second received per container.",
            "Bps",
            [Q(f'sum by (name) (rate(container_network_receive_bytes_total{{{T}, name!=""}}'
               f"[$__rate_interval]))", "{{name}}")]))
        .with_panel(bargauge_panel(
            "Container memory vs limit",
            "Working set as a share of the container's memory limit (containers without "
            "a limit are left out).",
            "percentunit",
            [Q(f'sum by (name) (container_memory_working_set_bytes{{{T}, name!=""}}) / '
               f'(sum by (name) (container_spec_memory_limit_bytes{{{T}, name!=""}}) > 0)',
               "{{name}}")],
            max_val=1, thresholds=((None, "green"), (0.8, "orange"), (0.9, "red"))))
    )


def stack_health() -> db.Dashboard:
    dash = new_dashboard(
        "platform-stack-health",
        "Observability Stack Health",
        "Is the monitoring itself working? Scrape targets, Prometheus, Alertmanager, "
        "Fluent Bit, Elasticsearch, Jaeger and the blackbox probes.",
        ["meta-monitoring"],
        [
            datasource_var("datasource", "Data source", "prometheus", PROMETHEUS_UID,
                           "Prometheus"),
            env_var(),
            *_job_instance_vars(
                'label_values(up{env="$env"}, job)', "Scrape jobs of prometheus.yml."),
        ],
    )
    return (
        dash.with_row(db.Row("Targets and alerts"))
        .with_panel(stat_panel(
            "Targets down",
            "Scrape targets Prometheus cannot reach (up == 0).",
            "short", [Q(f"count(up{{{T}}} == 0) or vector(0)")],
            thresholds=((None, "green"), (1, "red"))))
        .with_panel(stat_panel(
            "Config reloads OK",
            "Whether Prometheus and Alertmanager loaded their latest configuration "
            "(0 = last reload failed: the old config is still running).",
            "short",
            [
                Q(f"min(prometheus_config_last_reload_successful{{{T}}})", "Prometheus"),
                Q(f"min(alertmanager_config_last_reload_successful{{{T}}})", "Alertmanager"),
            ],
            thresholds=((None, "red"), (1, "green")),
            mappings={"0": ("FAILED", "red"), "1": ("OK", "green")}))
        .with_panel(stat_panel(
            "Active alerts",
            "Alerts currently firing in Alertmanager (not silenced or inhibited).",
            "short", [Q(f'sum(alertmanager_alerts{{{T}, state="active"}})')]))
        .with_panel(stat_panel(
            "Probe success",
            "Blackbox readiness probes that succeed, out of all probes.",
            "percentunit",
            [Q(f"avg(probe_success{{{T}}})")],
            thresholds=((None, "red"), (1, "green"))))
        .with_panel(table_panel(
            "Scrape targets",
            "Every target of the selected jobs, its labels and its state (UP when the last "
            "scrape worked).",
            "none",
            [Q(f"up{{{T}}}", instant=True)],
            span=16, mappings=UP_MAPPING))
        .with_panel(ts(
            "Scrape duration",
            "Time each scrape takes; close to scrape_timeout (10s) means targets at risk.",
            "s",
            [Q(f"scrape_duration_seconds{{{T}}}", "{{job}} {{instance}}")], span=8))
        .with_panel(table_panel(
            "Firing alerts",
            "Alerts firing now, with their labels (the ALERTS series of Prometheus). "
            "Watchdog always fires: if it is missing, alerting itself is broken.",
            "none",
            [Q('ALERTS{alertstate="firing"}')],
            span=24, height=6))
        .with_row(db.Row("Prometheus"))
        .with_panel(ts(
            "Samples ingested",
            "Samples appended to the head block per second.",
            "cps",
            [Q(f"sum by (instance) (rate(prometheus_tsdb_head_samples_appended_total{{{T}}}"
               f"[$__rate_interval]))", "{{instance}}")], span=8))
        .with_panel(ts(
            "Head series",
            "Active series in memory; a sudden jump points at a label-cardinality problem.",
            "short",
            [Q(f"prometheus_tsdb_head_series{{{T}}}", "{{instance}}")], span=8))
        .with_panel(ts(
            "Rule evaluation failures",
            "Rule evaluations that failed per second; any non-zero value means alerts or "
            "recorded series are missing.",
            "ops",
            [Q(f"sum by (rule_group) (rate(prometheus_rule_evaluation_failures_total{{{T}}}"
               f"[$__rate_interval]))", "{{rule_group}}")], span=8))
        .with_panel(ts(
            "Alert delivery to Alertmanager",
            "Alerts Prometheus failed to send or dropped per second, and its send queue.",
            "short",
            [
                Q(f"sum(rate(prometheus_notifications_errors_total{{{T}}}[$__rate_interval]))",
                  "errors/s"),
                Q(f"sum(rate(prometheus_notifications_dropped_total{{{T}}}[$__rate_interval]))",
                  "dropped/s"),
                Q(f"sum(prometheus_notifications_queue_length{{{T}}})", "queue length"),
            ]))
        .with_panel(ts(
            "Rule group duration",
            "Last evaluation time of each rule group; above the evaluation interval (15s) "
            "groups skip iterations.",
            "s",
            [Q(f"max by (rule_group) (prometheus_rule_group_last_duration_seconds{{{T}}})",
               "{{rule_group}}")]))
        .with_row(db.Row("Alertmanager"))
        .with_panel(ts(
            "Notifications by integration",
            "Notifications sent and failed per second by receiver integration (webhook, "
            "email, ...).",
            "ops",
            [
                Q(f"sum by (integration) (rate(alertmanager_notifications_total{{{T}}}"
                  f"[$__rate_interval]))", "{{integration}} sent"),
                Q(f"sum by (integration) (rate(alertmanager_notifications_failed_total{{{T}}}"
                  f"[$__rate_interval]))", "{{integration}} failed"),
            ]))
        .with_panel(ts(
            "Alerts and silences",
            "Alerts by state and active silences in Alertmanager.",
            "short",
            [
                Q(f"sum by (state) (alertmanager_alerts{{{T}}})", "alerts {{state}}"),
                Q(f'sum(alertmanager_silences{{{T}, state="active"}})', "active silences"),
            ]))
        .with_row(db.Row("Logs pipeline: Fluent Bit and Elasticsearch"))
        .with_panel(ts(
            "Fluent Bit records",
            "Records read by each input and delivered by each output per second.",
            "cps",
            [
                Q(f"sum by (name) (rate(fluentbit_input_records_total{{{T}}}"
                  f"[$__rate_interval]))", "in {{name}}"),
                Q(f"sum by (name) (rate(fluentbit_output_proc_records_total{{{T}}}"
                  f"[$__rate_interval]))", "out {{name}}"),
            ], span=8))
        .with_panel(ts(
            "Fluent Bit delivery problems",
            "Retries per second (sustained for 10 minutes: FluentBitRetriesSustained; "
            "Fluent Bit's health stays OK meanwhile) and dropped records (lost logs).",
            "cps",
            [
                Q(f"sum by (name) (rate(fluentbit_output_retries_total{{{T}}}"
                  f"[$__rate_interval]))", "retries {{name}}"),
                Q(f"sum by (name) (rate(fluentbit_output_dropped_records_total{{{T}}}"
                  f"[$__rate_interval]))", "dropped {{name}}"),
            ], span=8))
        .with_panel(ts(
            "Fluent Bit disk queue free",
            "Share of the Elasticsearch output's disk queue (storage.total_limit_size) still "
            "free; below 50% FluentBitDiskQueueFilling warns, at 0% the oldest lines are "
            "dropped.",
            "percent",
            [Q(f"min by (name) (fluentbit_output_chunk_available_capacity_percent{{{T}, "
               f'name="es.0"}})', "free {{name}}")],
            span=8, min_val=0, max_val=100,
            thresholds=((None, "red"), (10, "orange"), (50, "green"))))
        .with_panel(ts(
            "Fluent Bit chunks waiting on disk",
            "Buffered chunks on disk not loaded in memory: 0 while Elasticsearch keeps up; "
            "above 0 for 30 minutes fires FluentBitBacklogNotDraining.",
            "short",
            [Q(f"sum by (instance) (fluentbit_storage_fs_chunks_down{{{T}}})", "{{instance}}")],
            span=8, min_val=0))
        .with_panel(stat_panel(
            "Elasticsearch cluster status",
            "Cluster health from the exporter: green, yellow (replicas unassigned: normal "
            "on a single node whose indices ask for replicas) or red (data unavailable).",
            "none",
            [Q(f'max(elasticsearch_cluster_health_status{{{T}, color="red"}}) * 2 + '
               f'max(elasticsearch_cluster_health_status{{{T}, color="yellow"}})')],
            span=8, thresholds=((None, "green"), (1, "orange"), (2, "red")),
            mappings={"0": ("green", "green"), "1": ("yellow", "orange"),
                      "2": ("red", "red")}))
        .with_panel(ts(
            "Elasticsearch indexing rate",
            "Documents indexed per second, summed over nodes.",
            "cps",
            [Q(f"sum(rate(elasticsearch_indices_indexing_index_total{{{T}}}"
               f"[$__rate_interval]))", "indexed/s")], span=8))
        .with_panel(ts(
            "Elasticsearch JVM heap used",
            "Heap used as a share of the maximum heap per node; sustained values above 85% "
            "precede long GC pauses.",
            "percentunit",
            [Q(f'sum by (name) (elasticsearch_jvm_memory_used_bytes{{{T}, area="heap"}}) / '
               f'sum by (name) (elasticsearch_jvm_memory_max_bytes{{{T}, area="heap"}})',
               "{{name}}")],
            span=8, min_val=0, max_val=1, thresholds=((None, "green"), (0.85, "red"))))
        .with_panel(ts(
            "Elasticsearch disk free",
            "Free space on each node's data path; watermarks block writes when it runs low.",
            "bytes",
            [Q(f"sum by (name) (elasticsearch_filesystem_data_available_bytes{{{T}}})",
               "{{name}}")], span=8))
        .with_row(db.Row("Traces pipeline: Jaeger"))
        .with_panel(ts(
            "Spans received",
            "Spans accepted and refused per second by Jaeger's OTLP receivers.",
            "cps",
            [
                Q(f"sum by (receiver) (rate(otelcol_receiver_accepted_spans{{{T}}}"
                  f"[$__rate_interval]))", "accepted {{receiver}}"),
                Q(f"sum by (receiver) (rate(otelcol_receiver_refused_spans{{{T}}}"
                  f"[$__rate_interval]))", "refused {{receiver}}"),
            ]))
        .with_panel(ts(
            "Spans stored",
            "Documents (spans and services) Jaeger's Elasticsearch bulk indexer stored and "
            "failed to store per second. The storage exporter's own sent/failed counts only "
            "say a span was queued for it (alert JaegerStorageWriteErrors).",
            "cps",
            [
                Q(f"sum by (name) (rate(jaeger_storage_bulk_index_inserts{{{T}}}"
                  f"[$__rate_interval]))", "stored {{name}}"),
                Q(f"sum by (name) (rate(jaeger_storage_bulk_index_errors{{{T}}}"
                  f"[$__rate_interval]))", "failed {{name}}"),
            ]))
        .with_row(db.Row("Exporters and probes"))
        .with_panel(stat_panel(
            "Exporter backends reachable",
            "Whether each exporter can reach the service it translates (an exporter can "
            "answer scrapes while its database is down): 1 = reachable. Elasticsearch: its "
            "exporter has no up metric and drops the cluster-health series while it cannot "
            "read them, so 0 means that, or that the exporter itself is not scraped.",
            "short",
            [
                Q(f"min(pg_up{{{T}}})", "postgres"),
                Q(f"min(redis_up{{{T}}})", "redis"),
                # elasticsearch_exporter removed elasticsearch_cluster_health_up in v1.7.0
                # (commit acddc58); at the pinned v1.9.0, collector/cluster_health.go emits
                # nothing when _cluster/health fails, so the node count is present exactly
                # while Elasticsearch answers. `or` turns its absence into 0 whenever the
                # exporter's job has targets (tests/fixtures/elasticsearch-exporter-1.9.0/).
                Q(f"min(elasticsearch_cluster_health_number_of_nodes{{{T}}} > bool 0)"
                  f' or min(up{{{T}, job="elasticsearch"}}) * 0', "elasticsearch"),
            ],
            span=12, thresholds=((None, "red"), (1, "green")),
            mappings={"0": ("DOWN", "red"), "1": ("UP", "green")}))
        .with_panel(stat_panel(
            "Node collectors failing",
            "node-exporter collectors whose last run failed (node_scrape_collector_success "
            "== 0): their metrics are missing from the host panels.",
            "short",
            [Q(f"count(node_scrape_collector_success{{{T}}} == 0) or vector(0)")],
            span=12, thresholds=((None, "green"), (1, "orange"))))
        .with_panel(ts(
            "Probe duration",
            "How long each blackbox readiness probe takes, per probed URL.",
            "s",
            [Q(f"probe_duration_seconds{{{T}}}", "{{service}} {{instance}}")]))
        .with_panel(table_panel(
            "Probe results",
            "Last result of each readiness probe, one row per probed URL.",
            "none",
            [Q(f"probe_success{{{T}}}", instant=True)],
            mappings={"0": ("FAIL", "red"), "1": ("OK", "green")}))
    )
