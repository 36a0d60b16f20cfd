#!/usr/bin/python3
"""Jaeger stand-in: takes OTLP spans, answers the query API, stores spans in Elasticsearch.

Run as the image runs Jaeger: ``python3 jaeger.py --config /etc/jaeger/config.yaml``. The ports
come from that file (jaeger/config.yaml): receivers.otlp.protocols.grpc/http endpoints (4317,
4318), extensions.healthcheckv2.http.endpoint (13133), extensions.jaeger_query.http.endpoint
(16686), service.telemetry.metrics.readers[].pull.exporter.prometheus.port (8888); the
Elasticsearch backend (server_urls, auth.basic.username/password_file, indices.index_prefix)
from extensions.jaeger_storage.

What it answers like Jaeger v2.20.0 (jaegertracing/jaeger@v2.20.0):

* OTLP/gRPC ``opentelemetry.proto.collector.trace.v1.TraceService/Export`` (grpcio generic
  handler on raw bytes) and OTLP/HTTP ``POST /v1/traces`` in application/x-protobuf and
  application/json, gzip or not (OTLP specification 1.x, "OTLP/HTTP"; the collector's
  receiver/otlpreceiver). The protobuf is read by a small wire-format reader of the fields
  the query API shows (opentelemetry-proto trace/v1/trace.proto: resource attributes,
  trace_id, span_id, parent_span_id, name, kind, start/end time, attributes, status).
* Health ``GET /status`` on 13133: healthcheckv2's answer {"start_time", "healthy",
  "status": "StatusOK", "status_time"} (open-telemetry/opentelemetry-collector-contrib
  extension/healthcheckv2extension/internal/http/serialization.go).
* Query API on 16686 (cmd/jaeger/internal/extension/jaegerquery/internal/http_handler.go):
  ``GET /api/services``, ``GET /api/services/<service>/operations`` and ``/api/operations``,
  ``GET /api/traces/<traceID>`` (404 {"errors": [{"code": 404, "msg": "trace not found"}]}),
  ``GET /api/traces?service=&operation=&limit=&start=&end=``; the structuredResponse shape
  {"data", "total", "limit", "offset", "errors"} with traces as the UI model
  (internal/uimodel: spans[] with traceID, spanID, operationName, references CHILD_OF,
  startTime/duration in microseconds, tags, processID; processes{p1: {serviceName, tags}}).
* Metrics on 8888, the names and labels of tests/fixtures/jaeger-2.20.0/metrics-8888.txt:
  otelcol_receiver_accepted_spans / otelcol_receiver_refused_spans {receiver, transport},
  otelcol_exporter_sent_spans / otelcol_exporter_send_failed_spans {exporter},
  jaeger_storage_bulk_index_attempts / _inserts / _errors {name, role}.
* Storage: every span is also written, in the background (like esclient/bulk.go: success is
  reported when queued), to Elasticsearch with _bulk into <prefix>-jaeger-span-YYYY-MM-DD and
  <prefix>-jaeger-service-YYYY-MM-DD (core/writer.go, dbmodel/model.go field names), with the
  password read once from password_file; each item counts as an attempt and an insert or an
  error, as bulk.go counts them.

What it does NOT prove: the query API answers from this process's memory (the last 50,000
spans), not from Elasticsearch, so traces are gone after a restart and a lost bulk does not
hide a trace; no sampling, no memory_limiter or batch processor (refused spans stay 0), no
Jaeger index templates (create_mappings), no query gRPC (16685), no UI pages, no span links,
events or dropped counts, no adaptive rotation; the 8888 series exist only for the names
above.

Debug endpoint: ``GET /standin/spans`` on 16686 (every stored span, as received).
"""

from __future__ import annotations

import base64
import collections
import gzip
import json
import os
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

try:  # /standin/ in the image: the helpers sit next to this file
    import standin_common as common
except ImportError:  # imported as dev.engine.standins.jaeger (offline tests)
    from dev.engine.standins import standin_common as common

NAME = "jaeger"
MAX_SPANS = 50_000
SPAN_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


# --- protobuf wire format ------------------------------------------------------------------

