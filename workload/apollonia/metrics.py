"""Prometheus metrics, exactly as in the team contract (names, types, label sets).

Each service instance gets its own CollectorRegistry, so the api and analyzer can live in one
test process without sharing series. Label values are bounded: route templates (unknown paths
become "unmatched"), a fixed set of methods, formats and models, and batch/input sizes bucketed.
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from . import tracing

# The `_created` series of the OpenMetrics format would double the series count for nothing.
prometheus_client.disable_created_metrics()

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Uploads from 16 KiB to 256 MiB, factor 4.
UPLOAD_SIZE_BUCKETS = tuple(16384 * 4**i for i in range(8))
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)

FORMATS = ("mp3", "wav", "flac", "ogg", "m4a")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
UNMATCHED = "unmatched"
QUEUE_NAME = "analyzer_queue"
CACHE_OPERATIONS = (("get", "hit"), ("get", "miss"), ("set", "ok"))
DB_QUERIES = (("insert", "media"), ("select", "media"), ("count", "media"), ("delete", "media"))
MODELS = {"genre_classifier": ("1.4.2", 0.912), "mood_classifier": ("2.1.0", 0.874)}
FEATURE_TYPES = ("mfcc", "chroma", "spectral_contrast", "tempo")
PROCESSING_STAGES = ("decode", "feature_extraction", "inference", "total")
MEMORY_STAGES = ("decode", "feature_extraction", "inference")
SIZE_BUCKETS = ("1", "2-8", "9-32", "33+")
# (error_type, stage) pairs the analyzer can produce; all start at 0.
ML_ERRORS = (
    ("ModelError", "inference"),
    ("TimeoutError", "inference"),
    ("DecodeError", "decode"),
    ("FeatureExtractionError", "feature_extraction"),
)


def size_bucket(n: int) -> str:
    """Bounded label value for a batch or input size."""
    if n <= 1:
        return "1"
    if n <= 8:
        return "2-8"
    if n <= 32:
        return "9-32"
    return "33+"


def normalize_method(method: str) -> str:
    return method if method in METHODS else "OTHER"


def exemplar() -> dict[str, str] | None:
    """trace_id exemplar for the current span (None outside a span)."""
    tid = tracing.current_trace_id()
    return {"trace_id": tid} if tid else None


def new_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """Exposition body and content type: OpenMetrics (with exemplars) when the scraper asks."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.http_requests_total = Counter(
            "http_requests_total",
            "HTTP requests handled, by route template and status code",
            ["method", "endpoint", "status_code"],
            registry=registry,
        )
        self.http_request_duration_seconds = Histogram(
            "http_request_duration_seconds",
            "HTTP request duration in seconds, by route template",
            ["method", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def init_routes(self, routes: list[tuple[str, str, str]]) -> None:
        """Create the series for every known route (its success code and 500) at 0, so
        rate() and error ratios have data from the first scrape."""
        for method, endpoint, success in routes:
            self.http_request_duration_seconds.labels(method, endpoint)
            for status in (success, "500"):
                self.http_requests_total.labels(method, endpoint, status)

    def observe_request(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        method = normalize_method(method)
        self.http_requests_total.labels(method, endpoint, str(status)).inc()
        self.http_request_duration_seconds.labels(method, endpoint).observe(
            seconds, exemplar=exemplar()
        )


class ApiMetrics(HttpMetrics):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        r = registry
        self.active_users = Gauge(
            "active_users", "Distinct user ids seen in the last 5 minutes", registry=r
        )
        self.media_files_total = Gauge(
            "media_files_total", "Media files in the catalog, by format", ["format"], registry=r
        )
        self.media_upload_size_bytes = Histogram(
            "media_upload_size_bytes",
            "Size of accepted uploads in bytes (_count = uploads)",
            ["format"],
            buckets=UPLOAD_SIZE_BUCKETS,
            registry=r,
        )
        self.queue_messages_total = Gauge(
            "queue_messages_total", "Messages waiting in the queue", ["queue_name"], registry=r
        )
        self.database_query_duration_seconds = Histogram(
            "database_query_duration_seconds",
            "Database query duration in seconds",
            ["query_type", "table"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.database_connections_active = Gauge(
            "database_connections_active", "Database connections in use", registry=r
        )
        self.cache_operations_total = Counter(
            "cache_operations_total",
            "Cache operations by operation (get|set) and result (hit|miss|ok)",
            ["operation", "result"],
            registry=r,
        )
        self.cache_hit_ratio = Gauge(
            "cache_hit_ratio", "Share of recent cache gets that were hits", registry=r
        )
        for fmt in FORMATS:
            self.media_files_total.labels(fmt).set(0)
            self.media_upload_size_bytes.labels(fmt)
        self.queue_messages_total.labels(QUEUE_NAME).set(0)
        for query_type, table in DB_QUERIES:
            self.database_query_duration_seconds.labels(query_type, table)
        for operation, result in CACHE_OPERATIONS:
            self.cache_operations_total.labels(operation, result)
        # Undefined until the first cache get: NaN compares false, so no alert on a cold start.
        self.cache_hit_ratio.set(float("nan"))


class AnalyzerMetrics(HttpMetrics):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        r = registry
        self.media_processing_duration_seconds = Histogram(
            "media_processing_duration_seconds",
            "Time to process one media file, by stage and format",
            ["stage", "format"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ml_inference_duration_seconds = Histogram(
            "ml_inference_duration_seconds",
            "Model inference duration for one batch (batch_size bucketed)",
            ["model_name", "batch_size"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ml_model_accuracy = Gauge(
            "ml_model_accuracy", "Offline accuracy of the loaded model", ["model_name", "version"],
            registry=r,
        )
        self.ml_feature_extraction_duration_seconds = Histogram(
            "ml_feature_extraction_duration_seconds",
            "Feature extraction duration",
            ["feature_type", "audio_format"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ml_model_prediction_duration_seconds = Histogram(
            "ml_model_prediction_duration_seconds",
            "Model prediction duration (_count = all predictions, failed ones included)",
            ["model_name", "input_size"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ml_processing_errors_total = Counter(
            "ml_processing_errors_total", "ML processing errors", ["error_type", "stage"],
            registry=r,
        )
        self.ml_batch_size = Histogram(
            "ml_batch_size", "Batch size of ML inference", ["model_name"], buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.ml_memory_usage_bytes = Gauge(
            "ml_memory_usage_bytes", "Estimated working memory of the last job, by stage",
            ["stage"], registry=r,
        )
        for fmt in FORMATS:
            for stage in PROCESSING_STAGES:
                self.media_processing_duration_seconds.labels(stage, fmt)
            for feature in FEATURE_TYPES:
                self.ml_feature_extraction_duration_seconds.labels(feature, fmt)
        for model, (version, accuracy) in MODELS.items():
            self.ml_model_accuracy.labels(model, version).set(accuracy)
            self.ml_batch_size.labels(model)
            for bucket in SIZE_BUCKETS:
                self.ml_inference_duration_seconds.labels(model, bucket)
                self.ml_model_prediction_duration_seconds.labels(model, bucket)
        for error_type, stage in ML_ERRORS:
            self.ml_processing_errors_total.labels(error_type, stage)
        for stage in MEMORY_STAGES:
            self.ml_memory_usage_bytes.labels(stage).set(0)
