#!/usr/bin/python3
"""Grafana stand-in: health, the admin user kept in a database, provisioned data sources (with
real health checks against them) and provisioned dashboards, plus ``grafana cli admin
reset-admin-password``.

Run as the image runs Grafana: ``grafana.py server ...`` (or no arguments) with the GF_*
environment (the image's /run.sh has already turned every GF_*__FILE into GF_*):
GF_SECURITY_ADMIN_USER/PASSWORD, GF_PATHS_DATA (/var/lib/grafana), GF_PATHS_PROVISIONING
(/etc/grafana/provisioning), GF_SERVER_HTTP_PORT (3000). As the CLI (the image puts this file
at /usr/share/grafana/bin/grafana): ``grafana cli admin reset-admin-password <new>`` (or
``--password-from-stdin``).

What it answers like Grafana 13.2 (grafana/grafana):

* ``GET /api/health`` without auth: {"database": "ok", "version", "commit"}, 503 "failing"
  when the database cannot be read (pkg/api/health.go).
* The admin user lives in ``$GF_PATHS_DATA/grafana.db`` (sqlite, table ``user``, password as
  PBKDF2-HMAC-SHA256, 10000 rounds, 50 bytes, hex, like pkg/util/encoding.go EncodePassword):
  created with GF_SECURITY_ADMIN_PASSWORD on the first start only; later starts ignore the
  environment, as Grafana does. Every other API call needs basic auth as that user (401
  {"message": "Invalid username or password"}). The CLI updates the row; the server reads it
  at every request, so the new password works at once, without a restart.
* Data sources from ``$GF_PATHS_PROVISIONING/datasources/*.y*ml`` with Grafana's expansion
  (pkg/services/provisioning/values/values.go, pkg/setting/expanders.go): ``$__file{path}``
  (content, trimmed) and ``$__env{VAR}`` first, then ``$VAR``/``${VAR}`` from the environment
  and ``$$`` for a literal ``$`` (so a ``$`` inside a file's content is expanded too).
  ``GET /api/datasources``, ``/api/datasources/uid/<uid>``, and
  ``GET /api/datasources/uid/<uid>/health`` that really probes it (pkg/api/datasources.go:
  200 {"status": "OK", "message"} or 400 {"status": "ERROR", "message"}): Prometheus an
  instant query ``1+1`` with the configured httpMethod (pkg/promlib/healthcheck.go), Jaeger
  ``GET /api/services`` (pkg/tsdb/jaeger/jaeger.go), Elasticsearch
  ``GET /_cluster/health?wait_for_status=yellow`` failing on any status >= 400 or red
  (pkg/tsdb/elasticsearch/healthcheck.go), each with the provisioned basic auth. Also
  ``/api/datasources/proxy/uid/<uid>/<path>`` (GET, with the data source's auth).
* Dashboards from the file providers of ``$GF_PATHS_PROVISIONING/dashboards/*.y*ml``
  (options.path walked recursively, folder/folderUid), read again at every request:
  ``GET /api/search`` (type dash-db / dash-folder, query, tag, limit) and
  ``GET /api/dashboards/uid/<uid>`` ({"dashboard", "meta": {provisioned, folderUid, ...}}).
* ``GET /metrics`` without auth: grafana_build_info{branch, edition, goversion, revision,
  version}, grafana_stat_totals_dashboard, grafana_stat_total_users,
  grafana_stat_totals_datasource{plugin_id} (pkg/infra/metrics/metrics.go).

What it does NOT prove: no UI, no queries through data sources (panels are never rendered, a
wrong PromQL or field name goes unnoticed), no alerting, plugins, users other than the admin,
orgs, sessions or API keys; the Alertmanager data source's health (a frontend-only plugin in
Grafana, "not implemented") is answered by probing ``/api/v2/status``; data sources are read
once at start, as Grafana provisions them.

Debug endpoint (no auth): ``GET /standin/provisioning`` (data sources as expanded, with
secrets, and the dashboard files found).
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import os
import re
import secrets
import sqlite3
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

try:  # /standin/ in the image: the helpers sit next to this file
    import standin_common as common
except ImportError:  # imported as dev.engine.standins.grafana (offline tests)
    from dev.engine.standins import standin_common as common

NAME = "grafana"
VERSION = "13.2.0"
TYPE_NAMES = {"prometheus": "Prometheus", "alertmanager": "Alertmanager",
              "jaeger": "Jaeger", "elasticsearch": "Elasticsearch"}


def env(name: str, default: str) -> str:
    return os.environ.get(name) or default


# --- the database ----------------------------------------------------------------------------

def encode_password(password: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 10000, 50).hex()


def database() -> sqlite3.Connection:
    path = Path(env("GF_PATHS_DATA", "/var/lib/grafana")) / "grafana.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=10)
    db.execute("CREATE TABLE IF NOT EXISTS user (id INTEGER PRIMARY KEY, login TEXT UNIQUE, "
               "email TEXT, password TEXT, salt TEXT, is_admin INTEGER, created TEXT, "
               "updated TEXT)")
    return db


def ensure_admin() -> None:
    """First start only: the admin user with GF_SECURITY_ADMIN_PASSWORD (default admin)."""
    with database() as db:
        if db.execute("SELECT COUNT(*) FROM user").fetchone()[0]:
            return
        login = env("GF_SECURITY_ADMIN_USER", "admin")
        salt = secrets.token_hex(5)
        now = time.strftime("%Y-%m-%d %H:%M:%S")
        db.execute("INSERT INTO user (login, email, password, salt, is_admin, created, updated)"
                   " VALUES (?, ?, ?, ?, 1, ?, ?)",
                   (login, env("GF_SECURITY_ADMIN_EMAIL", "admin@localhost"),
                    encode_password(env("GF_SECURITY_ADMIN_PASSWORD", "admin"), salt), salt,
                    now, now))
        common.log(NAME, f"created admin user [{login}]")


def check_login(login: str, password: str) -> bool:
    with database() as db:
        row = db.execute("SELECT password, salt FROM user WHERE login = ?", (login,)).fetchone()
    return bool(row) and secrets.compare_digest(row[0], encode_password(password, row[1]))


def reset_admin_password(password: str) -> None:
    """What `grafana cli admin reset-admin-password` does: the admin's row (id 1 / admin_user)."""
    login = env("GF_SECURITY_ADMIN_USER", "admin")
    salt = secrets.token_hex(5)
    with database() as db:
        changed = db.execute("UPDATE user SET password = ?, salt = ?, updated = ? "
                             "WHERE login = ? OR id = 1",
                             (encode_password(password, salt), salt,
                              time.strftime("%Y-%m-%d %H:%M:%S"), login)).rowcount
    if not changed:
        raise SystemExit("Could not find admin user")