def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of one message: ints for varint/fixed, bytes else."""
    out, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", data, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", data, pos)[0], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _any_value(data: bytes) -> Any:
    for number, _, value in fields(data):
        if number == 1:
            return value.decode()
        if number == 2:
            return bool(value)
        if number == 3:
            return value - (1 << 64) if value >= 1 << 63 else value
        if number == 4:
            return struct.unpack("<d", struct.pack("<Q", value))[0]
        if number == 5:
            return [_any_value(v) for n, _, v in fields(value) if n == 1]
        if number == 7:
            return base64.b64encode(value).decode()
    return None


def _attributes(items: list[bytes]) -> dict[str, Any]:
    out = {}
    for item in items:
        kv = {n: v for n, _, v in fields(item)}
        out[kv.get(1, b"").decode()] = _any_value(kv.get(2, b""))
    return out


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    service: str
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)
    status_code: int = 0


def decode_protobuf(data: bytes) -> list[Span]:
    """ExportTraceServiceRequest (opentelemetry-proto collector/trace/v1) -> spans."""
    spans = []
    for number, _, resource_spans in fields(data):
        if number != 1:
            continue
        resource: dict[str, Any] = {}
        scopes = []
        for n, _, value in fields(resource_spans):
            if n == 1:  # Resource
                resource = _attributes([v for k, _, v in fields(value) if k == 1])
            elif n == 2:  # ScopeSpans
                scopes.append(value)
        for scope in scopes:
            for n, _, raw in fields(scope):
                if n == 2:
                    spans.append(_span(raw, resource))
    return spans


def _span(raw: bytes, resource: dict[str, Any]) -> Span:
    f: dict[int, Any] = {}
    attributes = []
    for n, _, value in fields(raw):
        if n == 9:
            attributes.append(value)
        else:
            f[n] = value
    status = {n: v for n, _, v in fields(f.get(15, b""))}
    return Span(trace_id=f.get(1, b"").hex(), span_id=f.get(2, b"").hex(),
                parent_span_id=f.get(4, b"").hex(), name=f.get(5, b"").decode(),
                kind=f.get(6, 0), start_ns=f.get(7, 0), end_ns=f.get(8, 0),
                service=str(resource.get("service.name", "unknown_service")),
                attributes=_attributes(attributes), resource=resource,
                status_code=status.get(3, 0))


def _json_value(value: dict[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue", "bytesValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])
    if "arrayValue" in value:
        return [_json_value(v) for v in value["arrayValue"].get("values", [])]
    return None


def _json_attributes(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {kv["key"]: _json_value(kv.get("value", {})) for kv in items or []}


def _json_id(value: str) -> str:
    """OTLP/JSON ids are hex (the specification); base64 from proto3 JSON mapping is tolerated."""
    try:
        int(value, 16)
        return value.lower()
    except ValueError:
        return base64.b64decode(value).hex() if value else ""


def decode_json(data: bytes) -> list[Span]:
    spans = []
    for rs in json.loads(data).get("resourceSpans", []):
        resource = _json_attributes(rs.get("resource", {}).get("attributes", []))
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                spans.append(Span(
                    trace_id=_json_id(s.get("traceId", "")), span_id=_json_id(s.get("spanId", "")),
                    parent_span_id=_json_id(s.get("parentSpanId", "")), name=s.get("name", ""),
                    kind=int(s.get("kind", 0)), start_ns=int(s.get("startTimeUnixNano", 0)),
                    end_ns=int(s.get("endTimeUnixNano", 0)),
                    service=str(resource.get("service.name", "unknown_service")),
                    attributes=_json_attributes(s.get("attributes", [])), resource=resource,
                    status_code=int((s.get("status") or {}).get("code", 0))))
    return spans


# --- the Jaeger UI model -------------------------------------------------------------------

def _tags(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    def kind(v: Any) -> str:
        return ("bool" if isinstance(v, bool) else "int64" if isinstance(v, int)
                else "float64" if isinstance(v, float) else "string")
    return [{"key": k, "type": kind(v), "value": v if not isinstance(v, list) else json.dumps(v)}
            for k, v in attributes.items()]


def _span_tags(span: Span) -> list[dict[str, Any]]:
    extra: dict[str, Any] = {}
    if span.kind in SPAN_KINDS:
        extra["span.kind"] = SPAN_KINDS[span.kind]
    if span.status_code == 2:
        extra["error"] = True
        extra["otel.status_code"] = "ERROR"
    return _tags({**span.attributes, **extra})


def ui_trace(spans: list[Span]) -> dict[str, Any]:
    processes: dict[str, dict[str, Any]] = {}
    keys: dict[str, str] = {}
    out = []
    for span in sorted(spans, key=lambda s: s.start_ns):
        key = json.dumps([span.service, sorted(span.resource.items())], default=str)
        if key not in keys:
            keys[key] = f"p{len(keys) + 1}"
            rest = {k: v for k, v in span.resource.items() if k != "service.name"}
            processes[keys[key]] = {"serviceName": span.service, "tags": _tags(rest)}
        refs = ([{"refType": "CHILD_OF", "traceID": span.trace_id, "spanID": span.parent_span_id}]
                if span.parent_span_id else [])
        out.append({"traceID": span.trace_id, "spanID": span.span_id,
                    "operationName": span.name, "references": refs,
                    "startTime": span.start_ns // 1000,
                    "duration": max(0, span.end_ns - span.start_ns) // 1000,
                    "tags": _span_tags(span), "logs": [], "processID": keys[key],
                    "warnings": None})
    return {"traceID": spans[0].trace_id, "spans": out, "processes": processes,
            "warnings": None}


def es_span_doc(span: Span) -> dict[str, Any]:
    """A span as Jaeger's Elasticsearch span document (core/dbmodel/model.go)."""
    doc = ui_trace([span])["spans"][0]
    start_us = span.start_ns // 1000
    return {"traceID": doc["traceID"], "spanID": doc["spanID"],
            "operationName": doc["operationName"], "references": doc["references"],
            "startTime": start_us, "startTimeMillis": start_us // 1000,
            "duration": doc["duration"], "tags": doc["tags"], "logs": [],
            "process": {"serviceName": span.service,
                        "tags": _tags({k: v for k, v in span.resource.items()
                                       if k != "service.name"})}}


