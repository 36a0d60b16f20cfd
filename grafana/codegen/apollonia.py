"""Application dashboards: Apollonia overview, business metrics, ML pipeline.

Panels read the recording rules of prometheus/rules/ (already aggregated by env and
service over a 5m window): every quantile comes from one, so no panel reads raw histogram
buckets over its time range (make benchmark-scale measures why: seconds per query at 40
api instances). Raw-metric queries (counter rates over a few series) use $__rate_interval.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from .common import (
    ELASTICSEARCH_UID,
    LOGS,
    PROM_IN_LOGS_DASHBOARD,
    PROMETHEUS_UID,
    Q,
    bargauge_panel,
    datasource_var,
    env_var,
    gauge_panel,
    logs_panel,
    new_dashboard,
    pie_panel,
    query_var,
    stat_panel,
    ts,
)

# Selector shared by the service-level panels of the overview.
SVC = 'env="$env", service=~"$service"'

# The analyzer is scraped every 30s (prometheus.yml): its raw-metric queries set a
# 30s min step so $__rate_interval is at least 4 x 30s.
ANALYZER_STEP = "30s"


def aq(expr: str, legend: str = "") -> Q:
    """Query on analyzer metrics."""
    return Q(expr, legend, min_step=ANALYZER_STEP)


def overview() -> db.Dashboard:
    ds = PROM_IN_LOGS_DASHBOARD
    dash = new_dashboard(
        "apollonia-overview",
        "Apollonia Overview",
        "Is Apollonia healthy right now? Traffic, latency, errors, users, the analyzer "
        "queue, the database and the cache, with the latest error logs.",
        ["overview"],
        [
            datasource_var("prometheus_datasource", "Prometheus data source", "prometheus",
                           PROMETHEUS_UID, "Prometheus"),
            datasource_var("elasticsearch_datasource", "Elasticsearch data source",
                           "elasticsearch", ELASTICSEARCH_UID, "Elasticsearch"),
            env_var(ds),
            query_var(
                "service", "Service",
                'label_values(service:http_requests:rate5m{env="$env"}, service)',
                ds=ds, multi=True, include_all=True,
                description="Application services (api, analyzer).",
            ),
        ],
    )
    dash = (
        dash.with_row(db.Row("Golden signals"))
        .with_panel(stat_panel(
            "Request rate",
            "Requests per second over the selected services (5m rate, recording rule "
            "service:http_requests:rate5m).",
            "reqps", [Q(f"sum(service:http_requests:rate5m{{{SVC}}})")], ds=ds))
        .with_panel(stat_panel(
            "Error ratio",
            "Share of requests answered with a 5xx: summed errors over summed requests "
            "(a ratio of sums, never an average of ratios). Red above 1%.",
            "percentunit",
            [Q(f"sum(service:http_requests_errors:rate5m{{{SVC}}}) / "
               f"sum(service:http_requests:rate5m{{{SVC}}})")],
            ds=ds, thresholds=((None, "green"), (0.001, "orange"), (0.01, "red")),
            decimals=2))
        .with_panel(stat_panel(
            "Worst p95 latency",
            "Highest 95th-percentile request latency among the selected services "
            "(5m window). Orange above 250 ms, red above the 500 ms SLO threshold.",
            "s",
            [Q(f"max(service:http_request_duration_seconds:p95_rate5m{{{SVC}}})")],
            ds=ds, thresholds=((None, "green"), (0.25, "orange"), (0.5, "red"))))
        .with_panel(stat_panel(
            "Active users",
            "Distinct users seen by the API in the last 5 minutes (gauge active_users, "
            "computed in the API). Summed over API replicas: a user served by two "
            "replicas counts twice.",
            "short", [Q('sum(active_users{env="$env", service="api"})')], ds=ds))
        .with_panel(ts(
            "Request rate by endpoint",
            "Requests per second by service, method and route template "
            "(service_endpoint:http_requests:rate5m).",
            "reqps",
            [Q(f"sum by (service, method, endpoint) "
               f"(service_endpoint:http_requests:rate5m{{{SVC}}})",
               "{{service}} {{method}} {{endpoint}}")],
            ds=ds))
        .with_panel(ts(
            "Latency percentiles",
            "p50, p95 and p99 request latency per service, from histogram buckets "
            "aggregated by le before the quantile (recording rules).",
            "s",
            [
                Q(f"service:http_request_duration_seconds:p50_rate5m{{{SVC}}}",
                  "{{service}} p50"),
                Q(f"service:http_request_duration_seconds:p95_rate5m{{{SVC}}}",
                  "{{service}} p95"),
                Q(f"service:http_request_duration_seconds:p99_rate5m{{{SVC}}}",
                  "{{service}} p99"),
            ],
            ds=ds, thresholds=((None, "green"), (0.5, "red"))))
        .with_panel(ts(
            "Error ratio by service",
            "5xx share of requests per service (service:http_requests_error_ratio:rate5m).",
            "percentunit",
            [Q(f"service:http_requests_error_ratio:rate5m{{{SVC}}}", "{{service}}")],
            ds=ds, min_val=0, thresholds=((None, "green"), (0.01, "red"))))
        .with_panel(ts(
            "p95 latency with trace exemplars",
            "95th-percentile latency per service (service:http_request_duration_seconds:"
            "p95_rate5m) with exemplars: each dot is a real request; click it to open its "
            "trace in Jaeger. The raw histogram selector after `or` is there only for the dots "
            "(Grafana asks Prometheus for the exemplars of every series the query selects): "
            "`@ end() < 0` evaluates it once, and it returns no series.",
            "s",
            [Q(f"service:http_request_duration_seconds:p95_rate5m{{{SVC}}} or "
               f"(http_request_duration_seconds_bucket{{{SVC}}} @ end() < 0)",
               "{{service}} p95", exemplar=True)],
            ds=ds))
        .with_panel(ts(
            "p95 latency by endpoint",
            "95th-percentile latency per route template "
            "(service_endpoint:http_request_duration_seconds:p95_rate5m).",
            "s",
            [Q(f"service_endpoint:http_request_duration_seconds:p95_rate5m{{{SVC}}}",
               "{{service}} {{endpoint}}")],
            ds=ds, span=24))
        .with_row(db.Row("Analyzer queue, database and cache"))
        .with_panel(ts(
            "Analyzer queue",
            "Messages waiting in the analyzer queue (gauge queue_messages_total reported "
            "by the API; max over replicas, which all read the same queue). A steady "
            "climb means the analyzer cannot keep up.",
            "short",
            [Q('max by (queue_name) (queue_messages_total{env="$env", '
               'queue_name="analyzer_queue"})', "{{queue_name}}")],
            ds=ds, span=8))
        .with_panel(ts(
            "Database query p95",
            "95th-percentile database query duration per service "
            "(service:database_query_duration_seconds:p95_rate5m).",
            "s",
            [Q(f"service:database_query_duration_seconds:p95_rate5m{{{SVC}}}",
               "{{service}} p95")],
            ds=ds, span=8))
        .with_panel(ts(
            "Database connections",
            "Active database connections held by the API's pool (summed over replicas).",
            "short",
            [Q(f"sum by (service) (database_connections_active{{{SVC}}})", "{{service}}")],
            ds=ds, span=8))
        .with_panel(ts(
            "Average query time by table",
            "Mean query duration per query type and table: rate of the sum over rate of "
            "the count (service_table:database_query_duration_seconds:avg_rate5m).",
            "s",
            [Q(f"service_table:database_query_duration_seconds:avg_rate5m{{{SVC}}}",
               "{{service}} {{query_type}} {{table}}")],
            ds=ds))
        .with_panel(ts(
            "Cache hit ratio",
            "Share of cache reads that were hits, from cache_operations_total "
            "(service:cache_hit_ratio:rate5m); a drop shifts load to the database.",
            "percentunit",
            [Q(f"service:cache_hit_ratio:rate5m{{{SVC}}}", "{{service}}")],
            ds=ds, min_val=0, max_val=1))
        .with_row(db.Row("Logs"))
        .with_panel(ts(
            "Log lines by level",
            "Log lines per second shipped by Fluent Bit, by emitting service and level "
            "(apollonia_log_lines_total from Fluent Bit's log_to_metrics filter). A service "
            "that serves requests but has no line here: alert ServiceStoppedLogging.",
            "cps",
            [Q('sum by (log_service, level) '
               '(rate(apollonia_log_lines_total{env="$env"}[$__rate_interval]))',
               "{{log_service}} {{level}}")],
            ds=ds, span=12, stacked=True))
        .with_panel(ts(
            "Error log ratio",
            "Share of each service's log lines that are ERROR or CRITICAL; above 5% for 10 "
            "minutes fires ServiceErrorLogRatioHigh (prometheus/rules/logs.yml).",
            "percentunit",
            [Q('sum by (log_service) (rate(apollonia_log_lines_total{env="$env", '
               'level=~"ERROR|CRITICAL"}[$__rate_interval])) / sum by (log_service) '
               '(rate(apollonia_log_lines_total{env="$env"}[$__rate_interval]))',
               "{{log_service}}")],
            ds=ds, span=12, min_val=0, max_val=1, thresholds=((None, "green"), (0.05, "red"))))
        .with_panel(logs_panel(
            "Error logs",
            "Latest ERROR lines of the Apollonia services from Elasticsearch. Expand a "
            "line and follow its trace_id link to see the request in Jaeger.",
            "level:ERROR",
            ds=LOGS))
    )
    return dash


def business() -> db.Dashboard:
    dash = new_dashboard(
        "apollonia-business",
        "Apollonia Business Metrics",
        "What is the catalog doing for its users? Files by format, uploads per hour and "
        "how long processing takes per format.",
        ["business"],
        [
            datasource_var("datasource", "Data source", "prometheus", PROMETHEUS_UID,
                           "Prometheus"),
            env_var(),
        ],
    )
    return (
        dash.with_row(db.Row("Catalog"))
        .with_panel(stat_panel(
            "Media files",
            "Files in the catalog (gauge media_files_total). Every API replica reports "
            "the same catalog, so the max per format is taken before summing.",
            "short",
            [Q('sum(max by (format) (media_files_total{env="$env"}))')], span=8))
        .with_panel(stat_panel(
            "Uploads in the last hour",
            "Uploads counted over the last hour (service:media_uploads:increase1h).",
            "short", [Q('sum(service:media_uploads:increase1h{env="$env"})')], span=8))
        .with_panel(stat_panel(
            "Processing p95",
            "95th-percentile processing time across formats and stages, from the "
            "analyzer's histogram (service:media_processing_duration_seconds:p95_rate5m).",
            "s",
            [Q('max(service:media_processing_duration_seconds:p95_rate5m{env="$env"})')],
            span=8))
        .with_panel(pie_panel(
            "Files by format",
            "Share of catalog files per format (media_files_total, max over replicas).",
            "short",
            [Q('max by (format) (media_files_total{env="$env"})', "{{format}}")]))
        .with_panel(ts(
            "Uploads per hour by format",
            "Uploads in the trailing hour, per format (format:media_uploads:increase1h).",
            "short",
            [Q('format:media_uploads:increase1h{env="$env"}', "{{format}}")],
            span=16, stacked=True))
        .with_row(db.Row("Processing"))
        .with_panel(ts(
            "Processing time p95 by format",
            "95th-percentile processing duration per media format "
            "(format:media_processing_duration_seconds:p95_rate5m).",
            "s",
            [Q('format:media_processing_duration_seconds:p95_rate5m{env="$env"}',
               "{{format}}")]))
        .with_panel(bargauge_panel(
            "Processing p95 by stage",
            "Which processing stage is slowest: 95th percentile per stage "
            "(stage:media_processing_duration_seconds:p95_rate5m).",
            "s",
            [Q('stage:media_processing_duration_seconds:p95_rate5m{env="$env"}', "{{stage}}")]))
        .with_panel(bargauge_panel(
            "Median upload size by format",
            "Median size of uploaded files per format, from the media_upload_size_bytes "
            "histogram (format:media_upload_size_bytes:p50_rate5m).",
            "bytes",
            [Q('format:media_upload_size_bytes:p50_rate5m{env="$env"}', "{{format}}")],
            span=24))
    )


def ml_pipeline() -> db.Dashboard:
    a = 'env="$env"'
    dash = new_dashboard(
        "apollonia-ml-pipeline",
        "Apollonia ML Pipeline",
        "Is the analyzer's ML pipeline fast and correct? Inference and feature latency, "
        "errors, model accuracy, batch sizes and memory.",
        ["ml"],
        [
            datasource_var("datasource", "Data source", "prometheus", PROMETHEUS_UID,
                           "Prometheus"),
            env_var(),
            query_var(
                "model", "Model",
                'label_values(ml_model_accuracy{env="$env"}, model_name)',
                multi=True, include_all=True, description="ML model names.",
            ),
        ],
    )
    m = f'{a}, model_name=~"$model"'
    return (
        dash.with_row(db.Row("Quality"))
        .with_panel(stat_panel(
            "Prediction error ratio",
            "Failed predictions over all predictions in the last 5 minutes "
            "(service:ml_processing_error_ratio:rate5m). Red above 5%.",
            "percentunit",
            [aq(f"service:ml_processing_error_ratio:rate5m{{{a}}}", "{{service}}")],
            thresholds=((None, "green"), (0.01, "orange"), (0.05, "red")), decimals=2))
        .with_panel(stat_panel(
            "Processing errors",
            "ML processing errors per second, all types (service:ml_processing_errors:rate5m).",
            "ops", [aq(f"sum(service:ml_processing_errors:rate5m{{{a}}})")]))
        .with_panel(gauge_panel(
            "Model accuracy",
            "Last reported accuracy per model and version (gauge ml_model_accuracy). "
            "Red below 80%.",
            "percentunit",
            [aq(f"ml_model_accuracy{{{m}}}", "{{model_name}} {{version}}")],
            span=12, thresholds=((None, "red"), (0.8, "orange"), (0.9, "green"))))
        .with_panel(ts(
            "Errors by type and stage",
            "ML processing errors per second by error type and pipeline stage.",
            "ops",
            [aq(f"sum by (error_type, stage) "
               f"(rate(ml_processing_errors_total{{{a}}}[$__rate_interval]))",
               "{{stage}} {{error_type}}")],
            stacked=True))
        .with_panel(ts(
            "Predictions per second",
            "Prediction throughput per model, failed ones included "
            "(ml_model_prediction_duration_seconds_count).",
            "ops",
            [aq(f"sum by (model_name) "
               f"(rate(ml_model_prediction_duration_seconds_count{{{m}}}[$__rate_interval]))",
               "{{model_name}}")]))
        .with_row(db.Row("Latency"))
        .with_panel(ts(
            "Inference p95 by model",
            "95th-percentile inference duration per model "
            "(model:ml_inference_duration_seconds:p95_rate5m).",
            "s",
            [Q(f"model:ml_inference_duration_seconds:p95_rate5m{{{m}}}", "{{model_name}}")],
            span=8))
        .with_panel(ts(
            "Prediction p95 by input size",
            "95th-percentile prediction duration per input size bucket (1, 2-8, 9-32, 33+) "
            "of the selected models, from their recorded bucket rates "
            "(model_input_size_le:ml_model_prediction_duration_seconds_bucket:rate5m).",
            "s",
            [Q("histogram_quantile(0.95, sum by (input_size, le) "
               f"(model_input_size_le:ml_model_prediction_duration_seconds_bucket:rate5m{{{m}}}))",
               "{{input_size}}")], span=8))
        .with_panel(ts(
            "Feature extraction p95",
            "95th-percentile feature extraction duration per feature type and audio format "
            "(feature_format:ml_feature_extraction_duration_seconds:p95_rate5m).",
            "s",
            [Q(f"feature_format:ml_feature_extraction_duration_seconds:p95_rate5m{{{a}}}",
               "{{feature_type}} {{audio_format}}")], span=8))
        .with_row(db.Row("Resources"))
        .with_panel(bargauge_panel(
            "Average batch size by model",
            "Mean batch size per model: rate of the histogram sum over rate of its count.",
            "short",
            [aq(f"sum by (model_name) (rate(ml_batch_size_sum{{{m}}}[$__rate_interval])) / "
               f"sum by (model_name) (rate(ml_batch_size_count{{{m}}}[$__rate_interval]))",
               "{{model_name}}")]))
        .with_panel(ts(
            "Memory by stage",
            "Memory used by each pipeline stage (gauge ml_memory_usage_bytes).",
            "bytes",
            [aq(f"sum by (stage) (ml_memory_usage_bytes{{{a}}})", "{{stage}}")]))
    )