# --- provisioning ----------------------------------------------------------------------------

def expand(text: str) -> str:
    """Grafana's provisioning expansion: $__file{} / $__env{} first, then $VAR, ${VAR}, $$."""
    def expander(m: re.Match[str]) -> str:
        kind, arg = m.group(1), m.group(2)
        if kind == "file":
            return Path(arg).read_text().strip()
        if kind == "env":
            return os.environ.get(arg, "")
        raise ValueError(f"unsupported expander $__{kind}")

    text = re.sub(r"\$__(\w+)\{(.*?)\}", expander, text)
    return re.sub(r"\$\$|\$\{(\w+)\}|\$(\w+)",
                  lambda m: "$" if m.group(0) == "$$"
                  else os.environ.get(m.group(1) or m.group(2), ""), text)


def _expand_all(value: Any) -> Any:
    if isinstance(value, str):
        return expand(value)
    if isinstance(value, dict):
        return {k: _expand_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_all(v) for v in value]
    return value


def _yaml_files(directory: Path) -> list[Path]:
    return sorted(Path(p) for pattern in ("*.yml", "*.yaml")
                  for p in glob.glob(str(directory / pattern)))


def load_datasources(provisioning: Path) -> list[dict[str, Any]]:
    import yaml  # python3-yaml

    out: list[dict[str, Any]] = []
    for path in _yaml_files(provisioning / "datasources"):
        doc = yaml.safe_load(path.read_text()) or {}
        for ds in doc.get("datasources") or []:
            ds = _expand_all(ds)
            ds["id"] = len(out) + 1
            ds.setdefault("uid", f"ds{ds['id']}")
            out.append(ds)
    return out


