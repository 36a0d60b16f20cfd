#!/usr/bin/python3
"""Fluent Bit stand-in: the forward input Docker's fluentd log driver dials, the HTTP server's
health and metrics, and the log_to_metrics counter the bundle reads.

Run as the image runs Fluent Bit: ``python3 fluent_bit.py -c /fluent-bit/etc/fluent-bit.yaml``.
Ports from that file: service.http_port (2020), the forward input's port (24224), the
prometheus_exporter output's port (2021). Needs python3-msgpack and python3-yaml.

What it answers like Fluent Bit 5.1.1 (fluent/fluent-bit@v5.1.1):

* Forward protocol on the forward input's port (plugins/in_forward/fw_prot.c; Fluentd's
  "Forward Protocol Specification v1"): Message ``[tag, time, record(, option)]``, Forward
  ``[tag, [[time, record], ...](, option)]``, PackedForward ``[tag, bin(, option)]`` and its
  gzip-compressed form (option compressed=gzip); time as an integer or an EventTime (ext type
  0: seconds and nanoseconds, big-endian); ``option.chunk`` is answered with ``{"ack": chunk}``.
  The input's tag_prefix is put in front of the tag.
* The configured filters of fluent-bit/fluent-bit.yaml, as far as the records' fields go:
  multiline (mode partial_message: Docker's 16 KiB pieces joined by partial_id), parser (json,
  key_name, reserve_data, preserve_key), modify (conditions Key_exists/Key_does_not_exist,
  rename, add with ${VAR} from the env section or the environment), grep (regex), and
  log_to_metrics (counter mode: <namespace>_<subsystem>_<name>, labels from add_label) served
  by the prometheus_exporter output on its port at /metrics (apollonia_log_lines_total).
* HTTP server (src/http_server/api/v1/health.c, api/v2/metrics.c): ``GET /api/v1/health`` 200
  "ok", ``GET /api/v2/metrics/prometheus`` and ``/api/v1/metrics/prometheus`` with the names of
  tests/fixtures/fluent-bit-5.1.1/api-v2-metrics-prometheus.txt: fluentbit_input_records_total
  and fluentbit_input_bytes_total{name="forward.0"} counting what arrived (the other inputs 0),
  and per output (es.0, prometheus_exporter.1) fluentbit_output_proc_records_total,
  _proc_bytes_total, _errors_total, _retries_total, _retries_failed_total,
  _dropped_records_total at 0, fluentbit_output_chunk_available_capacity_percent 100,
  fluentbit_storage_* chunks 0, fluentbit_uptime, fluentbit_build_info.

What it does NOT prove: nothing is shipped to Elasticsearch (the es output's counters stay 0
and no document arrives: read the records at /standin/records instead), no disk buffering,
retries, backpressure or storage limits, no tail input, no TLS or shared-key handshake, no
flush_ms timeout for a partial message whose last piece never comes, and the health endpoint
never turns 500.

Debug endpoint on the HTTP port: ``GET /standin/records`` (the records after the filters, with
tag and time; ``?raw=1`` as received; ``?tag=<glob>``, ``?limit=N``).
"""

from __future__ import annotations

import collections
import fnmatch
import gzip
import json
import os
import re
import socketserver
import struct
import sys
import threading
import time
from typing import Any

try:  # /standin/ in the image: the helpers sit next to this file
    import standin_common as common
except ImportError:  # imported as dev.engine.standins.fluent_bit (offline tests)
    from dev.engine.standins import standin_common as common

NAME = "fluent-bit"
VERSION = "5.1.1"
KEEP = 100_000


def event_time(value: Any) -> float:
    """Forward protocol time: integer seconds or EventTime (ext 0, >II seconds, nanoseconds)."""
    code = getattr(value, "code", None)
    if code == 0 and len(value.data) == 8:
        seconds, nanos = struct.unpack(">II", value.data)
        return seconds + nanos / 1e9
    if hasattr(value, "to_unix"):  # msgpack Timestamp (ext -1)
        return value.to_unix()
    return float(value)


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value