# --- the program ---------------------------------------------------------------------------

class Store:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans: collections.deque[Span] = collections.deque(maxlen=MAX_SPANS)
        self.accepted = collections.Counter[str]()
        self.refused = collections.Counter[str]()
        self.bulk = collections.Counter[str]()  # attempts, inserts, errors
        self.pending: list[Span] = []

    def add(self, spans: list[Span], transport: str) -> None:
        with self.lock:
            self.spans.extend(spans)
            self.accepted[transport] += len(spans)
            self.pending.extend(spans)

    def traces(self) -> dict[str, list[Span]]:
        with self.lock:
            out: dict[str, list[Span]] = {}
            for span in self.spans:
                out.setdefault(span.trace_id, []).append(span)
            return out


class EsWriter:
    """The background bulk indexer: spans to <prefix>-jaeger-span-<day>, services too."""

    def __init__(self, store: Store, backend: dict[str, Any]) -> None:
        self.store = store
        self.url = (backend.get("server_urls") or ["http://elasticsearch:9200"])[0].rstrip("/")
        self.prefix = (backend.get("indices") or {}).get("index_prefix", "")
        basic = (backend.get("auth") or {}).get("basic") or {}
        self.auth = None
        if basic.get("username"):
            password = basic.get("password", "")
            if basic.get("password_file"):
                with open(basic["password_file"]) as fh:
                    password = fh.read().rstrip("\n")
            token = base64.b64encode(f"{basic['username']}:{password}".encode()).decode()
            self.auth = f"Basic {token}"
        self.services_seen: set[tuple[str, str, str]] = set()
        indices = backend.get("indices") or {}
        # create_mappings (default true): Jaeger installs an index template per index kind at
        # start, with the shards and replicas its config gives (jaegertracing/jaeger@v2.20.0
        # internal/storage/v1/elasticsearch/factory.go createTemplates; mappings/*.json).
        self.templates = {kind: indices.get(f"{kind}s") or {} for kind in ("span", "service")}
        self.create_mappings = backend.get("create_mappings", True)
        self.templates_done = False

    def _request(self, method: str, path: str, body: bytes) -> Any:
        request = urllib.request.Request(f"{self.url}{path}", data=body, method=method,
                                         headers={"Content-Type": "application/json"})
        if self.auth:
            request.add_header("Authorization", self.auth)
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read())

    def put_templates(self) -> None:
        """The index templates, once Elasticsearch answers (retried with each flush)."""
        if self.templates_done or not self.create_mappings:
            return
        for kind, options in self.templates.items():
            name = f"{self.prefix}-jaeger-{kind}" if self.prefix else f"jaeger-{kind}"
            body = {"index_patterns": [f"{name}-*"], "priority": 1, "template": {"settings": {
                "index.number_of_shards": options.get("shards", 5),
                "index.number_of_replicas": options.get("replicas", 1)}}}
            self._request("PUT", f"/_index_template/{name}", json.dumps(body).encode())
        self.templates_done = True

    def index(self, kind: str, start_ns: int) -> str:
        day = time.strftime("%Y-%m-%d", time.gmtime(start_ns / 1e9))
        return f"{self.prefix}-jaeger-{kind}-{day}" if self.prefix else f"jaeger-{kind}-{day}"

    def flush(self) -> None:
        with self.store.lock:
            spans, self.store.pending = self.store.pending, []
        if not spans:
            return
        try:
            self.put_templates()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            common.log(NAME, f"index templates not installed yet: {exc}")
        lines = []
        for span in spans:
            service_index = self.index("service", span.start_ns)
            key = (service_index, span.service, span.name)
            if key not in self.services_seen:
                self.services_seen.add(key)
                lines += [{"index": {"_index": service_index,
                                     "_id": f"{span.service}|{span.name}"}},
                          {"serviceName": span.service, "operationName": span.name}]
            lines += [{"index": {"_index": self.index("span", span.start_ns)}},
                      es_span_doc(span)]
        body = "".join(json.dumps(x) + "\n" for x in lines).encode()
        request = urllib.request.Request(f"{self.url}/_bulk", data=body, method="POST",
                                         headers={"Content-Type": "application/x-ndjson"})
        if self.auth:
            request.add_header("Authorization", self.auth)
        items = len(lines) // 2
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                answer = json.loads(resp.read())
            failed = sum(1 for it in answer.get("items", [])
                         if next(iter(it.values())).get("status", 500) >= 300)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            common.log(NAME, f"bulk of {items} items to {self.url} failed: {exc}")
            failed = items
            self.services_seen.clear()  # written again next time
        with self.store.lock:
            self.store.bulk["attempts"] += items
            self.store.bulk["inserts"] += items - failed
            self.store.bulk["errors"] += failed

    def run(self) -> None:
        while True:
            time.sleep(1)
            self.flush()


