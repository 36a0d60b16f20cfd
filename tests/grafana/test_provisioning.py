"""Provisioning files: data sources with fixed uids and working cross-links, providers.

Grafana interpolates provisioning values: the text is split on `$$` (a literal `$`), each
part gets `$__file{...}`/`$__env{...}` expanders, then `$VAR`/`${VAR}` from the environment.
`expand` below does the same so the tests see what Grafana will see.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.grafana.model import DATASOURCES, PROVIDERS, ROOT, dashboard_files

# The compose defaults documented in datasources.yml (compose.yaml sets them).
COMPOSE_ENV = {
    "PROMETHEUS_URL": "http://prometheus:9090",
    "ALERTMANAGER_URL": "http://alertmanager:9093",
    "JAEGER_URL": "http://jaeger:16686",
    "ELASTICSEARCH_URL": "http://elasticsearch:9200",
    "ELASTICSEARCH_USERNAME": "elastic",
}
EXPECTED_UIDS = {"prometheus": "prometheus", "alertmanager": "alertmanager",
                 "jaeger": "jaeger", "elasticsearch": "elasticsearch"}

_ENV = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_FILE = re.compile(r"\$__file\{([^}]*)\}")


def _expand_part(part: str, env: dict[str, str], files: dict[str, str]) -> str:
    part = _FILE.sub(lambda m: files[m.group(1)], part)
    return _ENV.sub(lambda m: env.get(m.group(1) or m.group(2), ""), part)


def expand(value: Any, env: dict[str, str], files: dict[str, str]) -> Any:
    """Grafana's interpolation of every string value of a provisioning file."""
    if isinstance(value, str):
        return "$".join(_expand_part(p, env, files) for p in value.split("$$"))
    if isinstance(value, dict):
        return {k: expand(v, env, files) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, env, files) for v in value]
    return value