def entries(message: list[Any]) -> tuple[str, list[tuple[float, dict]], dict]:
    """(tag, [(time, record)], option) of one forward-protocol message, whatever its mode."""
    import msgpack  # python3-msgpack

    tag = _text(message[0])
    second = message[1]
    if isinstance(second, list):  # Forward mode
        option = message[2] if len(message) > 2 else {}
        return tag, [(event_time(t), _text(r)) for t, r in second], option or {}
    if isinstance(second, bytes | str):  # PackedForward (gzip: CompressedPackedForward)
        option = message[2] if len(message) > 2 else {}
        data = second.encode() if isinstance(second, str) else second
        if (option or {}).get("compressed") == "gzip":
            data = gzip.decompress(data)
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(data)
        return tag, [(event_time(t), _text(r)) for t, r in unpacker], option or {}
    option = message[3] if len(message) > 3 else {}  # Message mode
    return tag, [(event_time(second), _text(message[2]))], option or {}


# --- the configured filters ------------------------------------------------------------------

def _pairs(value: Any) -> list[tuple[str, str]]:
    """'key value' entries of a filter property (a string or a list of them)."""
    items = value if isinstance(value, list) else [value] if value else []
    out = []
    for item in items:
        key, _, rest = str(item).strip().partition(" ")
        out.append((key, rest.strip()))
    return out


