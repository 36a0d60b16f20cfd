"""Log lines as Docker's fluentd logging driver sends them (forward protocol, message mode).

Facts from moby docker-v29.7.2:
* daemon/logger/fluentd/fluentd.go ``Log``: the record is a map of strings ``container_id``,
  ``container_name``, ``source`` (stdout|stderr) and ``log`` (the line without its newline);
  a line split by the daemon adds ``partial_message`` "true", ``partial_id``,
  ``partial_ordinal`` ("1", "2", ...) and ``partial_last`` ("true"|"false").
* daemon/logger/copier.go: lines are split every 16 KiB (``defaultBufSize``), and every
  piece carries the timestamp of the first one.
* vendor/github.com/fluent/fluent-logger-golang/fluent/proto.go: each event is the msgpack
  tuple ``[tag, time, record, option]`` (option an empty map unless acks are requested);
  ``time`` is whole seconds (int64) unless ``fluentd-sub-second-precision`` is true, then an
  EventTime: extension type 0 with 4 bytes of seconds and 4 of nanoseconds, big-endian.
"""

from __future__ import annotations

import secrets
import socket
import struct
import time
from collections.abc import Iterable, Iterator

import msgpack

PARTIAL_SPLIT = 16 * 1024  # copier.go defaultBufSize


def event_time(ts: float) -> msgpack.ExtType:
    sec = int(ts)
    nsec = round((ts - sec) * 1e9) % 1_000_000_000
    return msgpack.ExtType(0, struct.pack(">II", sec, nsec))


def records(
    line: str, container: str, container_id: str, source: str = "stdout"
) -> Iterator[dict[str, str]]:
    """The record(s) the driver sends for one line: one, or one per 16 KiB piece."""
    base = {"container_id": container_id, "container_name": "/" + container, "source": source}
    data = line.encode()
    if len(data) <= PARTIAL_SPLIT:
        yield {**base, "log": line}
        return
    pieces = [data[i:i + PARTIAL_SPLIT] for i in range(0, len(data), PARTIAL_SPLIT)]
    partial_id = secrets.token_hex(32)
    for ordinal, piece in enumerate(pieces, start=1):
        yield {**base, "log": piece.decode(errors="ignore"), "partial_message": "true",
               "partial_id": partial_id, "partial_ordinal": str(ordinal),
               "partial_last": "true" if ordinal == len(pieces) else "false"}


def encode(tag: str, ts: float, record: dict[str, str], sub_second: bool) -> bytes:
    when = event_time(ts) if sub_second else int(ts)
    return msgpack.packb([tag, when, record, {}], use_bin_type=True)


class DockerFluentdDriver:
    """One container's log stream into a forward input (TCP), like the daemon's driver."""

    def __init__(self, host: str, port: int, container: str, sub_second: bool = True) -> None:
        self.container = container
        self.container_id = secrets.token_hex(32)
        self.sub_second = sub_second
        self.sock = socket.create_connection((host, port), timeout=10)

    def send(self, lines: Iterable[str], source: str = "stdout", ts: float | None = None) -> int:
        """Send lines; return how many events went out (split lines count once per piece)."""
        events = 0
        for line in lines:
            when = time.time() if ts is None else ts
            for rec in records(line, self.container, self.container_id, source):
                self.sock.sendall(encode(self.container, when, rec, self.sub_second))
                events += 1
        return events

    def close(self) -> None:
        self.sock.close()
