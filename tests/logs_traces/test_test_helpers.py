"""The two helpers the real-binary runs use answer like the real thing.

* es_standin.py against the Elasticsearch Bulk API reference (per-item status and result,
  the errors flag, 409 on create of an existing id, 200 "updated" on index) and the faults.
* docker_fluentd.py against moby docker-v29.7.2 (daemon/logger/fluentd/fluentd.go,
  daemon/logger/copier.go, fluent-logger-golang proto.go).
"""

from __future__ import annotations

import json
import socket
import struct

import httpx
import msgpack
import pytest

from tests.logs_traces import docker_fluentd
from tests.logs_traces.es_standin import ElasticsearchStandIn


def ndjson(*pairs: tuple[dict, dict]) -> bytes:
    return ("".join(json.dumps(a) + "\n" + json.dumps(d) + "\n" for a, d in pairs)).encode()


@pytest.fixture
def es():
    server = ElasticsearchStandIn(password="pw")
    yield server
    server.stop()


def post(es: ElasticsearchStandIn, body: bytes) -> httpx.Response:
    return httpx.post(f"{es.url}/_bulk", content=body, auth=("elastic", "pw"),
                      headers={"Content-Type": "application/x-ndjson"}, timeout=5)


def test_bulk_answers_per_item_like_elasticsearch(es):
    doc = {"message": "a"}
    first = post(es, ndjson(({"create": {"_index": "i", "_id": "1"}}, doc),
                            ({"index": {"_index": "i", "_id": "2"}}, doc))).json()
    assert first["errors"] is False
    assert [next(iter(i.values()))["status"] for i in first["items"]] == [201, 201]
    again = post(es, ndjson(({"create": {"_index": "i", "_id": "1"}}, doc),
                            ({"index": {"_index": "i", "_id": "2"}}, doc))).json()
    assert again["errors"] is True
    create, index = (next(iter(i.values())) for i in again["items"])
    assert create["status"] == 409
    assert create["error"]["type"] == "version_conflict_engine_exception"
    assert index["status"] == 200 and index["result"] == "updated" and index["_version"] == 2


def test_rejected_items_and_auth(es):
    es.reject = lambda d: d.get("bad") is True
    answer = post(es, ndjson(({"index": {"_index": "i"}}, {"ok": 1}),
                             ({"index": {"_index": "i"}}, {"bad": True}))).json()
    assert answer["errors"] is True
    assert [next(iter(i.values()))["status"] for i in answer["items"]] == [201, 400]
    assert httpx.post(f"{es.url}/_bulk", content=b"", timeout=5).status_code == 401


def test_faults_unavailable_lost_answer_and_reset(es):
    body = ndjson(({"index": {"_index": "i", "_id": "x"}}, {"m": 1}))
    es.faults["unavailable"] = 1
    assert post(es, body).status_code == 503 and es.documents() == []
    es.faults["lose_answers"] = 1
    with pytest.raises(httpx.TransportError):
        post(es, body)
    assert es.documents() == [{"m": 1}], "indexed, then the answer was lost"
    es.faults["reset"] = 1
    with pytest.raises(httpx.TransportError):
        post(es, ndjson(({"index": {"_index": "i", "_id": "y"}}, {"m": 2})))
    assert len(es.documents()) == 1, "reset before indexing"
    assert [r.status for r in es.bulk_requests()] == [503, 0, 0]


def test_docker_fluentd_message_shape():
    event = msgpack.unpackb(docker_fluentd.encode("api-1", 1700000000.25, {"log": "x"}, True),
                            raw=False)
    tag, when, record, option = event  # 4-tuple: fluent-logger-golang Message/MessageExt
    assert (tag, record, option) == ("api-1", {"log": "x"}, {})
    assert when.code == 0 and struct.unpack(">II", when.data) == (1700000000, 250000000)
    whole = msgpack.unpackb(docker_fluentd.encode("api-1", 1700000000.9, {}, False))
    assert whole[1] == 1700000000, "whole seconds without fluentd-sub-second-precision"


def test_docker_splits_long_lines_into_partial_messages():
    line = "y" * (2 * 16 * 1024 + 5)
    parts = list(docker_fluentd.records(line, "api-1", "c" * 64))
    assert [p["partial_ordinal"] for p in parts] == ["1", "2", "3"]
    assert [p["partial_last"] for p in parts] == ["false", "false", "true"]
    assert len({p["partial_id"] for p in parts}) == 1
    assert "".join(p["log"] for p in parts) == line
    assert parts[0]["container_name"] == "/api-1" and parts[0]["source"] == "stdout"
    assert list(docker_fluentd.records("short", "api-1", "c"))[0].keys() == {
        "container_id", "container_name", "source", "log"}


def test_driver_sends_over_tcp():
    with socket.create_server(("127.0.0.1", 0)) as server:
        driver = docker_fluentd.DockerFluentdDriver("127.0.0.1", server.getsockname()[1],
                                                    "api-1")
        conn, _ = server.accept()
        assert driver.send(["one", "two"]) == 2
        driver.close()
        data = b"".join(iter(lambda: conn.recv(65536), b""))
        conn.close()
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(data)
    events = list(unpacker)
    assert [e[2]["log"] for e in events] == ["one", "two"]
