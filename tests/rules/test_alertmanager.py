"""alertmanager/alertmanager.yml: syntax, secrets, routing table, templates, inhibition.

- static checks on the YAML (matchers only, every secret read from a file with an example);
- `amtool check-config` and a table of `amtool config routes test --verify.receivers=...`
  cases, one per route, run in a copy of alertmanager/ with secrets/ made from the examples
  (the layout every deployment uses);
- `amtool template render` of every template;
- a real Alertmanager on 127.0.0.1 fed fixture alerts: the notifications its receivers post
  (captured by a local HTTP server standing in for chat and webhook endpoints) carry the
  rendered summary, description, runbook and Grafana links, and inhibited alerts are not sent.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.rules import ruleset

AM_YML = ruleset.AM_DIR / "alertmanager.yml"
EXAMPLES = ruleset.AM_DIR / "secrets.example"
CONFIG = yaml.safe_load(AM_YML.read_text())
RUNBOOK = "https://github.com/apollonia/apollonia-observability/blob/main/docs/runbook.md"

needs_amtool = pytest.mark.skipif(
    not ruleset.AMTOOL.exists(), reason="amtool not installed: run `make bootstrap`"
)


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


# --- static --------------------------------------------------------------------------------


def test_only_matchers_syntax() -> None:
    deprecated = {"match", "match_re", "source_match", "source_match_re", "target_match",
                  "target_match_re", "mute_time_intervals"}
    for path, key, _ in _walk(CONFIG):
        if key == "mute_time_intervals" and path.startswith(".route"):
            continue  # on routes it is the current syntax; top level it is deprecated
        assert key not in deprecated, f"alertmanager.yml{path}: deprecated `{key}`"


SECRET_KEYS = {"api_url", "url", "auth_password", "smtp_auth_password", "service_key",
               "routing_key", "api_key", "bot_token", "token", "password", "webhook_url"}


def test_every_secret_comes_from_a_file_with_an_example() -> None:
    files = []
    for path, key, value in _walk(CONFIG):
        assert key not in SECRET_KEYS, f"alertmanager.yml{path}.{key}: inline secret, use *_file"
        if key.endswith("_file"):
            files.append(value)
    assert len(files) >= 6, files
    for rel in files:
        assert rel.startswith("secrets/"), f"{rel}: secret files live in secrets/"
        example = EXAMPLES / rel.removeprefix("secrets/")
        assert example.is_file(), f"{rel}: no example file {example.relative_to(ruleset.ROOT)}"
        assert "slack.com" not in example.read_text(), f"{example}: looks like a real webhook"


def test_routes_and_time_intervals_are_consistent() -> None:
    names = {r["name"] for r in CONFIG["receivers"]}
    intervals = {t["name"] for t in CONFIG.get("time_intervals", [])}
    assert CONFIG["route"]["group_by"] == ["alertname", "service"]
    used = set()

    def visit(route: dict[str, Any]) -> None:
        assert route["receiver"] in names
        used.add(route["receiver"])
        for ti in route.get("mute_time_intervals", []) + route.get("active_time_intervals", []):
            assert ti in intervals, f"route uses unknown time interval {ti}"
        for child in route.get("routes", []):
            visit(child)

    visit(CONFIG["route"])
    assert used == names, f"receivers no route uses: {names - used}"
    muted = [r for r in _walk(CONFIG["route"]) if r[1] == "mute_time_intervals"]
    assert muted, "no route uses the maintenance window"


# --- amtool in a deployment-like layout ------------------------------------------------------


@pytest.fixture(scope="module")
def am_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of alertmanager/ with secrets/ filled from the examples."""
    d = tmp_path_factory.mktemp("am") / "alertmanager"
    shutil.copytree(ruleset.AM_DIR, d, ignore=shutil.ignore_patterns("secrets"))
    shutil.copytree(EXAMPLES, d / "secrets")
    return d


def amtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(ruleset.AMTOOL), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=30)


@needs_amtool
def test_amtool_check_config(am_dir: Path) -> None:
    res = amtool("check-config", "alertmanager.yml", cwd=am_dir)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4 receivers" in res.stdout and "1 templates" in res.stdout, res.stdout


