"""A recording Elasticsearch stand-in on 127.0.0.1 that speaks the parts of the REST API the
bundle uses, with the answers Elasticsearch 9 gives, and faults on demand.

What it answers like Elasticsearch (docs: "Bulk API", "Create or update an index template",
"Update index settings", "Cluster health", "ILM"):

* ``POST /_bulk`` (NDJSON action/source pairs): one result per item, in order, and a
  top-level ``errors`` flag that is true when any item failed. ``create`` of an existing
  ``_id`` -> 409 ``version_conflict_engine_exception``; ``index`` -> 201 ``created`` or
  200 ``updated`` (version + 1); a document the ``reject`` predicate refuses -> 400
  ``document_parsing_exception`` (what a mapping conflict returns).
* Writing to a missing index creates it; the highest-priority composable template whose
  pattern matches gives it its settings (``index.lifecycle.name`` included).
* ``PUT /_ilm/policy/<name>``, ``PUT|GET /_index_template/<name>``,
  ``PUT /<pattern>/_settings``, ``GET /_cat/indices?format=json``, ``DELETE /<index>``,
  ``GET /_cluster/health``.
* ``run_ilm()`` does what ILM's delete phase does: deletes each index whose policy's
  ``delete.min_age`` has passed since the index was created, on the stand-in's own clock
  (``now``), so a test can simulate days.

Faults (each for the next N requests to ``_bulk``): ``unavailable`` answers 503,
``lose_answers`` indexes the bulk and then resets the connection without answering (a
response lost on the way back), ``reset`` resets without indexing. ``stop()``/``start()``
close and reopen the port (Elasticsearch down).
"""

from __future__ import annotations

import base64
import fnmatch
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Doc = dict[str, Any]


@dataclass
class Request:
    method: str
    path: str
    body: bytes
    status: int  # 0: no answer (connection reset)
    at: float


@dataclass
class Index:
    name: str
    created: float
    settings: dict[str, Any] = field(default_factory=dict)
    docs: dict[str, Doc] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)


class ElasticsearchStandIn:
    def __init__(self, port: int = 0, password: str | None = None) -> None:
        self.password = password
        self.now: Callable[[], float] = time.time
        self.indices: dict[str, Index] = {}
        self.templates: dict[str, Doc] = {}
        self.policies: dict[str, Doc] = {}
        self.requests: list[Request] = []
        self.reject: Callable[[Doc], bool] = lambda doc: False
        self.faults = {"unavailable": 0, "lose_answers": 0, "reset": 0}
        self._lock = threading.Lock()
        self._auto_id = 0
        self._server: ThreadingHTTPServer | None = None
        self.port = port
        self.start()

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- what was stored ------------------------------------------------------------------

    def documents(self, pattern: str = "*") -> list[Doc]:
        with self._lock:
            return [
                d for i in self.indices.values() if fnmatch.fnmatchcase(i.name, pattern)
                for d in i.docs.values()
            ]

    def bulk_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path.split("?")[0].endswith("_bulk")]

    # --- ILM ------------------------------------------------------------------------------

    def run_ilm(self) -> list[str]:
        """Delete every index whose lifecycle policy's delete phase is due; return their names."""
        deleted = []
        with self._lock:
            for name, index in list(self.indices.items()):
                policy = self.policies.get(index.settings.get("index.lifecycle.name", ""))
                delete = (policy or {}).get("policy", {}).get("phases", {}).get("delete")
                if delete and self.now() - index.created >= _duration(delete["min_age"]):
                    del self.indices[name]
                    deleted.append(name)
        return deleted

    # --- internals ------------------------------------------------------------------------

    def _index(self, name: str) -> Index:
        if name not in self.indices:
            settings: dict[str, Any] = {}
            matching = [
                t for t in self.templates.values()
                if any(fnmatch.fnmatchcase(name, p) for p in _as_list(t["index_patterns"]))
            ]
            if matching:  # only the highest-priority composable template applies
                best = max(matching, key=lambda t: t.get("priority", 0))
                settings = dict(_flat(best.get("template", {}).get("settings", {})))
            self.indices[name] = Index(name, self.now(), settings)
        return self.indices[name]

    def bulk(self, body: bytes, default_index: str | None) -> Doc:
        lines = [ln for ln in body.split(b"\n") if ln.strip()]
        items = []
        with self._lock:
            i = 0
            while i < len(lines):
                action_line = json.loads(lines[i])
                op, meta = next(iter(action_line.items()))
                source = json.loads(lines[i + 1]) if op != "delete" else None
                i += 1 if op == "delete" else 2
                items.append({op: self._bulk_item(op, meta, source, default_index)})
        errors = any(next(iter(it.values()))["status"] >= 300 for it in items)
        return {"took": 1, "errors": errors, "items": items}

    def _bulk_item(self, op: str, meta: Doc, source: Doc | None, default: str | None) -> Doc:
        name = meta.get("_index") or default
        index = self._index(name)
        doc_id = meta.get("_id")
        if doc_id is None:
            self._auto_id += 1
            doc_id = f"auto-{self._auto_id}"
        base = {"_index": name, "_id": doc_id}
        if source is not None and self.reject(source):
            return {**base, "status": 400, "error": {
                "type": "document_parsing_exception",
                "reason": "[1:2] failed to parse: rejected by the stand-in's reject predicate"}}
        exists = doc_id in index.docs
        if op == "create" and exists:
            return {**base, "status": 409, "error": {
                "type": "version_conflict_engine_exception",
                "reason": f"[{doc_id}]: version conflict, document already exists "
                          f"(current version [{index.versions[doc_id]}])",
                "index": name}}
        if op in ("index", "create"):
            index.docs[doc_id] = source or {}
            index.versions[doc_id] = index.versions.get(doc_id, 0) + 1
            result, status = ("updated", 200) if exists else ("created", 201)
            return {**base, "_version": index.versions[doc_id], "result": result,
                    "_shards": {"total": 1, "successful": 1, "failed": 0}, "status": status}
        return {**base, "status": 400, "error": {"type": "illegal_argument_exception",
                                                 "reason": f"unsupported op {op}"}}


