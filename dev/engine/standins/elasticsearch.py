#!/usr/bin/python3
"""Elasticsearch stand-in: one node on :9200 that answers the REST calls the bundle makes, with
the answers Elasticsearch 9 gives (elastic docs, "REST APIs" of 9.x), and keeps its state.

Run: ``python3 elasticsearch.py`` with the container's environment: ELASTIC_PASSWORD (the
image's entrypoint wrapper reads ELASTIC_PASSWORD_FILE), and settings as dotted variables
(``cluster.name``, ``discovery.type``, ``cluster.routing.allocation.disk.watermark.*``,
``xpack.security.enabled``, ``path.repo``, ``path.data``, ``http.port``, ...). The offline
tests import ``ElasticsearchStandIn`` (tests/logs_traces/es_standin.py re-exports it).

What it answers like Elasticsearch:

* Security (docs: "Basic authentication", "Change passwords API"): with
  xpack.security.enabled (the default) every call needs basic auth as ``elastic``, else 401
  ``security_exception``. The password is ELASTIC_PASSWORD (bootstrap password) until
  ``PUT /_security/user/elastic/_password`` sets one; that one is kept in the data path and
  wins over the environment from then on, as the .security index does.
* ``GET /`` (cluster info, version.number 9.5.1), ``GET /_cluster/health[/<index>]``
  ("Cluster health API": green while every open index has number_of_replicas 0, yellow when a
  replica can never be placed on the single node; ``wait_for_status`` and ``timeout``: 408 and
  timed_out true when the status is not reached in time).
* What elasticsearch/setup.sh sends: ``PUT|GET|DELETE /_ilm/policy/<name>`` ("ILM APIs"),
  ``PUT|GET|DELETE /_index_template/<name>`` ("Create or update an index template": the
  highest-priority composable template matching a new index gives it its settings),
  ``PUT|GET /<pattern>/_settings`` ("Update index settings", allow_no_indices).
* ``POST /_bulk`` and ``/<index>/_bulk`` ("Bulk API"): one result per item, the errors flag,
  ``create`` of an existing _id -> 409 version_conflict_engine_exception, ``index`` -> 201
  created or 200 updated (version + 1); writing to a missing index creates it.
* ``POST|GET /<pattern>/_search`` and ``_count`` ("Search API", "Query DSL"): match_all, term,
  terms, match (OR of lower-cased word tokens), match_phrase, range (numbers and dates: ISO
  8601 with up to nanoseconds, epoch_millis, ``now-15m``), exists, ids, bool (must, filter,
  should, must_not); sort, size, from. A wildcard that matches no index answers 0 hits; a
  missing concrete index 404 index_not_found_exception.
* Index APIs: ``PUT|GET|HEAD|DELETE /<index>``, ``POST /<index>/_close|_open|_refresh``,
  ``POST /<index>/_doc``, ``PUT|GET|DELETE /<index>/_doc/<id>``, ``GET /_cat/indices``
  (format=json, h=), ``GET /_nodes/settings`` (flat_settings: the node's settings from its
  dotted environment variables), ``GET /_nodes/<id>/stats``.
* prometheus-community/elasticsearch_exporter v1.10.0 defaults (main.go): ``GET /``
  (collector/cluster_info.go, pkg/clusterinfo/clusterinfo.go), ``GET /_cluster/health``
  (collector/cluster_health.go), ``GET /_nodes/_local/stats`` (collector/nodes.go: jvm.mem,
  fs.data, indices.indexing) - so the exporter reports elasticsearch_clusterinfo_up,
  elasticsearch_cluster_health_*, elasticsearch_jvm_memory_*, elasticsearch_filesystem_data_*,
  elasticsearch_indices_indexing_index_total.
* Snapshots ("Snapshot and restore"): ``PUT /_snapshot/<repo>`` (type fs; settings.location
  must lie under ``path.repo``, else 500 repository_exception; the location is verified by
  writing to it), ``PUT /_snapshot/<repo>/<snap>`` (wait_for_completion), ``GET
  /_snapshot/<repo>/_all|<snap>``, ``DELETE /_snapshot/<repo>/<snap>``, ``POST
  /_snapshot/<repo>/<snap>/_restore`` (indices, rename_pattern/rename_replacement; restoring
  over an open index fails with 500 snapshot_restore_exception; a closed or deleted one is
  restored). Snapshot contents are files in the repository location.
* State (indices with their documents, templates, policies, repositories, the changed
  password, cluster and node ids) is saved to ``<path.data>/standin-state.json`` every second
  when it changed and at SIGTERM, and read back at start: ``down``/``up`` keeps it.
* ILM's delete phase runs every ``indices.lifecycle.poll_interval`` (default 10m).

What it does NOT prove: Lucene (no analysis chains or mappings enforcement: a mapping conflict
is never refused unless the test's ``reject`` predicate says so; text fields are not
analysed beyond word splitting; no aggregations, no scoring, no query_string), shards,
replication and recovery, disk watermarks being enforced (they are only reported), the JVM
(``jvm.mem.heap_used_in_bytes`` is this process's resident memory, heap_max the -Xmx of
ES_JAVA_OPTS), TLS, API keys and any user but ``elastic``, and a snapshot's on-disk format
(ours is one JSON file per snapshot; only this stand-in can read it back).

Test hooks (offline tests): ``faults`` (each for the next N ``_bulk`` requests):
``unavailable`` answers 503, ``lose_answers`` indexes then resets the connection, ``reset``
resets without indexing; ``reject`` (a predicate on a document -> 400
document_parsing_exception); ``now`` (the clock ILM uses); ``stop()``/``start()``. Debug
endpoint (no auth): ``GET /standin/state`` (indices with doc counts and settings, templates,
policies, repositories, index_total).
"""

from __future__ import annotations

import collections
import fnmatch
import hashlib
import json
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

try:  # /standin/ in the image: the helpers sit next to this file
    import standin_common as common
except ImportError:  # imported as dev.engine.standins.elasticsearch (offline tests)
    from dev.engine.standins import standin_common as common