def load_dashboards(provisioning: Path) -> list[dict[str, Any]]:
    import yaml

    found: list[dict[str, Any]] = []
    for path in _yaml_files(provisioning / "dashboards"):
        doc = yaml.safe_load(path.read_text()) or {}
        for provider in doc.get("providers") or []:
            provider = _expand_all(provider)
            root = Path((provider.get("options") or {}).get("path", ""))
            for file in sorted(root.rglob("*.json")):
                dashboard = json.loads(file.read_text())
                found.append({"dashboard": dashboard, "file": str(file.relative_to(root)),
                              "folder": provider.get("folder", ""),
                              "folderUid": provider.get("folderUid", "")})
    for n, entry in enumerate(found, start=1):
        entry["id"] = n
    return found


# --- data source health ----------------------------------------------------------------------

def _call(ds: dict[str, Any], method: str, path: str, data: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """A request to the data source with its provisioned auth; (status, body), 0 unreachable."""
    url = ds.get("url", "").rstrip("/") + "/" + path.lstrip("/")
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if ds.get("basicAuth"):
        password = (ds.get("secureJsonData") or {}).get("basicAuthPassword", "")
        token = base64.b64encode(f"{ds.get('basicAuthUser', '')}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return 0, str(getattr(exc, "reason", exc)).encode()


def check_health(ds: dict[str, Any]) -> tuple[bool, str]:
    kind = ds.get("type")
    if kind == "prometheus":
        what = "There was an error returned querying the Prometheus API."
        form = urllib.parse.urlencode({"query": "1+1", "time": "4"})
        if (ds.get("jsonData") or {}).get("httpMethod", "POST").upper() == "GET":
            status, body = _call(ds, "GET", f"api/v1/query?{form}")
        else:
            status, body = _call(ds, "POST", "api/v1/query", form.encode(),
                                 {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 200:
            return False, f"HTTP {status}: {body[:200].decode(errors='replace')} - {what}"
        return True, "Successfully queried the Prometheus API."
    if kind == "jaeger":
        status, body = _call(ds, "GET", "api/services")
        if status != 200:
            return False, f"request failed: HTTP {status}: {body[:200].decode(errors='replace')}"
        return True, "Data source is working"
    if kind == "elasticsearch":
        status, body = _call(ds, "GET", "_cluster/health?wait_for_status=yellow")
        if status == 0:
            return False, "Health check failed: Failed to connect to Elasticsearch"
        if status >= 400:
            return False, ("Health check failed: Elasticsearch data source is not healthy. "
                           f"Status: {status}")
        if json.loads(body).get("status") == "red":
            return False, "Health check failed: Elasticsearch data source is not healthy"
        return True, "Elasticsearch data source is healthy."
    if kind == "alertmanager":
        status, body = _call(ds, "GET", "api/v2/status")
        if status != 200:
            return False, f"HTTP {status}: {body[:200].decode(errors='replace')}"
        return True, "Health check passed."
    raise LookupError("Plugin health check not implemented")


# --- the server ------------------------------------------------------------------------------

class Grafana:
    def __init__(self) -> None:
        self.provisioning = Path(env("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"))
        self.datasources = load_datasources(self.provisioning)
        for ds in self.datasources:
            common.log(NAME, f"provisioned data source [{ds['name']}] uid [{ds['uid']}]")

    def handle(self, req: common.Request) -> common.Response:
        if req.path == "/api/health":
            try:
                with database() as db:
                    db.execute("SELECT 1").fetchone()
                state, status = "ok", 200
            except sqlite3.Error:
                state, status = "failing", 503
            return common.json_response(status, {"database": state, "version": VERSION,
                                                 "commit": "standin"})
        if req.path == "/metrics":
            return common.text_response(200, self.metrics(), common.PROMETHEUS_TEXT)
        if req.path == "/standin/provisioning":
            return common.json_response(200, {
                "datasources": self.datasources,
                "dashboards": [d["file"] for d in load_dashboards(self.provisioning)]})
        auth = req.basic_auth()
        if not auth or not check_login(*auth):
            return common.json_response(401, {"message": "Invalid username or password"})
        return self.api(req)

    def api(self, req: common.Request) -> common.Response:
        p = req.parts
        if p == ["api", "user"]:
            return common.json_response(200, {"id": 1, "login": req.basic_auth()[0],
                                              "isGrafanaAdmin": True, "orgId": 1})
        if p == ["api", "datasources"]:
            return common.json_response(200, [self._ds_item(ds) for ds in self.datasources])
        if p[:3] == ["api", "datasources", "uid"] and len(p) >= 4:
            return self._datasource(req, p[3], p[4:])
        if p[:3] == ["api", "datasources", "proxy"] and len(p) >= 5 and p[3] == "uid":
            ds = self._by_uid(p[4])
            if ds is None:
                return common.json_response(404, {"message": "Data source not found"})
            query = ("?" + req.target.split("?", 1)[1]) if "?" in req.target else ""
            status, body = _call(ds, "GET", "/".join(p[5:]) + query)
            return common.Response(status or 502, body)
        if p == ["api", "search"]:
            return common.json_response(200, self._search(req))
        if p[:3] == ["api", "dashboards", "uid"] and len(p) == 4:
            return self._dashboard(p[3])
        return common.json_response(404, {"message": "Not found"})

    def _by_uid(self, uid: str) -> dict[str, Any] | None:
        return next((d for d in self.datasources if d["uid"] == uid), None)

    @staticmethod
    def _ds_item(ds: dict[str, Any]) -> dict[str, Any]:
        return {"id": ds["id"], "uid": ds["uid"], "orgId": ds.get("orgId", 1),
                "name": ds.get("name"), "type": ds.get("type"),
                "typeName": TYPE_NAMES.get(ds.get("type", ""), ds.get("type")),
                "typeLogoUrl": "", "access": ds.get("access", "proxy"), "url": ds.get("url", ""),
                "user": ds.get("user", ""), "database": ds.get("database", ""),
                "basicAuth": bool(ds.get("basicAuth")), "isDefault": bool(ds.get("isDefault")),
                "jsonData": ds.get("jsonData") or {}, "readOnly": not ds.get("editable", False)}

    def _datasource(self, req: common.Request, uid: str, rest: list[str]) -> common.Response:
        ds = self._by_uid(uid)
        if ds is None:
            return common.json_response(404, {"message": "Data source not found"})
        if not rest:
            return common.json_response(200, {
                **self._ds_item(ds), "basicAuthUser": ds.get("basicAuthUser", ""),
                "withCredentials": False, "version": 1,
                "secureJsonFields": {k: True for k in ds.get("secureJsonData") or {}}})
        if rest == ["health"]:
            try:
                ok, message = check_health(ds)
            except LookupError as exc:
                return common.json_response(501, {"message": str(exc)})
            return common.json_response(200 if ok else 400, {
                "status": "OK" if ok else "ERROR", "message": message})
        return common.json_response(404, {"message": "Not found"})

    def _search(self, req: common.Request) -> list[dict[str, Any]]:
        kinds = req.query.get("type") or ["dash-folder", "dash-db"]
        text = (req.arg("query") or "").lower()
        tags = set(req.query.get("tag", []))
        entries = load_dashboards(self.provisioning)
        out: list[dict[str, Any]] = []
        if "dash-folder" in kinds and not tags:
            folders = {(e["folderUid"], e["folder"]) for e in entries if e["folderUid"]}
            out += [{"id": 1000 + n, "uid": uid, "title": title, "uri": f"db/{_slug(title)}",
                     "url": f"/dashboards/f/{uid}/{_slug(title)}", "slug": "",
                     "type": "dash-folder", "tags": [], "isStarred": False}
                    for n, (uid, title) in enumerate(sorted(folders)) if text in title.lower()]
        if "dash-db" in kinds:
            for e in entries:
                d = e["dashboard"]
                if text not in d.get("title", "").lower() or not tags <= set(d.get("tags", [])):
                    continue
                slug = _slug(d.get("title", ""))
                out.append({"id": e["id"], "uid": d.get("uid"), "title": d.get("title"),
                            "uri": f"db/{slug}", "url": f"/d/{d.get('uid')}/{slug}",
                            "slug": "", "type": "dash-db", "tags": d.get("tags", []),
                            "isStarred": False, "folderUid": e["folderUid"],
                            "folderTitle": e["folder"],
                            "folderUrl": f"/dashboards/f/{e['folderUid']}/{_slug(e['folder'])}"})
        return out[:int(req.arg("limit") or 1000)]

    def _dashboard(self, uid: str) -> common.Response:
        entry = next((e for e in load_dashboards(self.provisioning)
                      if e["dashboard"].get("uid") == uid), None)
        if entry is None:
            return common.json_response(404, {"message": "Dashboard not found"})
        d = entry["dashboard"]
        slug = _slug(d.get("title", ""))
        return common.json_response(200, {
            "dashboard": {**d, "id": entry["id"], "version": d.get("version", 1)},
            "meta": {"type": "db", "canSave": False, "canEdit": False, "canAdmin": False,
                     "canStar": True, "slug": slug, "url": f"/d/{uid}/{slug}",
                     "provisioned": True, "provisionedExternalId": entry["file"],
                     "folderUid": entry["folderUid"], "folderTitle": entry["folder"]}})

    def metrics(self) -> str:
        dashboards = len(load_dashboards(self.provisioning))
        try:
            with database() as db:
                users = db.execute("SELECT COUNT(*) FROM user").fetchone()[0]
        except sqlite3.Error:
            users = 0
        plugins: dict[str, int] = {}
        for ds in self.datasources:
            plugins[ds.get("type", "")] = plugins.get(ds.get("type", ""), 0) + 1
        return common.exposition([
            ("grafana_build_info", "gauge",
             "A metric with a constant '1' value labeled by version, revision, branch, and "
             "goversion from which Grafana was built",
             [({"branch": "HEAD", "edition": "oss", "goversion": "none (stand-in)",
                "revision": "standin", "version": VERSION}, 1)]),
            ("grafana_stat_totals_dashboard", "gauge", "total amount of dashboards",
             [({}, dashboards)]),
            ("grafana_stat_total_users", "gauge", "total amount of users", [({}, users)]),
            ("grafana_stat_totals_datasource", "gauge",
             "total number of defined datasources, labeled by pluginId",
             [({"plugin_id": k}, v) for k, v in sorted(plugins.items())]),
        ])


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def cli(args: list[str]) -> int:
    """grafana cli admin reset-admin-password [--password-from-stdin] <new password>"""
    words: list[str] = []
    skip = False
    for arg in args:  # global options (--homepath DIR, --config=FILE, ...) are not ours
        if skip:
            skip = False
        elif arg in ("--homepath", "--config", "--configOverrides", "--pluginsDir"):
            skip = True
        elif not arg.startswith("--") or arg == "--password-from-stdin":
            words.append(arg)
    if words[:2] != ["admin", "reset-admin-password"]:
        print(f"stand-in grafana cli: only `admin reset-admin-password` is answered, not {args}",
              file=sys.stderr)
        return 1
    rest = words[2:]
    if rest[:1] == ["--password-from-stdin"]:
        password = sys.stdin.readline().rstrip("\n")
    elif rest:
        password = rest[0]
    else:
        print("Error: ✗ missing arguments", file=sys.stderr)
        return 1
    reset_admin_password(password)
    print("\nAdmin password changed successfully ✔\n")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["cli"]:
        return cli(argv[1:])
    ensure_admin()
    grafana = Grafana()
    server = common.http_server(NAME, grafana.handle, common.port(
        "http", int(env("GF_SERVER_HTTP_PORT", "3000"))))
    return common.run_until_signal(NAME, [server])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