ROUTES = [
    # (receiver, labels)
    ("heartbeat", "alertname=Watchdog severity=info service=prometheus"),
    ("heartbeat", "alertname=Watchdog severity=critical"),  # the dead man's switch wins
    ("critical", "alertname=HighErrorRate severity=critical service=api env=compose"),
    ("critical", "alertname=ServiceDown severity=critical service=api env=native"),
    ("critical", "alertname=ApiErrorBudgetBurn severity=critical service=api env=staging"),
    ("warning", "alertname=HighErrorRate severity=warning service=api env=compose"),
    ("warning", "alertname=TargetDown severity=warning service=redis env=staging"),
    ("blackhole", "alertname=ApiErrorBudgetLow severity=info service=api env=compose"),
    ("warning", "alertname=SomethingNew service=api"),  # no severity: a human still sees it
]


@needs_amtool
@pytest.mark.parametrize(("receiver", "labels"), ROUTES, ids=[f"{r}:{lbl}" for r, lbl in ROUTES])
def test_route(am_dir: Path, receiver: str, labels: str) -> None:
    res = amtool("config", "routes", "test", "--config.file=alertmanager.yml",
                 f"--verify.receivers={receiver}", *labels.split(), cwd=am_dir)
    assert res.returncode == 0, f"{labels} -> {res.stdout.strip()} (expected {receiver})"


@needs_amtool
def test_route_check_can_fail(am_dir: Path) -> None:
    res = amtool("config", "routes", "test", "--config.file=alertmanager.yml",
                 "--verify.receivers=critical", "alertname=X", "severity=info", cwd=am_dir)
    assert res.returncode == 1 and "blackhole" in res.stdout


TEMPLATES = {
    "apollonia.title": "[",
    "apollonia.text": "Grafana: http://127.0.0.1:3000/d/",
    "apollonia.email.html": '<a href="http://127.0.0.1:3000/d/',
    "apollonia.grafana_link": "http://127.0.0.1:3000/d/",
}


@needs_amtool
@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_template_renders(am_dir: Path, name: str) -> None:
    """amtool's built-in example alerts through each template: it parses and renders."""
    text = f'{{{{ template "{name}" . }}}}'
    if name == "apollonia.grafana_link":
        text = f'{{{{ range .Alerts }}}}{{{{ template "{name}" . }}}}{{{{ end }}}}'
    res = amtool("template", "render", "--template.glob=templates/*.tmpl",
                 f"--template.text={text}", cwd=am_dir)
    assert res.returncode == 0, res.stderr
    assert TEMPLATES[name] in res.stdout, res.stdout


def test_every_template_is_used_or_tested() -> None:
    defined = set(re.findall(r'define "([\w.]+)"', (ruleset.AM_DIR / "templates/apollonia.tmpl")
                             .read_text()))
    used = set(re.findall(r'template "([\w.]+)"', AM_YML.read_text()))
    internal = {"apollonia.grafana_url", "apollonia.dashboard_uid"}
    assert used <= defined
    assert defined - internal <= set(TEMPLATES), defined - internal - set(TEMPLATES)


# --- a real Alertmanager -------------------------------------------------------------------