NAME = "elasticsearch"
VERSION = "9.5.1"
Doc = dict[str, Any]
STATE_FILE = "standin-state.json"
SNAPSHOT_PREFIX = "standin-snapshot-"
PRODUCT_HEADER = {"X-elastic-product": "Elasticsearch"}


@dataclass
class Recorded:
    method: str
    path: str  # path and query as sent
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
    mappings: dict[str, Any] = field(default_factory=dict)
    closed: bool = False
    uuid: str = field(default_factory=lambda: secrets.token_urlsafe(16)[:22])

    def number(self, key: str, default: int) -> int:
        return int(self.settings.get(f"index.{key}", default))

    def dump(self) -> Doc:
        return {"name": self.name, "created": self.created, "settings": self.settings,
                "docs": self.docs, "versions": self.versions, "mappings": self.mappings,
                "closed": self.closed, "uuid": self.uuid}

    @classmethod
    def load(cls, data: Doc) -> Index:
        return cls(**data)


class EsError(Exception):
    """An Elasticsearch error answer: status, type, reason."""

    def __init__(self, status: int, type_: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.type, self.reason = status, type_, reason

    def body(self) -> Doc:
        cause = {"type": self.type, "reason": self.reason}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


class ElasticsearchStandIn:
    def __init__(self, port: int = 0, password: str | None = None, host: str = "127.0.0.1",
                 data_dir: str | Path | None = None, settings: dict[str, str] | None = None,
                 security: bool | None = None) -> None:
        self.settings: dict[str, str] = dict(settings or {})
        self.host = host
        self.port = port
        self.data_dir = Path(data_dir) if data_dir else None
        # Without security every request is served; the tests' default (password None).
        self.security = (password is not None) if security is None else security
        self.password = password  # bootstrap password (ELASTIC_PASSWORD)
        self.password_hash: tuple[str, str] | None = None  # set through the API, persisted
        self.now: Callable[[], float] = time.time
        self.indices: dict[str, Index] = {}
        self.templates: dict[str, Doc] = {}
        self.policies: dict[str, Doc] = {}
        self.repositories: dict[str, Doc] = {}
        self.requests: collections.deque[Recorded] = collections.deque(maxlen=10000)
        self.reject: Callable[[Doc], bool] = lambda doc: False
        self.faults = {"unavailable": 0, "lose_answers": 0, "reset": 0}
        self.index_total = 0
        self.cluster_uuid = secrets.token_urlsafe(16)[:22]
        self.node_id = secrets.token_urlsafe(16)[:22]
        self._lock = threading.RLock()
        self._auto_id = 0
        self._dirty = False
        self._server: Any = None
        self._load()
        self.start()

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._server = common.http_server(NAME, self.handle, self.port, self.host)
        self.port = self._server.server_address[1]

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.save()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cluster_name(self) -> str:
        return self.settings.get("cluster.name", "docker-cluster")

    @property
    def node_name(self) -> str:
        return self.settings.get("node.name") or os.environ.get("HOSTNAME") or "standin"

    # --- persistence ----------------------------------------------------------------------

    def _state_path(self) -> Path | None:
        return self.data_dir / STATE_FILE if self.data_dir else None

    def _load(self) -> None:
        path = self._state_path()
        if not path or not path.exists():
            return
        state = json.loads(path.read_text())
        self.indices = {d["name"]: Index.load(d) for d in state["indices"]}
        self.templates, self.policies = state["templates"], state["policies"]
        self.repositories = state["repositories"]
        self.password_hash = tuple(state["password_hash"]) if state["password_hash"] else None
        self.cluster_uuid, self.node_id = state["cluster_uuid"], state["node_id"]
        self.index_total = state.get("index_total", 0)

    def save(self) -> None:
        try:
            self._save()
        except OSError as exc:  # a full or read-only disk: say so, keep serving
            common.log(NAME, f"cannot save state: {exc}")

    def _save(self) -> None:
        path = self._state_path()
        if not path:
            return
        with self._lock:
            if not self._dirty and path.exists():
                return
            state = {"indices": [i.dump() for i in self.indices.values()],
                     "templates": self.templates, "policies": self.policies,
                     "repositories": self.repositories,
                     "password_hash": list(self.password_hash) if self.password_hash else None,
                     "cluster_uuid": self.cluster_uuid, "node_id": self.node_id,
                     "index_total": self.index_total}
            self._dirty = False
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(path)

    def _changed(self) -> None:
        self._dirty = True

    # --- what was stored ------------------------------------------------------------------

    def documents(self, pattern: str = "*") -> list[Doc]:
        with self._lock:
            return [d for i in self.indices.values() if fnmatch.fnmatchcase(i.name, pattern)
                    for d in i.docs.values()]

    def bulk_requests(self) -> list[Recorded]:
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
            if deleted:
                self._changed()
        return deleted

    # --- security -------------------------------------------------------------------------

    def authenticated(self, auth: tuple[str, str] | None) -> bool:
        if not self.security:
            return True
        if auth is None or auth[0] != "elastic":
            return False
        if self.password_hash:
            salt, digest = self.password_hash
            return _digest(salt, auth[1]) == digest
        return self.password is not None and secrets.compare_digest(auth[1], self.password)

    def set_password(self, password: str) -> None:
        salt = secrets.token_hex(8)
        with self._lock:
            self.password_hash = (salt, _digest(salt, password))
            self._changed()
        self.save()  # at once: a restart must never bring the old password back

    # --- indices --------------------------------------------------------------------------

    def _index(self, name: str) -> Index:
        """The index, created from the matching template when missing (lock held)."""
        if name not in self.indices:
            self._create(name, {})
        return self.indices[name]

    def _create(self, name: str, body: Doc) -> Index:
        settings: dict[str, Any] = {}
        mappings: dict[str, Any] = {}
        matching = [t for t in self.templates.values()
                    if any(fnmatch.fnmatchcase(name, p) for p in _as_list(t["index_patterns"]))]
        if matching:  # only the highest-priority composable template applies
            best = max(matching, key=lambda t: t.get("priority", 0))
            settings = dict(_flat(best.get("template", {}).get("settings", {})))
            mappings = best.get("template", {}).get("mappings", {})
        settings |= _flat(body.get("settings", {}))
        mappings = body.get("mappings") or mappings
        self.indices[name] = Index(name, self.now(), settings, mappings=mappings)
        self._changed()
        return self.indices[name]

    def resolve(self, expression: str, must_exist: bool = True, closed: bool = False
                ) -> list[Index]:
        """Indices named by a comma list of names and wildcards (expand_wildcards=open)."""
        out: dict[str, Index] = {}
        for part in expression.split(","):
            if part in ("_all", "*", ""):
                part = "*"
            if any(c in part for c in "*?"):
                out |= {n: i for n, i in self.indices.items()
                        if fnmatch.fnmatchcase(n, part) and (closed or not i.closed)}
            elif part in self.indices:
                out[part] = self.indices[part]
            elif must_exist:
                raise EsError(404, "index_not_found_exception", f"no such index [{part}]")
        return list(out.values())

    def health(self, indices: list[Index] | None = None) -> Doc:
        with self._lock:
            shown = [i for i in (self.indices.values() if indices is None else indices)
                     if not i.closed]
            primaries = sum(i.number("number_of_shards", 1) for i in shown)
            unassigned = sum(i.number("number_of_shards", 1) * i.number("number_of_replicas", 1)
                             for i in shown)
        total = primaries + unassigned
        return {"cluster_name": self.cluster_name,
                "status": "yellow" if unassigned else "green", "timed_out": False,
                "number_of_nodes": 1, "number_of_data_nodes": 1,
                "active_primary_shards": primaries, "active_shards": primaries,
                "relocating_shards": 0, "initializing_shards": 0,
                "unassigned_shards": unassigned, "unassigned_primary_shards": 0,
                "delayed_unassigned_shards": 0, "number_of_pending_tasks": 0,
                "number_of_in_flight_fetch": 0, "task_max_waiting_in_queue_millis": 0,
                "active_shards_percent_as_number": 100.0 * primaries / total if total else 100.0}

    def bulk(self, body: bytes, default_index: str | None) -> Doc:
        lines = [ln for ln in body.split(b"\n") if ln.strip()]
        items = []
        with self._lock:
            i = 0
            while i < len(lines):
                op, meta = next(iter(json.loads(lines[i]).items()))
                source = json.loads(lines[i + 1]) if op != "delete" else None
                i += 1 if op == "delete" else 2
                items.append({op: self._bulk_item(op, meta, source, default_index)})
            self._changed()
        errors = any(next(iter(it.values()))["status"] >= 300 for it in items)
        return {"took": 1, "errors": errors, "items": items}

    def _bulk_item(self, op: str, meta: Doc, source: Doc | None, default: str | None) -> Doc:
        name = meta.get("_index") or default
        index = self._index(name)
        doc_id = meta.get("_id")
        if doc_id is None:
            self._auto_id += 1
            doc_id = f"{secrets.token_hex(6)}-{self._auto_id}"
        base = {"_index": name, "_id": doc_id}
        if index.closed:
            return {**base, "status": 400, "error": {
                "type": "index_closed_exception", "reason": "closed", "index": name}}
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
        if op == "delete":
            if not exists:
                return {**base, "result": "not_found", "status": 404}
            del index.docs[doc_id]
            return {**base, "_version": index.versions[doc_id] + 1, "result": "deleted",
                    "status": 200}
        if op in ("index", "create"):
            index.docs[doc_id] = source or {}
            index.versions[doc_id] = index.versions.get(doc_id, 0) + 1
            self.index_total += 1
            result, status = ("updated", 200) if exists else ("created", 201)
            return {**base, "_version": index.versions[doc_id], "result": result,
                    "_shards": {"total": 1, "successful": 1, "failed": 0}, "status": status}
        return {**base, "status": 400, "error": {"type": "illegal_argument_exception",
                                                 "reason": f"unsupported op {op}"}}

    # --- HTTP -----------------------------------------------------------------------------

    def handle(self, req: common.Request) -> common.Response:
        if req.parts[:1] == ["standin"]:
            return common.json_response(200, self.debug_state())
        if not self.authenticated(req.basic_auth()):
            user = (req.basic_auth() or ("",))[0]
            error = EsError(401, "security_exception",
                            f"unable to authenticate user [{user}] for REST request "
                            f"[{req.path}]" if user else
                            f"missing authentication credentials for REST request [{req.path}]")
            response = self._json(401, error.body())
            response.headers["WWW-Authenticate"] = 'Basic realm="security", charset="UTF-8"'
            return self._record(req, response)
        try:
            if req.parts[-1:] == ["_bulk"] and req.method in ("POST", "PUT"):
                response = self._bulk(req)
            else:
                response = self._route(req)
        except EsError as exc:
            response = self._json(exc.status, exc.body())
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            response = self._json(400, EsError(400, "parsing_exception", repr(exc)).body())
        return self._record(req, response)

    def _record(self, req: common.Request, response: common.Response) -> common.Response:
        status = 0 if response.reset else response.status
        self.requests.append(Recorded(req.method, req.target, req.body, status, self.now()))
        return response

    @staticmethod
    def _json(status: int, payload: object) -> common.Response:
        return common.json_response(status, payload, PRODUCT_HEADER)

    def _ok(self, payload: object = None) -> common.Response:
        return self._json(200, {"acknowledged": True} if payload is None else payload)

    def _bulk(self, req: common.Request) -> common.Response:
        with self._lock:
            fault = next((k for k in ("reset", "unavailable", "lose_answers")
                          if self.faults[k] > 0), None)
            if fault:
                self.faults[fault] -= 1
        if fault == "reset":
            return common.Response(0, reset=True)
        if fault == "unavailable":
            return self._json(503, EsError(503, "unavailable_shards_exception",
                                           "primary shard is not active").body())
        answer = self.bulk(req.body, req.parts[0] if len(req.parts) == 2 else None)
        if fault == "lose_answers":
            return common.Response(0, reset=True)
        return self._json(200, answer)

    def _route(self, req: common.Request) -> common.Response:  # noqa: C901 (a route table)
        p, m = req.parts, req.method
        first = p[0] if p else ""
        if not p and m in ("GET", "HEAD"):
            return self._json(200, self.info())
        if first == "_cluster" and p[1:2] == ["health"]:
            return self._cluster_health(req)
        if first == "_cluster" and p[1:2] == ["settings"]:
            return self._json(200, {"persistent": {}, "transient": {}})
        if first == "_ilm" and p[1:2] == ["policy"]:
            return self._named(req, self.policies, p[2] if len(p) > 2 else None, "policy")
        if first == "_index_template":
            return self._named(req, self.templates, p[1] if len(p) > 1 else None, "template")
        if first == "_cat" and p[1:2] == ["indices"]:
            return self._cat_indices(req, p[2] if len(p) > 2 else "*")
        if first == "_nodes":
            return self._nodes(req)
        if first == "_security":
            return self._security(req)
        if first == "_snapshot":
            return self._snapshot(req)
        if p[-1:] in (["_search"], ["_count"]) and m in ("GET", "POST"):
            return self._search(req, p[0] if len(p) == 2 else "*", count=p[-1] == "_count")
        if len(p) == 2 and p[1] == "_settings":
            return self._settings(req, p[0])
        if len(p) == 2 and p[1] in ("_close", "_open") and m == "POST":
            with self._lock:
                for index in self.resolve(p[0], closed=True):
                    index.closed = p[1] == "_close"
                self._changed()
            return self._ok({"acknowledged": True, "shards_acknowledged": True})
        if p[-1:] == ["_refresh"]:
            return self._json(200, {"_shards": {"total": 1, "successful": 1, "failed": 0}})
        if len(p) >= 2 and p[1] in ("_doc", "_create"):
            return self._doc(req)
        if len(p) == 1 and not first.startswith("_"):
            return self._index_api(req, first)
        raise EsError(400, "illegal_argument_exception",
                      f"no handler found for uri [{req.path}] and method [{m}] "
                      "(not answered by the stand-in)")

    def info(self) -> Doc:
        return {"name": self.node_name, "cluster_name": self.cluster_name,
                "cluster_uuid": self.cluster_uuid,
                "version": {"number": VERSION, "build_flavor": "default",
                            "build_type": "docker", "build_hash": "standin",
                            "build_date": "1970-01-01T00:00:00.000Z", "build_snapshot": False,
                            # Not Lucene: nothing here runs it (valid semver for the exporter).
                            "lucene_version": "0.0.0-standin",
                            "minimum_wire_compatibility_version": "8.19.0",
                            "minimum_index_compatibility_version": "8.0.0"},
                "tagline": "You Know, for Search"}

    def _cluster_health(self, req: common.Request) -> common.Response:
        indices = self.resolve(req.parts[2], must_exist=True) if len(req.parts) > 2 else None
        wanted = req.arg("wait_for_status")
        deadline = time.monotonic() + _duration(req.arg("timeout") or "30s")
        rank = {"green": 0, "yellow": 1, "red": 2}
        while True:
            health = self.health(indices)
            if not wanted or rank[health["status"]] <= rank[wanted]:
                return self._json(200, health)
            if time.monotonic() >= deadline:
                return self._json(408, {**health, "timed_out": True})
            time.sleep(0.1)

    def _named(self, req: common.Request, store: dict[str, Doc], name: str | None,
               kind: str) -> common.Response:
        """ILM policies and index templates: PUT, GET (one, a pattern or all), DELETE."""
        what = "index template matching" if kind == "template" else "Lifecycle policy not found:"
        missing = EsError(404, "resource_not_found_exception", f"{what} [{name}]")
        if req.method == "PUT" and name:
            body = req.json()
            if not isinstance(body, dict) or (kind == "template" and "index_patterns" not in body):
                raise EsError(400, "action_request_validation_exception",
                              "Validation Failed: 1: index patterns are missing;")
            with self._lock:
                store[name] = body
                self._changed()
            return self._ok()
        if req.method == "DELETE" and name:
            with self._lock:
                if store.pop(name, None) is None:
                    raise missing
                self._changed()
            return self._ok()
        names = [n for n in store if name is None or fnmatch.fnmatchcase(n, name)]
        if name and not names:
            raise missing
        if kind == "template":
            return self._json(200, {"index_templates": [
                {"name": n, "index_template": store[n]} for n in names]})
        return self._json(200, {n: {"version": 1, "modified_date": "1970-01-01T00:00:00.000Z",
                                    **store[n]} for n in names})

    def _settings(self, req: common.Request, pattern: str) -> common.Response:
        if req.method == "PUT":
            with self._lock:
                targets = self.resolve(pattern, must_exist=req.arg("allow_no_indices") != "true")
                if not targets and req.arg("allow_no_indices") != "true":
                    raise EsError(404, "index_not_found_exception", f"no such index [{pattern}]")
                for index in targets:
                    index.settings.update(_flat(req.json() or {}))
                self._changed()
            return self._ok()
        flat = req.arg("flat_settings") == "true"
        return self._json(200, {i.name: {"settings": i.settings if flat else _nest(i.settings)}
                                for i in self.resolve(pattern)})

    def _index_api(self, req: common.Request, name: str) -> common.Response:
        with self._lock:
            if req.method == "PUT":
                if name in self.indices:
                    raise EsError(400, "resource_already_exists_exception",
                                  f"index [{name}/{self.indices[name].uuid}] already exists")
                self._create(name, req.json() or {})
                return self._ok({"acknowledged": True, "shards_acknowledged": True,
                                 "index": name})
            if req.method == "DELETE":
                for index in self.resolve(name):
                    del self.indices[index.name]
                self._changed()
                return self._ok()
            indices = self.resolve(name, closed=True)
            return self._json(200, {i.name: {"aliases": {}, "mappings": i.mappings,
                                             "settings": _nest(i.settings)} for i in indices})

    def _doc(self, req: common.Request) -> common.Response:
        name, kind = req.parts[0], req.parts[1]
        doc_id = req.parts[2] if len(req.parts) > 2 else None
        if req.method in ("PUT", "POST"):
            op = "create" if kind == "_create" or req.arg("op_type") == "create" else "index"
            with self._lock:
                item = self._bulk_item(op, {"_index": name, "_id": doc_id}, req.json(), None)
                self._changed()
            status = item.pop("status")
            if "error" in item:
                raise EsError(status, item["error"]["type"], item["error"]["reason"])
            return self._json(status, item)
        with self._lock:
            index = self.resolve(name)[0]
            if req.method == "DELETE":
                answer = self._bulk_item("delete", {"_index": name, "_id": doc_id}, None, None)
                self._changed()
                return self._json(answer.pop("status"), answer)
            if doc_id not in index.docs:
                return self._json(404, {"_index": name, "_id": doc_id, "found": False})
            return self._json(200, {"_index": name, "_id": doc_id, "found": True,
                                    "_version": index.versions[doc_id],
                                    "_source": index.docs[doc_id]})

    def _cat_indices(self, req: common.Request, pattern: str) -> common.Response:
        rows = []
        with self._lock:
            for i in self.resolve(pattern, must_exist=False, closed=True):
                health = "green" if i.number("number_of_replicas", 1) == 0 else "yellow"
                rows.append({"health": "" if i.closed else health,
                             "status": "close" if i.closed else "open", "index": i.name,
                             "uuid": i.uuid, "pri": str(i.number("number_of_shards", 1)),
                             "rep": str(i.number("number_of_replicas", 1)),
                             "docs.count": str(len(i.docs)), "docs.deleted": "0",
                             "store.size": str(len(json.dumps(i.docs))),
                             "creation.date": str(int(i.created * 1000)),
                             "creation.date.string": _iso(i.created)})
        columns = (req.arg("h") or "health,status,index,uuid,pri,rep,docs.count,docs.deleted,"
                   "store.size").split(",")
        rows = [{c: r.get(c) for c in columns} for r in rows]
        if req.arg("format") == "json":
            return self._json(200, rows)
        text = "".join(" ".join(str(r[c]) for c in columns) + "\n" for r in rows)
        return common.text_response(200, text, headers=PRODUCT_HEADER)

    def _node(self) -> Doc:
        return {"name": self.node_name, "transport_address": "127.0.0.1:9300",
                "host": self.node_name, "ip": "127.0.0.1", "version": VERSION,
                "roles": ["data", "ingest", "master", "remote_cluster_client", "transform"]}

    def _nodes(self, req: common.Request) -> common.Response:
        what = req.parts[-1] if len(req.parts) > 1 else ""
        header = {"_nodes": {"total": 1, "successful": 1, "failed": 0},
                  "cluster_name": self.cluster_name}
        if what == "settings":
            settings = {"cluster.name": self.cluster_name, "node.name": self.node_name,
                        "path.data": str(self.data_dir or ""), **self.settings}
            shown = settings if req.arg("flat_settings") == "true" else _nest(settings)
            return self._json(200, {**header, "nodes": {
                self.node_id: {**self._node(), "settings": shown}}})
        if what == "stats":
            return self._json(200, {**header, "nodes": {self.node_id: self.node_stats()}})
        return self._json(200, {**header, "nodes": {self.node_id: self._node()}})

    def node_stats(self) -> Doc:
        with self._lock:
            docs = sum(len(i.docs) for i in self.indices.values())
            index_total = self.index_total
        disk = os.statvfs(self.data_dir if self.data_dir and self.data_dir.exists() else "/")
        fs = {"path": str(self.data_dir or "/"), "mount": "/", "type": "overlay",
              "total_in_bytes": disk.f_blocks * disk.f_frsize,
              "free_in_bytes": disk.f_bfree * disk.f_frsize,
              "available_in_bytes": disk.f_bavail * disk.f_frsize}
        rss = _rss_bytes()
        heap_max = _heap_max(os.environ.get("ES_JAVA_OPTS", ""))
        return {**self._node(), "timestamp": int(self.now() * 1000),
                "indices": {"docs": {"count": docs, "deleted": 0},
                            "indexing": {"index_total": index_total, "index_time_in_millis": 0,
                                         "index_current": 0, "index_failed": 0,
                                         "delete_total": 0, "delete_time_in_millis": 0,
                                         "delete_current": 0}},
                "jvm": {"timestamp": int(self.now() * 1000),
                        "uptime_in_millis": int((time.time() - common.STARTED) * 1000),
                        "mem": {"heap_used_in_bytes": rss, "heap_committed_in_bytes": rss,
                                "heap_max_in_bytes": heap_max, "non_heap_used_in_bytes": 0,
                                "non_heap_committed_in_bytes": 0, "pools": {}},
                        "gc": {"collectors": {}}},
                "fs": {"timestamp": int(self.now() * 1000), "total": fs, "data": [fs]},
                "http": {"current_open": 1, "total_opened": 1}}

    def _security(self, req: common.Request) -> common.Response:
        p = req.parts
        if p[1:] == ["_authenticate"]:
            return self._json(200, {"username": "elastic", "roles": ["superuser"],
                                    "enabled": True, "authentication_type": "realm"})
        if p[-1:] == ["_password"] and req.method in ("PUT", "POST"):
            user = p[2] if len(p) == 4 else "elastic"
            if user != "elastic":
                raise EsError(404, "resource_not_found_exception", f"user [{user}] not found")
            password = (req.json() or {}).get("password", "")
            if len(password) < 6:
                raise EsError(400, "action_request_validation_exception",
                              "Validation Failed: 1: passwords must be at least [6] characters "
                              "long;")
            self.set_password(password)
            return self._json(200, {})
        raise EsError(400, "illegal_argument_exception",
                      f"no handler found for uri [{req.path}] and method [{req.method}]")

    # --- search ---------------------------------------------------------------------------

    def _search(self, req: common.Request, pattern: str, count: bool) -> common.Response:
        body = req.json() or {}
        if not isinstance(body, dict):
            raise EsError(400, "parsing_exception", "request body must be an object")
        for unsupported in ("aggs", "aggregations", "knn"):
            if unsupported in body:
                raise EsError(400, "parsing_exception",
                              f"[{unsupported}] is not answered by the stand-in")
        query = body.get("query") or {"match_all": {}}
        if req.arg("q"):
            field_, _, value = req.arg("q").partition(":")
            query = {"match_all": {}} if not value else {"term": {field_: value.strip('"')}}
        with self._lock:
            indices = self.resolve(pattern)
            for index in indices:
                if index.closed:
                    raise EsError(400, "index_closed_exception", f"closed [{index.name}]")
            hits = [(i.name, doc_id, doc) for i in indices for doc_id, doc in i.docs.items()
                    if _matches(doc, doc_id, query, self.now())]
        shards = {"total": len(indices), "successful": len(indices), "skipped": 0, "failed": 0}
        if count:
            return self._json(200, {"count": len(hits), "_shards": shards})
        sort = _sort_keys(body.get("sort"))
        for key, descending in reversed(sort):
            hits.sort(key=lambda h, k=key: _sortable(_values(h[2], k)), reverse=descending)
        start = int(body.get("from", req.arg("from") or 0))
        size = int(body.get("size", req.arg("size") or 10))
        page = []
        for name, doc_id, doc in hits[start:start + size]:
            hit = {"_index": name, "_id": doc_id, "_score": None if sort else 1.0,
                   "_source": doc}
            if sort:
                hit["sort"] = [(_values(doc, k) or [None])[0] for k, _ in sort]
            page.append(hit)
        return self._json(200, {"took": 1, "timed_out": False, "_shards": shards,
                                "hits": {"total": {"value": len(hits), "relation": "eq"},
                                         "max_score": None if sort or not hits else 1.0,
                                         "hits": page}})

    # --- snapshots ------------------------------------------------------------------------

    def _path_repo(self) -> list[Path]:
        raw = self.settings.get("path.repo", "").strip()
        if raw.startswith("["):
            entries = json.loads(raw)
        else:
            entries = [e for e in raw.split(",") if e.strip()]
        return [Path(os.path.normpath(e.strip())) for e in entries]

    def _repo_location(self, repo: str) -> Path:
        if repo not in self.repositories:
            raise EsError(404, "repository_missing_exception", f"[{repo}] missing")
        return Path(self.repositories[repo]["settings"]["location"])

    def _snapshots(self, repo: str) -> list[Doc]:
        location = self._repo_location(repo)
        found = []
        for path in sorted(location.glob(f"{SNAPSHOT_PREFIX}*.json")):
            meta = json.loads(path.read_text())
            meta.pop("data", None)
            found.append(meta)
        return found

    def _snapshot(self, req: common.Request) -> common.Response:
        p, m = req.parts, req.method
        if len(p) == 1:
            return self._json(200, self.repositories)
        repo = p[1]
        if len(p) == 2:
            if m in ("PUT", "POST"):
                return self._register(repo, req.json() or {})
            if m == "DELETE":
                with self._lock:
                    if self.repositories.pop(repo, None) is None:
                        raise EsError(404, "repository_missing_exception", f"[{repo}] missing")
                    self._changed()
                return self._ok()
            self._repo_location(repo)
            return self._json(200, {repo: self.repositories[repo]})
        snap = p[2]
        if len(p) == 4 and p[3] == "_restore" and m == "POST":
            return self._restore(repo, snap, req)
        if m in ("PUT", "POST"):
            return self._take(repo, snap, req)
        if m == "DELETE":
            path = self._repo_location(repo) / f"{SNAPSHOT_PREFIX}{snap}.json"
            if not path.exists():
                raise EsError(404, "snapshot_missing_exception", f"[{repo}:{snap}] is missing")
            path.unlink()
            return self._ok()
        snapshots = self._snapshots(repo)
        if snap not in ("_all", "*"):
            wanted = snap.split(",")
            snapshots = [s for s in snapshots
                         if any(fnmatch.fnmatchcase(s["snapshot"], w) for w in wanted)]
            if not snapshots and not any("*" in w for w in wanted):
                raise EsError(404, "snapshot_missing_exception", f"[{repo}:{snap}] is missing")
        return self._json(200, {"snapshots": snapshots, "total": len(snapshots),
                                "remaining": 0})

    def _register(self, repo: str, body: Doc) -> common.Response:
        if body.get("type") != "fs":
            raise EsError(500, "repository_exception",
                          f"[{repo}] repository type [{body.get('type')}] does not exist "
                          "(the stand-in has fs only)")
        location = (body.get("settings") or {}).get("location")
        if not location:
            raise EsError(500, "repository_exception", f"[{repo}] missing location")
        roots = self._path_repo()
        target = Path(location)
        if not target.is_absolute() and roots:
            target = roots[0] / target
        target = Path(os.path.normpath(target))
        if not any(target == r or r in target.parents for r in roots):
            because = " because this setting is empty" if not roots else ""
            raise EsError(500, "repository_exception",
                          f"[{repo}] location [{location}] doesn't match any of the locations "
                          f"specified by path.repo{because}")
        try:  # verification: the node writes into the location (ES: repository verification)
            target.mkdir(parents=True, exist_ok=True)
            probe = target / f"standin-verify-{secrets.token_hex(4)}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise EsError(500, "repository_verification_exception",
                          f"[{repo}] path [{target}] is not accessible on master node: {exc}"
                          ) from exc
        with self._lock:
            self.repositories[repo] = {"type": "fs", "settings": {
                **body.get("settings", {}), "location": str(target)}}
            self._changed()
        self.save()
        return self._ok()

    def _take(self, repo: str, snap: str, req: common.Request) -> common.Response:
        location = self._repo_location(repo)
        path = location / f"{SNAPSHOT_PREFIX}{snap}.json"
        if path.exists():
            raise EsError(400, "invalid_snapshot_name_exception",
                          f"[{repo}:{snap}] Invalid snapshot name [{snap}], snapshot with the "
                          "same name already exists")
        body = req.json() or {}
        started = self.now()
        with self._lock:
            indices = self.resolve(",".join(_as_list(body.get("indices", "*"))),
                                   must_exist=body.get("ignore_unavailable") is not True,
                                   closed=False)
            data = {i.name: i.dump() for i in indices}
        meta = {"snapshot": snap, "uuid": secrets.token_urlsafe(16)[:22], "repository": repo,
                "version": VERSION, "indices": sorted(data), "data_streams": [],
                "include_global_state": bool(body.get("include_global_state", True)),
                "state": "SUCCESS", "start_time": _iso(started),
                "start_time_in_millis": int(started * 1000), "end_time": _iso(self.now()),
                "end_time_in_millis": int(self.now() * 1000), "duration_in_millis": 0,
                "failures": [], "shards": {"total": len(data), "failed": 0,
                                           "successful": len(data)}}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**meta, "data": data}))
        tmp.replace(path)
        if req.arg("wait_for_completion") == "true":
            return self._json(200, {"snapshot": meta})
        return self._json(200, {"accepted": True})

    def _restore(self, repo: str, snap: str, req: common.Request) -> common.Response:
        path = self._repo_location(repo) / f"{SNAPSHOT_PREFIX}{snap}.json"
        if not path.exists():
            raise EsError(404, "snapshot_restore_exception",
                          f"[{repo}:{snap}] snapshot does not exist")
        stored = json.loads(path.read_text())
        body = req.json() or {}
        wanted = ",".join(_as_list(body.get("indices", "*")))
        names = [n for n in stored["data"]
                 if any(fnmatch.fnmatchcase(n, w) for w in wanted.split(","))]
        rename = body.get("rename_pattern")
        restored = []
        with self._lock:
            targets = {n: re.sub(rename, body.get("rename_replacement", ""), n) if rename else n
                       for n in names}
            for target in targets.values():
                current = self.indices.get(target)
                if current is not None and not current.closed:
                    raise EsError(500, "snapshot_restore_exception",
                                  f"[{repo}:{snap}/{stored['uuid']}] cannot restore index "
                                  f"[{target}] because an open index with same name already "
                                  "exists in the cluster. Either close or delete the existing "
                                  "index or restore the index under a different name by "
                                  "providing a rename pattern and replacement name")
            for source, target in targets.items():
                index = Index.load({**stored["data"][source], "name": target, "closed": False})
                self.indices[target] = index
                restored.append(target)
            self._changed()
        if req.arg("wait_for_completion") == "true":
            return self._json(200, {"snapshot": {
                "snapshot": snap, "indices": restored,
                "shards": {"total": len(restored), "failed": 0,
                           "successful": len(restored)}}})
        return self._json(200, {"accepted": True})

    # --- debug ----------------------------------------------------------------------------

    def debug_state(self) -> Doc:
        with self._lock:
            return {"indices": {i.name: {"docs": len(i.docs), "closed": i.closed,
                                         "settings": i.settings}
                                for i in self.indices.values()},
                    "templates": sorted(self.templates), "policies": sorted(self.policies),
                    "repositories": self.repositories, "index_total": self.index_total,
                    "password_changed": self.password_hash is not None,
                    "health": self.health()["status"]}