def _env_refs(value: Any) -> set[str]:
    if isinstance(value, str):
        return {a or b for p in value.split("$$") for a, b in _ENV.findall(_FILE.sub("", p))}
    if isinstance(value, dict):
        return set().union(set(), *(_env_refs(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(set(), *(_env_refs(v) for v in value))
    return set()


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(DATASOURCES.read_text())


@pytest.fixture(scope="module")
def expanded(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    doc = expand(raw, COMPOSE_ENV, {"/run/secrets/elasticsearch_password": "s3cret",
                                    "/run/secrets/basic_auth_password": "b4sic"})
    return {d["uid"]: d for d in doc["datasources"]}


def test_fixed_uids_and_types(raw: dict[str, Any]) -> None:
    got = {d["type"]: d["uid"] for d in raw["datasources"]}
    assert got == EXPECTED_UIDS
    assert [d["uid"] for d in raw["datasources"] if d.get("isDefault")] == ["prometheus"]
    assert all(d.get("editable") is False for d in raw["datasources"])


def test_every_env_variable_is_documented_and_urls_resolve(
        raw: dict[str, Any], expanded: dict[str, dict[str, Any]]) -> None:
    refs = _env_refs(raw)
    assert refs == set(COMPOSE_ENV), refs ^ set(COMPOSE_ENV)
    header = DATASOURCES.read_text().split("apiVersion")[0]
    for name, default in COMPOSE_ENV.items():
        assert re.search(rf"{name}\s+{re.escape(default)}", header), f"{name} undocumented"
    for ds in expanded.values():
        assert re.fullmatch(r"http://[a-z-]+:\d+", ds["url"]), ds["url"]


def test_passwords_come_from_secret_files(raw: dict[str, Any],
                                          expanded: dict[str, dict[str, Any]]) -> None:
    """Elasticsearch with its own password; Prometheus and Alertmanager with the basic-auth
    password a staging host enforces (web config user admin)."""
    files = {"elasticsearch": "/run/secrets/elasticsearch_password",
             "prometheus": "/run/secrets/basic_auth_password",
             "alertmanager": "/run/secrets/basic_auth_password"}
    by_uid = {d["uid"]: d for d in raw["datasources"]}
    for uid, path in files.items():
        assert by_uid[uid]["basicAuth"] is True
        assert by_uid[uid]["secureJsonData"] == {"basicAuthPassword": f"$__file{{{path}}}"}
    assert expanded["elasticsearch"]["secureJsonData"]["basicAuthPassword"] == "s3cret"
    assert expanded["prometheus"]["secureJsonData"]["basicAuthPassword"] == "b4sic"
    assert expanded["elasticsearch"]["basicAuthUser"] == "elastic"
    for uid in ("prometheus", "alertmanager"):
        web_config = yaml.safe_load((ROOT / uid / "web-config.staging.yml").read_text())
        assert {expanded[uid]["basicAuthUser"]} == set(web_config["basic_auth_users"])
    text = DATASOURCES.read_text().lower()
    assert "password:" not in text.replace("basicauthpassword:", "")


def test_cross_links_point_at_provisioned_uids(expanded: dict[str, dict[str, Any]]) -> None:
    def linked(node: Any) -> set[str]:
        if isinstance(node, dict):
            own = {node["datasourceUid"]} if "datasourceUid" in node else set()
            return own.union(*(linked(v) for v in node.values()))
        if isinstance(node, list):
            return set().union(set(), *(linked(v) for v in node))
        return set()

    # The exemplar link is a URL into Explore (test_exemplar_link.py renders it).
    prom = expanded["prometheus"]["jsonData"]
    assert [d["name"] for d in prom["exemplarTraceIdDestinations"]] == ["trace_id"]
    t2l = expanded["jaeger"]["jsonData"]["tracesToLogsV2"]
    assert t2l["datasourceUid"] == "elasticsearch"
    # After interpolation Grafana sees its own ${...} template, not an empty env variable.
    assert t2l["query"] == 'trace_id:"${__trace.traceId}"'
    es = expanded["elasticsearch"]["jsonData"]
    assert es["dataLinks"] == [{"field": "^trace_id$", "datasourceUid": "jaeger",
                                "url": "${__value.raw}"}]
    # `field` is a regular expression (Grafana's Elasticsearch data links): it must
    # match the trace_id field and no other.
    pattern = re.compile(es["dataLinks"][0]["field"])
    fields = ["trace_id", "span_id", "parent_trace_id", "trace_id_hex", "request_id"]
    assert [f for f in fields if pattern.search(f)] == ["trace_id"]
    every = set().union(*(linked(d) for d in expanded.values()))
    assert every <= set(expanded), every - set(expanded)


def test_prometheus_time_interval_is_the_scrape_interval(
        expanded: dict[str, dict[str, Any]]) -> None:
    """$__rate_interval is derived from timeInterval: it must equal the global
    scrape_interval of prometheus.yml."""
    prom_cfg = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    assert expanded["prometheus"]["jsonData"]["timeInterval"] == \
        prom_cfg["global"]["scrape_interval"]


def test_elasticsearch_settings_match_the_log_pipeline(
        expanded: dict[str, dict[str, Any]]) -> None:
    es = expanded["elasticsearch"]["jsonData"]
    assert (es["timeField"], es["logMessageField"], es["logLevelField"]) == (
        "@timestamp", "message", "level")
    fluent = ROOT / "fluent-bit" / "fluent-bit.yaml"
    if not fluent.exists():
        pytest.skip("fluent-bit/fluent-bit.yaml not present: cannot compare the index name")
    outputs = yaml.safe_load(fluent.read_text())["pipeline"]["outputs"]
    prefixes = {o["logstash_prefix"] for o in outputs if o.get("name") == "es"
                and o.get("logstash_prefix")}
    assert {f"{p}-*" for p in prefixes} == {es["index"]}


def test_one_read_only_provider_per_dashboard_folder() -> None:
    providers = yaml.safe_load(PROVIDERS.read_text())["providers"]
    folders = {p.parent.name for p in dashboard_files()}
    by_dir = {Path(p["options"]["path"]).name: p for p in providers}
    assert set(by_dir) == folders
    assert len({p["folder"] for p in providers}) == len(providers)
    assert len({p["name"] for p in providers}) == len(providers)
    for p in providers:
        assert p["type"] == "file"
        assert p["allowUiUpdates"] is False
        assert p["disableDeletion"] is True
        assert p["options"]["path"].startswith("/etc/grafana/dashboards/")


def test_every_provisioning_folder_exists() -> None:
    """Grafana 13 reads these folders at start and logs an error for a missing one
    (shared/reference/field-notes.md); each holds a valid file with nothing to do
    at worst."""
    base = ROOT / "grafana" / "provisioning"
    for folder in ("datasources", "dashboards", "plugins", "alerting"):
        files = sorted((base / folder).glob("*.y*ml"))
        assert files, f"grafana/provisioning/{folder}/ is missing or empty"
        for f in files:
            assert (yaml.safe_load(f.read_text()) or {}).get("apiVersion") == 1, f