class _Capture(BaseHTTPRequestHandler):
    posts: list[tuple[str, dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).posts.append((self.path, json.loads(body or b"{}")))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_am(am_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, type]]:
    if not ruleset.ALERTMANAGER.exists():
        pytest.fail("alertmanager not installed: run `make bootstrap`")
    capture = type("Capture", (_Capture,), {"posts": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sink = f"http://127.0.0.1:{server.server_address[1]}"
    run = tmp_path_factory.mktemp("am-live")
    shutil.copytree(am_dir, run / "am")
    for f in (run / "am/secrets").iterdir():  # every URL at the capture server, path kept
        if f.name.endswith("_url"):
            f.write_text(sink + "/" + f.read_text().strip().rsplit("/", 1)[-1] + "\n")
    # The shipped config, with the waits shortened so the test takes seconds, not minutes.
    cfg = yaml.safe_load((run / "am/alertmanager.yml").read_text())

    def fast(route: dict[str, Any]) -> None:
        if "group_wait" in route:
            route["group_wait"] = "0s"
        for child in route.get("routes", []):
            fast(child)

    cfg["route"]["group_wait"] = "1s"
    fast(cfg["route"])
    (run / "am/alertmanager.yml").write_text(yaml.safe_dump(cfg))
    port = _free_port()
    log = (run / "am.log").open("w")
    proc = subprocess.Popen(
        [str(ruleset.ALERTMANAGER), f"--config.file={run}/am/alertmanager.yml",
         f"--storage.path={run}/data", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address="],
        # Alertmanager 0.33 reads url_file/api_url_file relative to its *working directory*
        # (only templates resolve against the config file), so it runs where its config is,
        # as both deployments do.
        cwd=run / "am", stdout=subprocess.DEVNULL, stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("alertmanager not ready: " + (run / "am.log").read_text()[-2000:])
        yield url, capture
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        server.shutdown()


def _alert(name: str, severity: str, service: str, **extra: str) -> dict[str, Any]:
    anchor = name.lower()
    return {
        "labels": {"alertname": name, "severity": severity, "service": service,
                   "env": "compose", **extra},
        "annotations": {
            "summary": f"{name} summary sentence.",
            "description": f"{name} on {service} described.",
            "runbook_url": f"{RUNBOOK}#{anchor}",
        },
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up",
    }


def test_live_notifications_render_and_inhibit(live_am: tuple[str, type]) -> None:
    url, capture = live_am
    alerts = [
        _alert("ServiceDown", "critical", "api", job="apollonia-api"),
        _alert("HighErrorRate", "critical", "api"),  # inhibited by ServiceDown (same service)
        _alert("HighErrorRate", "critical", "analyzer"),
        _alert("HighErrorRate", "warning", "analyzer"),  # inhibited by its critical twin
        _alert("ApiErrorBudgetLow", "info", "api", slo="availability"),  # no notification
        _alert("Watchdog", "info", "prometheus"),
        _alert("PostgresDown", "critical", "postgres"),
        _alert("SlowDatabaseQueries", "warning", "api"),  # inhibited: the database is down
        _alert("RedisDown", "critical", "redis"),
        _alert("LowCacheHitRate", "warning", "api"),  # inhibited: the cache is down
        _alert("RabbitMQNodeDown", "critical", "rabbitmq", job="rabbitmq", instance="mq:15692"),
        # inhibited: the node is down (same instance, either RabbitMQ job) ...
        _alert("TargetDown", "warning", "rabbitmq", job="rabbitmq-queues", instance="mq:15692"),
        # ... but not another instance's
        _alert("TargetDown", "warning", "rabbitmq", job="rabbitmq", instance="mq2:15692"),
        _alert("RabbitMQQueueNoConsumers", "warning", "rabbitmq", instance="mq:15692",
               vhost="/", queue="analyzer_queue"),
        # inhibited: the same queue has no consumer
        _alert("RabbitMQQueueBacklogGrowing", "warning", "rabbitmq", instance="mq:15692",
               vhost="/", queue="analyzer_queue"),
        # Burn-rate alerts of another environment (ServiceDown above is for compose): the
        # 6h/30m page inhibits the ticket of the same SLO whatever its window pair.
        _alert("ApiErrorBudgetBurn", "critical", "api", env="staging", slo="latency",
               window="6h/30m"),
        _alert("ApiErrorBudgetBurn", "warning", "api", env="staging", slo="latency",
               window="1d/2h"),
    ]
    sources = [a for a in alerts if a["labels"]["alertname"] in
               ("ServiceDown", "PostgresDown", "RedisDown", "RabbitMQNodeDown",
                "RabbitMQQueueNoConsumers")
               or a["labels"].get("window") == "6h/30m"] + alerts[2:3]
    # Sources first, so the inhibition is in place when the targets arrive.
    httpx.post(f"{url}/api/v2/alerts", json=sources, timeout=5).raise_for_status()
    time.sleep(0.5)
    httpx.post(f"{url}/api/v2/alerts", json=alerts, timeout=5).raise_for_status()

    def delivered(path: str) -> list[dict[str, Any]]:
        return [body for p, body in capture.posts if p == path]

    # Wait for every page (one group each), not a count: a group arriving last must not be
    # missed because the others already reached some number.
    pages = {"ServiceDown", "HighErrorRate", "PostgresDown", "RedisDown", "RabbitMQNodeDown",
             "ApiErrorBudgetBurn"}

    def paged() -> set[str]:
        return {a["labels"]["alertname"] for body in delivered("/critical")
                for a in body.get("alerts", [])}

    deadline = time.time() + 20
    while time.time() < deadline and not (delivered("/heartbeat") and delivered("/chat-critical")
                                          and pages <= paged()):
        time.sleep(0.2)

    # Inhibition, as Alertmanager reports it.
    state = httpx.get(f"{url}/api/v2/alerts", timeout=5).json()
    inhibited = {(a["labels"]["alertname"], a["labels"]["service"], a["labels"]["severity"],
                  a["labels"].get("job", ""))
                 for a in state if a["status"]["inhibitedBy"]}
    assert inhibited == {("HighErrorRate", "api", "critical", ""),
                         ("HighErrorRate", "analyzer", "warning", ""),
                         ("SlowDatabaseQueries", "api", "warning", ""),
                         ("LowCacheHitRate", "api", "warning", ""),
                         ("TargetDown", "rabbitmq", "warning", "rabbitmq-queues"),
                         ("RabbitMQQueueBacklogGrowing", "rabbitmq", "warning", ""),
                         ("ApiErrorBudgetBurn", "api", "warning", "")}, state

    # Webhook receivers: which alerts reached which receiver.
    sent = {(p, a["labels"]["alertname"], a["labels"]["service"], a["labels"]["severity"])
            for p, body in capture.posts if "alerts" in body for a in body["alerts"]}
    assert ("/heartbeat", "Watchdog", "prometheus", "info") in sent
    assert ("/critical", "ServiceDown", "api", "critical") in sent
    assert ("/critical", "HighErrorRate", "analyzer", "critical") in sent
    assert ("/critical", "PostgresDown", "postgres", "critical") in sent
    assert ("/critical", "RedisDown", "redis", "critical") in sent
    assert not [s for s in sent if s[1] == "HighErrorRate" and s[2] == "api"], sent
    muted = {"HighErrorRate", "SlowDatabaseQueries", "LowCacheHitRate",
             "RabbitMQQueueBacklogGrowing"}
    assert not [s for s in sent if s[1] in muted and s[3] == "warning"], sent
    assert not [s for s in sent if s[1] == "ApiErrorBudgetLow"], sent
    muted_target = [a["labels"] for _, body in capture.posts for a in body.get("alerts", [])
                    if a["labels"]["alertname"] == "TargetDown"
                    and a["labels"].get("instance") == "mq:15692"]
    assert not muted_target, muted_target
    assert not [s for s in sent if s[1] == "Watchdog" and s[0] != "/heartbeat"], sent

    # Chat receiver: the templates rendered with the alert's annotations and links.
    chat = {m["attachments"][0]["title"]: m["attachments"][0]["text"]
            for m in delivered("/chat-critical")}
    title = "[FIRING:1] ServiceDown api (compose)"
    assert title in chat, chat.keys()
    text = chat[title]
    assert "ServiceDown summary sentence." in text
    assert "ServiceDown on api described." in text
    assert f"Runbook: {RUNBOOK}#servicedown" in text
    assert ("Grafana: http://127.0.0.1:3000/d/apollonia-overview?var-env=compose&var-service=api"
            "&from=now-1h&to=now") in text
    assert "Source: http://127.0.0.1:9090/graph?g0.expr=up" in text

    # A burn-rate page: its SLO and window pair in the title and the text, and the Grafana
    # link opens the SLO dashboard over the long window.
    title = "[FIRING:1] ApiErrorBudgetBurn api (staging) latency 6h/30m"
    assert title in chat, chat.keys()
    text = chat[title]
    assert "Window: 6h/30m (long/short burn-rate windows" in text
    assert ("Grafana: http://127.0.0.1:3000/d/apollonia-slo?var-env=staging&var-service=api"
            "&var-slo=latency&from=now-6h&to=now") in text