# --- query DSL -----------------------------------------------------------------------------

def _values(doc: Any, field_: str) -> list[Any]:
    """Every value of a field in a document: dotted paths through objects, lists flattened."""
    if not isinstance(doc, dict):
        return []
    if field_ in doc:
        value = doc[field_]
        return [v for v in (value if isinstance(value, list) else [value]) if v is not None]
    words = field_.split(".")
    for cut in range(len(words) - 1, 0, -1):  # "a.b.c": key "a.b" then "c", key "a" then "b.c"
        head = ".".join(words[:cut])
        if head in doc:
            inner = doc[head]
            rest = ".".join(words[cut:])
            return [v for item in (inner if isinstance(inner, list) else [inner])
                    for v in _values(item, rest)]
    return []


def _tokens(value: Any) -> set[str]:
    return set(re.findall(r"\w+", str(value).lower()))


def _epoch(value: Any, now: float) -> float | None:
    """A date as epoch seconds: ISO 8601 (nanoseconds too), epoch_millis, now[+-]N<unit>."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value / 1000.0
    text = str(value).strip()
    if text.startswith("now"):
        m = re.fullmatch(r"now(?:([+-])(\d+)([smhdwMy]))?(?:/\w)?", text)
        if not m:
            return None
        if not m.group(1):
            return now
        seconds = int(m.group(2)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800,
                                     "M": 2592000, "y": 31536000}[m.group(3)]
        return now + seconds if m.group(1) == "+" else now - seconds
    if text.isdigit():
        return int(text) / 1000.0
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d(?::\d\d)?)(?:[.,](\d+))?)?"
                     r"(Z|[+-]\d\d:?\d\d)?", text)
    if not m:
        return None
    stamp = datetime.fromisoformat(f"{m.group(1)}T{m.group(2) or '00:00:00'}")
    zone = m.group(4) or "Z"
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[-2:])
        stamp = stamp.replace(tzinfo=UTC) - sign * (
            datetime(1970, 1, 1, hours, minutes) - datetime(1970, 1, 1))
    else:
        stamp = stamp.replace(tzinfo=UTC)
    fraction = float("0." + m.group(3)) if m.group(3) else 0.0
    return stamp.timestamp() + fraction


def _compare(value: Any, bound: Any, now: float) -> float | None:
    """value - bound as numbers, or as dates when either side is a date string."""
    if isinstance(value, int | float) and isinstance(bound, int | float):
        return float(value) - float(bound)
    left, right = _epoch(value, now), _epoch(bound, now)
    if isinstance(value, int | float) and right is not None:
        left = value / 1000.0
    if left is None or right is None:
        return None
    return left - right


def _matches(doc: Doc, doc_id: str, query: Doc, now: float) -> bool:  # noqa: C901
    if len(query) != 1:
        raise EsError(400, "parsing_exception", f"query must have one key: {list(query)}")
    kind, body = next(iter(query.items()))
    if kind == "match_all":
        return True
    if kind == "match_none":
        return False
    if kind == "bool":
        must = _as_list(body.get("must", [])) + _as_list(body.get("filter", []))
        should = _as_list(body.get("should", []))
        must_not = _as_list(body.get("must_not", []))
        if not all(_matches(doc, doc_id, q, now) for q in must):
            return False
        if any(_matches(doc, doc_id, q, now) for q in must_not):
            return False
        needed = int(body.get("minimum_should_match", 0 if must else 1 if should else 0))
        return sum(_matches(doc, doc_id, q, now) for q in should) >= needed
    if kind == "ids":
        return doc_id in body.get("values", [])
    if kind == "exists":
        return bool(_values(doc, body["field"]))
    field_, spec = next(iter(body.items()))
    values = _values(doc, field_)
    if kind == "term":
        wanted = spec.get("value") if isinstance(spec, dict) else spec
        return any(v == wanted or str(v) == str(wanted) for v in values)
    if kind == "terms":
        return any(v in spec or str(v) in map(str, spec) for v in values)
    if kind in ("match", "match_phrase"):
        text = spec.get("query") if isinstance(spec, dict) else spec
        if kind == "match_phrase":
            return any(str(text).lower() in str(v).lower() for v in values)
        wanted = _tokens(text)
        return any(v == text or _tokens(v) & wanted for v in values)
    if kind == "range":
        checks = {"gte": lambda d: d >= 0, "gt": lambda d: d > 0,
                  "lte": lambda d: d <= 0, "lt": lambda d: d < 0}
        for value in values:
            diffs = {op: _compare(value, spec[op], now) for op in checks if op in spec}
            if all(d is not None and checks[op](d) for op, d in diffs.items()):
                return True
        return False
    raise EsError(400, "parsing_exception", f"unknown query [{kind}] (stand-in)")


def _sort_keys(spec: Any) -> list[tuple[str, bool]]:
    keys = []
    for item in _as_list(spec or []):
        if isinstance(item, str):
            name, _, order = item.partition(":")
            keys.append((name, order == "desc"))
        else:
            name, how = next(iter(item.items()))
            order = how.get("order", "asc") if isinstance(how, dict) else how
            keys.append((name, order == "desc"))
    return [(k, d) for k, d in keys if k not in ("_score", "_doc")]


def _sortable(values: list[Any]) -> tuple[int, Any]:
    if not values:
        return (2, "")
    value = values[0]
    epoch = _epoch(value, 0) if isinstance(value, str) else None
    if epoch is not None:
        return (0, epoch)
    if isinstance(value, int | float):
        return (0, float(value))
    return (1, str(value))


# --- helpers -------------------------------------------------------------------------------

def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str) and "," in value:
        return value.split(",")
    return value if isinstance(value, list) else [value]


def _flat(settings: Doc, prefix: str = "") -> dict[str, Any]:
    """{"index": {"lifecycle": {"name": x}}} -> {"index.lifecycle.name": x}, like ES does."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= _flat(value, full + ".")
        else:
            out[full] = value if isinstance(value, str) else json.dumps(value).strip('"')
    if not prefix:  # settings given without the "index." prefix get it
        out = {k if k.startswith("index.") else f"index.{k}": v for k, v in out.items()}
    return out