def _port(endpoint: str | None, default: int) -> int:
    return int(str(endpoint).rsplit(":", 1)[1]) if endpoint and ":" in str(endpoint) else default


def load_config(path: str) -> dict[str, Any]:
    import yaml  # python3-yaml

    with open(path) as fh:
        config = yaml.safe_load(fh)
    receivers = (config.get("receivers") or {}).get("otlp", {}).get("protocols", {})
    ext = config.get("extensions") or {}
    readers = (config.get("service", {}).get("telemetry", {}).get("metrics", {})
               .get("readers") or [])
    metrics_port = next((r["pull"]["exporter"]["prometheus"].get("port", 8888)
                         for r in readers if "pull" in r), 8888)
    backends = (ext.get("jaeger_storage") or {}).get("backends") or {}
    name, backend = next(iter(backends.items()), ("", {}))
    return {
        "grpc": common.port("grpc", _port((receivers.get("grpc") or {}).get("endpoint"), 4317)),
        "http": common.port("http", _port((receivers.get("http") or {}).get("endpoint"), 4318)),
        "health": common.port("health", _port(
            ((ext.get("healthcheckv2") or {}).get("http") or {}).get("endpoint"), 13133)),
        "query": common.port("query", _port(
            ((ext.get("jaeger_query") or {}).get("http") or {}).get("endpoint"), 16686)),
        "metrics": common.port("metrics", int(metrics_port)),
        "backend_name": name,
        "elasticsearch": backend.get("elasticsearch") or {},
    }


