"""The RabbitMQ rule tests use series shaped exactly like the real plugin's output.

fixtures/rabbitmq-3.10.8-metrics.txt and -detailed.txt were recorded from the native run's
RabbitMQ (the Debian 12 package dev/bootstrap-servers.sh pins), from the two endpoints the
jobs `rabbitmq` and `rabbitmq-queues` scrape. Every rabbitmq_* series in rabbitmq.test.yml
must carry exactly the plugin's labels for that metric (plus the target labels Prometheus
adds) and name the job that scrapes that endpoint; every rabbitmq_* name the rules use must
exist in the recording.
"""

from __future__ import annotations

import re
from pathlib import Path

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests import prometheus_config
from tests.metrics_catalog import metric_names, rule_queries

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIXTURES = {  # recording -> the job that scrapes that endpoint (prometheus/prometheus.yml)
    HERE / "fixtures/rabbitmq-3.10.8-metrics.txt": "rabbitmq",
    HERE / "fixtures/rabbitmq-3.10.8-detailed.txt": "rabbitmq-queues",
}
TARGET_LABELS = {"job", "instance", "service", "env"}  # added by Prometheus and the inventory


def recorded() -> dict[str, tuple[str, set[str]]]:
    """metric name -> (job, label names) as recorded (first endpoint that has it)."""
    out: dict[str, tuple[str, set[str]]] = {}
    for path, job in FIXTURES.items():
        for family in text_string_to_metric_families(path.read_text()):
            for sample in family.samples:
                out.setdefault(sample.name, (job, set(sample.labels)))
    return out


def test_recordings_come_from_the_pinned_rabbitmq() -> None:
    script = (ROOT / "dev/bootstrap-servers.sh").read_text()
    pin = re.search(r"rabbitmq-server=([0-9.]+)-", script)
    assert pin, "rabbitmq-server pin missing from dev/bootstrap-servers.sh"
    for path in FIXTURES:
        assert f'rabbitmq_version="{pin.group(1)}"' in path.read_text(), path.name
        assert pin.group(1) in path.name


def test_jobs_scrape_the_recorded_endpoints() -> None:
    jobs = {j["job_name"]: j for j in prometheus_config.load()["scrape_configs"]}
    assert jobs["rabbitmq"].get("metrics_path", "/metrics") == "/metrics"
    detailed = jobs["rabbitmq-queues"]
    assert detailed["metrics_path"] == "/metrics/detailed"
    # the recording's header names the same families the job asks for
    header = (HERE / "fixtures/rabbitmq-3.10.8-detailed.txt").read_text()
    for family in detailed["params"]["family"]:
        assert f"family={family}" in header, family


def _series(text: str) -> tuple[str, set[str], str]:
    ast = promql_parser.parse(text)
    labels = {m.name: m.value for m in ast.matchers.matchers}
    return ast.name, set(labels), labels.get("job", "")


def test_rule_test_series_match_the_recordings() -> None:
    shapes = recorded()
    tests = yaml.safe_load((HERE / "rabbitmq.test.yml").read_text())["tests"]
    checked = 0
    for case in tests:
        for item in case["input_series"]:
            name, labels, job = _series(item["series"])
            if not name.startswith("rabbitmq_"):
                assert name == "up" and job in FIXTURES.values(), item["series"]
                continue
            assert name in shapes, f"{name} is not in the recorded plugin output"
            want_job, want_labels = shapes[name]
            assert job == want_job, f"{item['series']}: scraped by job {want_job}"
            assert labels - TARGET_LABELS == want_labels, (
                f"{item['series']}: the plugin writes {sorted(want_labels)}")
            assert labels >= TARGET_LABELS, item["series"]
            checked += 1
    assert checked >= 10


def test_every_rabbitmq_name_in_the_rules_was_recorded() -> None:
    shapes = recorded()
    names = set()
    for query in rule_queries(sorted((ROOT / "prometheus/rules").glob("*.yml"))):
        names |= {n for n in metric_names(query.expr) if n.startswith("rabbitmq_")}
    assert names, "no rule uses a rabbitmq_ metric"
    missing = sorted(names - set(shapes))
    assert not missing, f"rules use names the plugin did not write: {missing}"


@pytest.mark.parametrize("name", ["rabbitmq_alarms_memory_used_watermark",
                                  "rabbitmq_alarms_free_disk_space_watermark"])
def test_alarms_are_unlabelled_zero_or_one(name: str) -> None:
    # The recording was taken with both alarms raised for real (rabbitmqctl).
    text = (HERE / "fixtures/rabbitmq-3.10.8-metrics.txt").read_text()
    family = next(f for f in text_string_to_metric_families(text) if f.name == name)
    assert family.type == "unknown"  # the plugin declares them untyped
    assert [(s.labels, s.value) for s in family.samples] == [({}, 1.0)]