def _nest(flat: dict[str, Any]) -> Doc:
    out: Doc = {}
    for key, value in sorted(flat.items()):
        node = out
        *heads, last = key.split(".")
        for head in heads:
            nxt = node.setdefault(head, {})
            if not isinstance(nxt, dict):  # "a": 1 and "a.b": 2 both set: keep the flat key
                node[key] = value
                break
            node = nxt
        else:
            node[last] = value
    return out


def _duration(text: str) -> float:
    units = {"nanos": 1e-9, "micros": 1e-6, "ms": 0.001, "s": 1, "m": 60, "h": 3600,
             "d": 86400}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    raise ValueError(f"unsupported duration {text!r}")


def _digest(salt: str, password: str) -> str:
    return hashlib.sha256(f"{salt}:{password}".encode()).hexdigest()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _rss_bytes() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _heap_max(java_opts: str) -> int:
    m = re.search(r"-Xmx(\d+)([kmgKMG]?)", java_opts)
    if not m:
        return 0
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2).lower()]


# --- the program ---------------------------------------------------------------------------

def node_settings(environ: dict[str, str]) -> dict[str, str]:
    """Elasticsearch's settings from the environment: the dotted names (the image's
    docker-entrypoint turns those into -E options)."""
    return {k: v for k, v in environ.items() if re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", k)}


def main(argv: list[str]) -> int:
    settings = node_settings(dict(os.environ))
    for arg in argv:  # -Ekey=value, as the real binary takes them
        if arg.startswith("-E") and "=" in arg:
            key, _, value = arg[2:].partition("=")
            settings[key] = value
    security = settings.get("xpack.security.enabled", "true") != "false"
    password = os.environ.get("ELASTIC_PASSWORD")
    if security and not password:
        common.log(NAME, "ELASTIC_PASSWORD is not set: no password authenticates until one is "
                   "set (the real image generates one)")
    data_dir = settings.get("path.data", "/usr/share/elasticsearch/data")
    try:  # like the node: a data path it cannot write is a start-up failure
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        probe = Path(data_dir) / ".standin-write-check"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        common.fail(NAME, f"data path [{data_dir}] is not writable: {exc}")
    es = ElasticsearchStandIn(port=common.port("http", int(settings.get("http.port", 9200))),
                              password=password, host=common.bind_host(), data_dir=data_dir,
                              settings=settings, security=security)
    poll = _duration(settings.get("indices.lifecycle.poll_interval", "10m"))

    def housekeeping() -> None:
        last_ilm = time.monotonic()
        while True:
            time.sleep(1)
            es.save()
            if time.monotonic() - last_ilm >= poll:
                last_ilm = time.monotonic()
                for name in es.run_ilm():
                    common.log(NAME, f"ILM deleted index [{name}]")

    threading.Thread(target=housekeeping, daemon=True).start()
    common.log(NAME, f"cluster [{es.cluster_name}] node [{es.node_name}] data [{data_dir}] "
               f"security [{security}]")
    return common.run_until_signal(NAME, [es._server], [es.save])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