def _handler(es: ElasticsearchStandIn) -> type[BaseHTTPRequestHandler]:
    expected = (
        "Basic " + base64.b64encode(f"elastic:{es.password}".encode()).decode()
        if es.password is not None else None
    )

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like Elasticsearch

        def log_message(self, *args: object) -> None:
            pass

        def _record(self, body: bytes, status: int) -> None:
            es.requests.append(Request(self.command, self.path, body, status, es.now()))

        def _reply(self, status: int, payload: object, body: bytes) -> None:
            self._record(body, status)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-elastic-product", "Elasticsearch")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _reset(self, body: bytes) -> None:
            """Close with RST: the client sees 'connection reset by peer', no answer."""
            self._record(body, 0)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _route(self) -> None:
            body = self._body()
            if expected and self.headers.get("Authorization") != expected:
                self._reply(401, {"error": {"type": "security_exception"}, "status": 401}, body)
                return
            url = urlsplit(self.path)
            parts = [p for p in url.path.split("/") if p]
            query = parse_qs(url.query)
            if parts and parts[-1] == "_bulk" and self.command in ("POST", "PUT"):
                self._bulk(body, parts[0] if len(parts) == 2 else None)
            elif parts[:1] == ["_cluster"]:
                self._reply(200, {"cluster_name": "stand-in", "status": "green",
                                  "timed_out": False}, body)
            elif parts[:2] == ["_ilm", "policy"] and self.command == "PUT":
                es.policies[parts[2]] = json.loads(body)
                self._reply(200, {"acknowledged": True}, body)
            elif parts[:1] == ["_index_template"] and self.command == "PUT":
                es.templates[parts[1]] = json.loads(body)
                self._reply(200, {"acknowledged": True}, body)
            elif parts[:1] == ["_index_template"] and self.command == "GET":
                if parts[1] in es.templates:
                    self._reply(200, {"index_templates": [
                        {"name": parts[1], "index_template": es.templates[parts[1]]}]}, body)
                else:
                    self._reply(404, {"error": {"type": "resource_not_found_exception"},
                                      "status": 404}, body)
            elif parts[:2] == ["_cat", "indices"]:
                rows = [{"index": i.name, "docs.count": str(len(i.docs)),
                         "creation.date": str(int(i.created * 1000))}
                        for i in es.indices.values()]
                self._reply(200, rows, body)
            elif len(parts) == 2 and parts[1] == "_settings" and self.command == "PUT":
                self._settings(parts[0], json.loads(body), query, body)
            elif len(parts) == 1 and self.command == "DELETE":
                with es._lock:
                    gone = es.indices.pop(parts[0], None)
                if gone:
                    self._reply(200, {"acknowledged": True}, body)
                else:
                    self._reply(404, {"error": {"type": "index_not_found_exception"},
                                      "status": 404}, body)
            else:
                self._reply(404, {"error": {"type": "stand_in_unsupported",
                                            "reason": f"{self.command} {self.path}"}}, body)

        def _settings(self, pattern: str, new: Doc, query: dict, body: bytes) -> None:
            with es._lock:
                targets = [i for i in es.indices.values()
                           if any(fnmatch.fnmatchcase(i.name, p) for p in pattern.split(","))]
                if not targets and query.get("allow_no_indices") != ["true"]:
                    self._reply(404, {"error": {"type": "index_not_found_exception"},
                                      "status": 404}, body)
                    return
                for index in targets:
                    index.settings.update(_flat(new))
            self._reply(200, {"acknowledged": True}, body)

        def _bulk(self, body: bytes, default_index: str | None) -> None:
            with es._lock:
                fault = next((k for k in ("reset", "unavailable", "lose_answers")
                              if es.faults[k] > 0), None)
                if fault:
                    es.faults[fault] -= 1
            if fault == "reset":
                self._reset(body)
                return
            if fault == "unavailable":
                self._reply(503, {"error": {"type": "unavailable_shards_exception",
                                            "reason": "primary shard is not active"},
                                  "status": 503}, body)
                return
            answer = es.bulk(body, default_index)
            if fault == "lose_answers":
                self._reset(body)
                return
            self._reply(200, answer, body)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _route  # noqa: N815

    return Handler


def _as_list(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


def _flat(settings: Doc, prefix: str = "") -> dict[str, Any]:
    """{"index": {"lifecycle": {"name": x}}} -> {"index.lifecycle.name": x}, like ES does."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= _flat(value, full + ".")
        else:
            out[full] = value
    if not prefix:  # settings given without the "index." prefix get it
        out = {k if k.startswith("index.") else f"index.{k}": v for k, v in out.items()}
    return out


def _duration(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    raise ValueError(f"unsupported ILM duration {text!r}")