class Jaeger:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.store = Store()
        self.started = time.time()

    # OTLP/HTTP (4318)
    def otlp_http(self, req: common.Request) -> common.Response:
        if req.path != "/v1/traces" or req.method != "POST":
            return common.text_response(404, "404 page not found\n")
        body = req.body
        if req.headers.get("content-encoding", "") == "gzip":
            body = gzip.decompress(body)
        ctype = req.headers.get("content-type", "").split(";")[0].strip()
        try:
            if ctype == "application/x-protobuf":
                spans = decode_protobuf(body)
            elif ctype == "application/json":
                spans = decode_json(body)
            else:
                return common.text_response(415, f"unsupported content type {ctype}")
        except (ValueError, IndexError, KeyError, UnicodeDecodeError) as exc:
            return common.json_response(400, {"code": 3, "message": f"cannot decode: {exc}"})
        self.store.add(spans, "http")
        if ctype == "application/json":
            return common.json_response(200, {})
        return common.Response(200, b"", "application/x-protobuf")

    # OTLP/gRPC (4317)
    def grpc_export(self, request: bytes, context: Any) -> bytes:
        self.store.add(decode_protobuf(request), "grpc")
        return b""  # an empty ExportTraceServiceResponse

    # healthcheckv2 (13133)
    def health(self, req: common.Request) -> common.Response:
        if req.path != "/status":
            return common.text_response(404, "404 page not found\n")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.started)) + "Z"
        return common.json_response(200, {"start_time": stamp, "healthy": True,
                                          "status": "StatusOK", "status_time": stamp})

    # query API (16686)
    def query(self, req: common.Request) -> common.Response:
        p = req.parts
        if p == ["standin", "spans"]:
            return common.json_response(200, [s.__dict__ for s in self.store.spans])
        if p[:1] != ["api"]:
            return common.text_response(200, "<html><body>Jaeger UI (stand-in)</body></html>",
                                        "text/html; charset=utf-8")
        traces = self.store.traces()
        if p == ["api", "services"]:
            names = sorted({s.service for t in traces.values() for s in t})
            return self._structured(names)
        if p[:2] == ["api", "services"] and p[-1:] == ["operations"] or p == ["api", "operations"]:
            service = p[2] if len(p) == 4 else req.arg("service")
            names = sorted({s.name for t in traces.values() for s in t if s.service == service})
            if p == ["api", "operations"]:
                return self._structured([{"name": n, "spanKind": ""} for n in names])
            return self._structured(names)
        if p[:2] == ["api", "traces"] and len(p) == 3:
            wanted = p[2].lower().rjust(32, "0")
            spans = traces.get(wanted)
            if not spans:
                return common.json_response(404, {"data": None, "total": 0, "limit": 0,
                                                  "offset": 0, "errors": [
                                                      {"code": 404, "msg": "trace not found"}]})
            return self._structured([ui_trace(spans)])
        if p == ["api", "traces"]:
            return self._search(req, traces)
        return common.json_response(404, {"data": None, "total": 0, "limit": 0, "offset": 0,
                                          "errors": [{"code": 404, "msg": "404 page not found"}]})

    def _search(self, req: common.Request, traces: dict[str, list[Span]]) -> common.Response:
        service, operation = req.arg("service"), req.arg("operation")
        if not service and not req.arg("traceID"):
            return common.json_response(400, {"data": None, "total": 0, "limit": 0,
                                              "offset": 0, "errors": [
                                                  {"code": 400,
                                                   "msg": "parameter 'service' is required"}]})
        start = int(req.arg("start") or 0) * 1000  # microseconds -> ns
        end = int(req.arg("end") or 0) * 1000 or None
        limit = int(req.arg("limit") or 20)
        found = []
        for spans in traces.values():
            if any(s.service == service and (not operation or s.name == operation)
                   and s.start_ns >= start and (end is None or s.start_ns <= end) for s in spans):
                found.append(spans)
        found.sort(key=lambda t: -max(s.start_ns for s in t))
        return self._structured([ui_trace(t) for t in found[:limit]])

    @staticmethod
    def _structured(data: Any) -> common.Response:
        return common.json_response(200, {"data": data, "total": len(data), "limit": 0,
                                          "offset": 0, "errors": None})

    # internal telemetry (8888)
    def metrics(self, req: common.Request) -> common.Response:
        if req.path != "/metrics":
            return common.text_response(404, "404 page not found\n")
        s = self.store
        with s.lock:
            accepted, refused, bulk = dict(s.accepted), dict(s.refused), dict(s.bulk)
        transports = sorted({"http", "grpc"} | set(accepted))
        recv = [{"receiver": "otlp", "transport": t} for t in transports]
        sent = sum(accepted.values())
        exporter = {"exporter": "jaeger_storage_exporter"}
        store = {"name": self.config["backend_name"], "role": "tracestore"}
        text = common.exposition([
            ("otelcol_receiver_accepted_spans", "counter",
             "Number of spans successfully pushed into the pipeline. [Alpha]",
             [(lb, accepted.get(lb["transport"], 0)) for lb in recv]),
            ("otelcol_receiver_refused_spans", "counter",
             "Number of spans that could not be pushed into the pipeline. [Alpha]",
             [(lb, refused.get(lb["transport"], 0)) for lb in recv]),
            ("otelcol_exporter_sent_spans", "counter",
             "Number of spans successfully sent to destination. [Alpha]", [(exporter, sent)]),
            ("otelcol_exporter_send_failed_spans", "counter",
             "Number of spans in failed attempts to send to destination. [Alpha]",
             [(exporter, 0)]),
            ("jaeger_storage_bulk_index_attempts", "counter", "",
             [(store, bulk.get("attempts", 0))]),
            ("jaeger_storage_bulk_index_inserts", "counter", "",
             [(store, bulk.get("inserts", 0))]),
            ("jaeger_storage_bulk_index_errors", "counter", "", [(store, bulk.get("errors", 0))]),
        ])
        return common.text_response(200, text, common.PROMETHEUS_TEXT)