class Pipeline:
    def __init__(self, config: dict[str, Any]) -> None:
        pipeline = config.get("pipeline") or {}
        self.env = {k: str(v) for k, v in (config.get("env") or {}).items()}
        self.filters = pipeline.get("filters") or []
        self.partials: dict[str, list[dict]] = {}
        self.counters: collections.Counter[tuple[str, tuple]] = collections.Counter()
        self.counter_help: dict[str, str] = {}

    def expand(self, text: str) -> str:
        return re.sub(r"\$\{(\w+)\}",
                      lambda m: self.env.get(m.group(1), os.environ.get(m.group(1), "")), text)

    def run(self, tag: str, record: dict[str, Any]) -> dict[str, Any] | None:
        for f in self.filters:
            if not fnmatch.fnmatchcase(tag, str(f.get("match", "*"))):
                continue
            name = f.get("name")
            if name == "multiline" and f.get("mode") == "partial_message":
                record = self._join(record)
            elif name == "parser":
                record = self._parse(f, record)
            elif name == "modify":
                record = self._modify(f, record)
            elif name == "grep":
                record = self._grep(f, record)
            elif name == "log_to_metrics":
                self._count(f, record)
            if record is None:
                return None
        return record

    def _join(self, record: dict[str, Any]) -> dict[str, Any] | None:
        if record.get("partial_message") != "true":
            return record
        pieces = self.partials.setdefault(record.get("partial_id", ""), [])
        pieces.append(record)
        if record.get("partial_last") != "true":
            return None
        del self.partials[record.get("partial_id", "")]
        pieces.sort(key=lambda r: int(r.get("partial_ordinal", 0)))
        joined = {k: v for k, v in pieces[0].items() if not k.startswith("partial_")}
        joined["log"] = "".join(str(p.get("log", "")) for p in pieces)
        return joined

    @staticmethod
    def _parse(f: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        key = f.get("key_name", "log")
        try:
            parsed = json.loads(record.get(key, ""))
        except (TypeError, ValueError):
            return record
        if not isinstance(parsed, dict):
            return record
        base = dict(record) if f.get("reserve_data") else {}
        if not f.get("preserve_key"):
            base.pop(key, None)
        return {**base, **parsed}

    def _modify(self, f: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        for kind, key in _pairs(f.get("condition")):
            if kind == "Key_exists" and key not in record:
                return record
            if kind == "Key_does_not_exist" and key in record:
                return record
        record = dict(record)
        for old, new in _pairs(f.get("rename")):
            if old in record and new not in record:
                record[new] = record.pop(old)
        for key, value in _pairs(f.get("add")):
            record.setdefault(key, self.expand(value))
        return record

    @staticmethod
    def _grep(f: dict[str, Any], record: dict[str, Any]) -> dict[str, Any] | None:
        for key, pattern in _pairs(f.get("regex")):
            if key not in record or not re.search(pattern, str(record[key])):
                return None
        for key, pattern in _pairs(f.get("exclude")):
            if key in record and re.search(pattern, str(record[key])):
                return None
        return record

    def _count(self, f: dict[str, Any], record: dict[str, Any]) -> None:
        parts = [f.get("metric_namespace"), f.get("metric_subsystem") or f.get("metric_mode"),
                 f.get("metric_name")]
        name = "_".join(str(p) for p in parts if p)
        labels = tuple((label, str(record.get(ref.lstrip("$"), "")))
                       for label, ref in _pairs(f.get("add_label")))
        self.counter_help[name] = str(f.get("metric_description", ""))
        self.counters[(name, labels)] += 1

    def exposition(self) -> str:
        by_name: dict[str, list[common.Sample]] = {}
        for (name, labels), value in sorted(self.counters.items()):
            by_name.setdefault(name, []).append((dict(labels), value))
        return common.exposition((n, "counter", self.counter_help[n], s)
                                 for n, s in by_name.items())


# --- the program -----------------------------------------------------------------------------

class FluentBit:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.pipeline = Pipeline(config)
        self.lock = threading.Lock()
        self.raw: collections.deque[dict] = collections.deque(maxlen=KEEP)
        self.records: collections.deque[dict] = collections.deque(maxlen=KEEP)
        inputs = (config.get("pipeline") or {}).get("inputs") or []
        outputs = (config.get("pipeline") or {}).get("outputs") or []
        filters = (config.get("pipeline") or {}).get("filters") or []
        self.input_names = [f"{i['name']}.{n}" for n, i in enumerate(inputs)]
        if (config.get("service") or {}).get("storage.path"):
            self.input_names.append(f"storage_backlog.{len(inputs)}")
        self.input_names += [f"emitter_for_{f['name']}.{n}" for n, f in enumerate(filters)
                             if f.get("name") in ("multiline", "log_to_metrics")]
        self.output_names = [f"{o['name']}.{n}" for n, o in enumerate(outputs)]
        forward = next(((n, i) for n, i in enumerate(inputs) if i.get("name") == "forward"),
                       (0, {}))
        self.forward_name = f"forward.{forward[0]}"
        self.tag_prefix = str(forward[1].get("tag_prefix", ""))
        self.forward_port = common.port("forward", int(forward[1].get("port", 24224)))
        self.http_port = common.port("http", int((config.get("service") or {}).get(
            "http_port", 2020)))
        exporter = next((o for o in outputs if o.get("name") == "prometheus_exporter"), {})
        self.exporter_port = common.port("exporter", int(exporter.get("port", 2021)))
        self.input_records: collections.Counter[str] = collections.Counter()
        self.input_bytes: collections.Counter[str] = collections.Counter()

    def take(self, message: list[Any], size: int) -> dict | None:
        tag, events, option = entries(message)
        tag = self.tag_prefix + tag
        with self.lock:
            self.input_records[self.forward_name] += len(events)
            self.input_bytes[self.forward_name] += size
            for when, record in events:
                self.raw.append({"tag": tag, "time": when, "record": record})
                processed = self.pipeline.run(tag, record)
                if processed is not None:
                    self.records.append({"tag": tag, "time": when, "record": processed})
        chunk = option.get("chunk") if isinstance(option, dict) else None
        return {"ack": chunk} if chunk else None

    def http(self, req: common.Request) -> common.Response:
        if req.path == "/api/v1/health":
            return common.text_response(200, "ok\n")
        if req.path in ("/api/v2/metrics/prometheus", "/api/v1/metrics/prometheus"):
            return common.text_response(200, self.metrics(), common.PROMETHEUS_TEXT)
        if req.path == "/standin/records":
            with self.lock:
                rows = list(self.raw if req.arg("raw") else self.records)
            pattern = req.arg("tag")
            if pattern:
                rows = [r for r in rows if fnmatch.fnmatchcase(r["tag"], pattern)]
            return common.json_response(200, rows[-int(req.arg("limit") or len(rows) or 1):])
        if req.path == "/":
            return common.json_response(200, {"fluent-bit": {
                "version": VERSION, "edition": "Community (stand-in)", "flags": []}})
        return common.text_response(404, "")

    def exporter(self, req: common.Request) -> common.Response:
        if req.path != "/metrics":
            return common.text_response(404, "")
        with self.lock:
            text = self.pipeline.exposition()
        return common.text_response(200, text, common.PROMETHEUS_TEXT)

    def metrics(self) -> str:
        host = {"hostname": os.environ.get("HOSTNAME", "standin")}
        with self.lock:
            records, size = dict(self.input_records), dict(self.input_bytes)
        inputs = [{"name": n} for n in self.input_names]
        outputs = [{"name": n} for n in self.output_names]
        zero_out = [(o, 0) for o in outputs]
        families = [
            ("fluentbit_uptime", "counter", "Number of seconds that Fluent Bit has been running.",
             [(host, int(time.time() - common.STARTED))]),
            ("fluentbit_input_bytes_total", "counter", "Number of input bytes.",
             [(i, size.get(i["name"], 0)) for i in inputs]),
            ("fluentbit_input_records_total", "counter", "Number of input records.",
             [(i, records.get(i["name"], 0)) for i in inputs]),
            ("fluentbit_output_proc_records_total", "counter",
             "Number of processed output records.", zero_out),
            ("fluentbit_output_proc_bytes_total", "counter", "Number of processed output bytes.",
             zero_out),
            ("fluentbit_output_errors_total", "counter", "Number of output errors.", zero_out),
            ("fluentbit_output_retries_total", "counter", "Number of output retries.", zero_out),
            ("fluentbit_output_retries_failed_total", "counter",
             "Number of abandoned batches because the maximum number of re-tries was reached.",
             zero_out),
            ("fluentbit_output_dropped_records_total", "counter",
             "Number of dropped records.", zero_out),
            ("fluentbit_process_start_time_seconds", "gauge",
             "Seconds since the epoch when Fluent Bit started.", [(host, int(common.STARTED))]),
            ("fluentbit_build_info", "gauge", "Build version information.",
             [({**host, "version": VERSION, "os": "linux"}, int(common.STARTED))]),
        ]
        families += [(f"fluentbit_storage_{n}", "gauge", f"Total number of {n}.", [({}, 0)])
                     for n in ("chunks", "mem_chunks", "fs_chunks", "fs_chunks_up",
                               "fs_chunks_down")]
        families.append(("fluentbit_output_chunk_available_capacity_percent", "gauge",
                         "Available chunk capacity (percent)", [(o, 100) for o in outputs]))
        return common.exposition(families)


def forward_server(fb: FluentBit, host: str) -> socketserver.ThreadingTCPServer:
    import msgpack

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
            while True:
                data = self.request.recv(65536)
                if not data:
                    return
                unpacker.feed(data)
                for message in unpacker:
                    try:
                        ack = fb.take(message, len(msgpack.packb(message, use_bin_type=True)))
                    except (IndexError, TypeError, ValueError, OSError) as exc:
                        common.log(NAME, f"[in_forward] invalid message dropped: {exc!r}")
                        continue
                    if ack:
                        self.request.sendall(msgpack.packb(ack, use_bin_type=True))

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer((host, fb.forward_port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.2,), daemon=True).start()
    common.log(NAME, f"[in_forward] listening on {host}:{fb.forward_port}")
    return server


def main(argv: list[str]) -> int:
    import yaml  # python3-yaml

    path = "/fluent-bit/etc/fluent-bit.conf"
    for i, arg in enumerate(argv):
        if arg in ("-c", "--config") and i + 1 < len(argv):
            path = argv[i + 1]
    if not path.endswith((".yaml", ".yml")):
        common.fail(NAME, f"{path}: the stand-in reads the YAML format only")
    try:
        with open(path) as fh:
            config = yaml.safe_load(fh) or {}
    except OSError as exc:
        common.fail(NAME, f"cannot open configuration file {path}: {exc}")
    fb = FluentBit(config)
    host = common.bind_host()
    servers = [forward_server(fb, host),
               common.http_server(NAME, fb.http, fb.http_port, host),
               common.http_server(NAME, fb.exporter, fb.exporter_port, host)]
    return common.run_until_signal(NAME, servers)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
