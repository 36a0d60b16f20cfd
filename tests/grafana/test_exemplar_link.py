"""A latency exemplar's link opens its trace in Jaeger: rendered as Grafana renders it.

For each exemplar destination of every provisioned Prometheus data source, this builds the
links Grafana 13.2 puts on the exemplar's trace_id and decodes each into the query Explore
sends to the Jaeger plugin:

* `datasourceUid` -> an internal link whose query is {query: ${__value.raw},
  queryType: 'traceql'} (grafana packages/grafana-prometheus/src/result_transformer.ts,
  getDataLinks);
* `url` -> a plain link; ${__value.raw} becomes the trace id, URI-encoded
  (packages/grafana-data/src/field/fieldOverrides.ts, getLinksSupplier), and an Explore URL
  carries its panes as JSON in `panes` with `schemaVersion=1`
  (public/app/core/utils/explore.ts getExploreUrl; useStateSync/migrators/v1.ts).

The Jaeger plugin answers a query without a query type with the trace of that id, and
otherwise only `search`, `upload` and `dependencyGraph` (grafana-jaeger-datasource
pkg/jaeger/querydata.go): any other query type, such as Tempo's 'traceql', returns nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import yaml

from tests.grafana.model import DATASOURCES, ROOT
from tests.grafana.test_provisioning import COMPOSE_ENV, expand

SCALE_DATASOURCES = ROOT / "grafana" / "scale" / "datasources.yml"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"  # the W3C trace-context example
# What the Jaeger plugin does with each query type (querydata.go).
JAEGER_ANSWERS = {"": "trace", "search": "search", "upload": "upload",
                  "dependencyGraph": "dependency graph"}
# Explore keeps a pane id of 3 characters of this alphabet, not all digits (v1.ts).
PANE_ID = re.compile(r"(?![0-9]{3}$)[0-9a-z]{3}")


@dataclass(frozen=True)
class ExploreQuery:
    """A query Explore runs after a click: on which data source, with which fields."""

    datasource_uid: str
    query: dict[str, Any]


def render(url: str, trace_id: str) -> str:
    """The href of a `url` link on the trace_id field, as getLinksSupplier interpolates it."""
    href = url.replace("${__value.raw}", quote(trace_id, safe=""))
    assert "$" not in href, f"a template Grafana would not fill in: {href}"
    return href


def explore_queries(href: str) -> list[ExploreQuery]:
    """The queries of an Explore URL (schema version 1)."""
    parts = urlsplit(href)
    assert (parts.scheme, parts.netloc, parts.path) == ("", "", "/explore"), href
    params = parse_qs(parts.query, strict_parsing=True)
    assert params.get("schemaVersion") == ["1"], params
    panes = json.loads(params["panes"][0])
    found = []
    for pane_id, pane in panes.items():
        assert PANE_ID.fullmatch(pane_id), f"Explore replaces the pane id {pane_id!r}"
        for query in pane["queries"]:
            uid = (query.get("datasource") or {}).get("uid") or pane["datasource"]
            found.append(ExploreQuery(uid, query))
    return found


def exemplar_links(destination: dict[str, Any], trace_id: str) -> list[ExploreQuery]:
    """What each link getDataLinks makes for `destination` asks of its data source."""
    links = []
    if destination.get("datasourceUid"):
        links.append(ExploreQuery(destination["datasourceUid"],
                                  {"query": trace_id, "queryType": "traceql"}))
    if destination.get("url"):
        links += explore_queries(render(destination["url"], trace_id))
    return links


def provisioned(path: Path) -> list[dict[str, Any]]:
    env = {**COMPOSE_ENV, "PROMETHEUS_B_URL": "http://prometheus-b:9090",
           "VICTORIAMETRICS_URL": "http://vmselect:8481/select/0/prometheus"}
    doc = expand(yaml.safe_load(path.read_text()), env,
                 {"/run/secrets/basic_auth_password": "b4sic",
                  "/run/secrets/elasticsearch_password": "s3cret"})
    return doc["datasources"]


DATASOURCE_TYPES = {d["uid"]: d["type"] for d in provisioned(DATASOURCES)}
DESTINATIONS = [
    pytest.param(dest, id=f"{path.parent.name}/{ds['uid']}")
    for path in (DATASOURCES, SCALE_DATASOURCES) for ds in provisioned(path)
    if ds["type"] == "prometheus"
    for dest in ds.get("jsonData", {}).get("exemplarTraceIdDestinations", [])
]


def test_both_prometheus_replicas_link_their_exemplars() -> None:
    assert {p.id for p in DESTINATIONS} == {"datasources/prometheus", "scale/prometheus-b"}


@pytest.mark.parametrize("destination", DESTINATIONS)
def test_an_exemplar_opens_its_trace_in_jaeger(destination: dict[str, Any]) -> None:
    assert destination["name"] == "trace_id"  # the workload's exemplar label
    links = exemplar_links(destination, TRACE_ID)
    assert links, "the destination makes no link"
    for link in links:
        assert DATASOURCE_TYPES.get(link.datasource_uid) == "jaeger", link
        query_type = link.query.get("queryType") or ""
        answer = JAEGER_ANSWERS.get(query_type, f"nothing (query type {query_type!r})")
        assert answer == "trace", f"the Jaeger plugin answers {link.query} with {answer}"
        assert link.query["query"] == TRACE_ID


def test_the_model_sees_the_empty_trace_and_a_foreign_template() -> None:
    """The link of the old provisioning (`datasourceUid: jaeger`) asks for a TraceQL query,
    which the Jaeger plugin does not answer; a template Grafana leaves alone is caught."""
    (old,) = exemplar_links({"name": "trace_id", "datasourceUid": "jaeger"}, TRACE_ID)
    assert JAEGER_ANSWERS.get(old.query["queryType"]) is None
    with pytest.raises(AssertionError, match="template"):
        render("/explore?panes=${__value.text}", TRACE_ID)
    panes = quote(json.dumps({"123": {"datasource": "jaeger", "queries": []}}), safe="")
    with pytest.raises(AssertionError, match="pane id"):
        explore_queries(f"/explore?schemaVersion=1&panes={panes}")