def start_grpc(jaeger: Jaeger, host: str, port: int) -> Any:
    """OTLP/gRPC with grpcio's generic handlers on raw bytes (python3-grpcio 1.51.1)."""
    from concurrent import futures

    import grpc

    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(jaeger.grpc_export)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    if not server.add_insecure_port(f"{host}:{port}"):
        raise OSError(f"cannot listen on {host}:{port}")
    server.start()
    common.log(NAME, f"OTLP/gRPC listening on {host}:{port}")
    return server


def main(argv: list[str]) -> int:
    path = "/etc/jaeger/config.yaml"
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
    try:
        config = load_config(path)
    except OSError as exc:
        common.fail(NAME, f"cannot read config {path}: {exc}")
    jaeger = Jaeger(config)
    host = common.bind_host()
    servers: list[Any] = [
        common.http_server(NAME, jaeger.otlp_http, config["http"], host),
        common.http_server(NAME, jaeger.health, config["health"], host),
        common.http_server(NAME, jaeger.query, config["query"], host),
        common.http_server(NAME, jaeger.metrics, config["metrics"], host),
    ]
    try:
        grpc_server = start_grpc(jaeger, host, config["grpc"])
    except ImportError:
        if os.environ.get("STANDIN_OPTIONAL_GRPC") != "1":
            common.fail(NAME, "python3-grpcio is missing: OTLP/gRPC cannot be served")
        common.log(NAME, "no grpcio: OTLP/gRPC not served (STANDIN_OPTIONAL_GRPC=1)")
    else:
        servers.append(type("G", (), {"shutdown": lambda self: grpc_server.stop(2)})())
    try:
        writer = EsWriter(jaeger.store, config["elasticsearch"])
    except OSError as exc:
        common.fail(NAME, f"cannot read the Elasticsearch password file: {exc}")
    threading.Thread(target=writer.run, daemon=True).start()
    return common.run_until_signal(NAME, servers, [writer.flush])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
