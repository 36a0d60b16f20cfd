"""Policy rules for compose.yaml and its overlays.

Each rule takes the configuration as `docker-compose config --format json` renders
it (defaults applied, anchors merged, paths absolute) plus whatever files it needs,
and returns a list of violations: one readable line each, empty when the rule holds.
The tests run every rule on the real files (expect no violation) and on mutated
copies (expect the violation), so a rule that cannot fail is caught too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

REPO = Path(__file__).resolve().parents[2]
Config = Mapping[str, Any]
LOOPBACK = {"127.0.0.1", "::1"}
ROOT_REASON_LABEL = "org.apollonia.root-reason"
# Host paths the node and container exporters may read (never write).
HOST_PATHS = {"/", "/sys", "/var/lib/docker", "/var/run/docker.sock", "/dev/disk"}
# Whole stack + demo must fit a 4 GB VM with room left for the OS and page cache.
MEMORY_BUDGET_BYTES = int(3.5 * 1024**3)
# The scale profile (compose.yaml + compose.scale.yaml + demo) is for an 8 GB host; a remote
# host's agent profile (compose.agent.yaml) must stay small next to what that host runs.
SCALE_MEMORY_BUDGET_BYTES = 6 * 1024**3
AGENT_MEMORY_BUDGET_BYTES = 512 * 1024**2


# --- rendering -----------------------------------------------------------------


def compose_bin() -> list[str] | None:
    """The Compose CLI: $COMPOSE_BIN, the repo's pinned build, or docker-compose on PATH."""
    if os.environ.get("COMPOSE_BIN"):
        return os.environ["COMPOSE_BIN"].split()
    local = REPO / ".tools" / "bin" / "docker-compose"
    if local.exists():
        return [str(local)]
    found = shutil.which("docker-compose")
    return [found] if found else None


def render(
    files: Iterable[Path],
    project_dir: Path = REPO,
    profiles: Iterable[str] = ("demo",),
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`docker-compose config --format json` with no .env and no inherited variables,
    so the result shows the defaults exactly as a fresh clone gets them."""
    binary = compose_bin()
    if binary is None:
        raise RuntimeError("docker-compose not found: run `make bootstrap`")
    with tempfile.NamedTemporaryFile("w", suffix=".env") as empty_env:
        cmd = [*binary, "--project-directory", str(project_dir), "--env-file", empty_env.name]
        for f in files:
            cmd += ["-f", str(f)]
        for p in profiles:
            cmd += ["--profile", p]
        cmd += ["config", "--format", "json"]
        clean_env = {k: os.environ[k] for k in ("PATH", "HOME", "TMPDIR") if k in os.environ}
        clean_env.update(env or {})
        proc = subprocess.run(cmd, capture_output=True, text=True, env=clean_env, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"docker-compose config failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def services(cfg: Config) -> dict[str, dict[str, Any]]:
    return dict(cfg.get("services", {}))


def one_shots(cfg: Config) -> set[str]:
    """Services others wait on with service_completed_successfully (init jobs)."""
    names: set[str] = set()
    for svc in services(cfg).values():
        for dep, spec in (svc.get("depends_on") or {}).items():
            if (spec or {}).get("condition") == "service_completed_successfully":
                names.add(dep)
    return names


def listening_ports(svc: Mapping[str, Any]) -> set[int]:
    ports = {int(str(p).split("/")[0]) for p in svc.get("expose") or []}
    ports |= {int(p["target"]) for p in svc.get("ports") or []}
    return ports


class ComposeTag:
    """A value carrying one of Compose's merge tags (`!override`, `!reset`), which PyYAML
    does not know: kept so a loaded overlay can be written back unchanged."""

    def __init__(self, tag: str, value: Any) -> None:
        self.tag, self.value = tag, value


class _ComposeLoader(yaml.SafeLoader):
    pass


class _ComposeDumper(yaml.SafeDumper):
    pass


def _construct_tag(loader: yaml.SafeLoader, node: yaml.Node) -> ComposeTag:
    if isinstance(node, yaml.SequenceNode):
        value: Any = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    return ComposeTag(node.tag, value)


def _represent_tag(dumper: yaml.SafeDumper, data: ComposeTag) -> yaml.Node:
    if isinstance(data.value, list):
        return dumper.represent_sequence(data.tag, data.value)
    if isinstance(data.value, dict):
        return dumper.represent_mapping(data.tag, data.value)
    return dumper.represent_scalar(data.tag, str(data.value))


for _tag in ("!override", "!reset"):
    _ComposeLoader.add_constructor(_tag, _construct_tag)
_ComposeDumper.add_representer(ComposeTag, _represent_tag)


def load_compose_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_ComposeLoader)


def dump_compose_yaml(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_ComposeDumper, sort_keys=False)


# --- rules -----------------------------------------------------------------------

_IMAGE = re.compile(r"^(?P<name>[^@]+?)(?::(?P<tag>[\w][\w.-]*))?(?:@sha256:[0-9a-f]{64})?$")


def _image_pinned(image: str) -> bool:
    m = _IMAGE.match(image)
    if not m:
        return False
    if "@sha256:" in image:
        return True
    tag = m.group("tag") or ""
    # An exact release: at least major.minor, never a moving tag.
    return bool(re.search(r"\d+\.\d+", tag)) and tag not in {"latest", "stable", "main"}


def unpinned_base_images(build: Mapping[str, Any], project_dir: Path = REPO) -> list[str]:
    dockerfile = Path(build.get("context", project_dir)) / build.get("dockerfile", "Dockerfile")
    if not dockerfile.is_file():
        return [f"{dockerfile.relative_to(project_dir)} does not exist"]
    text = dockerfile.read_text()
    stages = {s.lower() for s in re.findall(r"^\s*FROM\s.*\bAS\s+(\S+)", text, re.I | re.M)}
    bad = []
    for base in re.findall(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)", text, re.I | re.M):
        if base.lower() not in stages | {"scratch"} and not _image_pinned(base):
            bad.append(f"base image {base} in {dockerfile.name} is not pinned")
    return bad


def unpinned_images(cfg: Config, project_dir: Path = REPO) -> list[str]:
    bad = []
    for name, svc in services(cfg).items():
        image = svc.get("image", "")
        if svc.get("build"):
            # Built locally: the base images in its Dockerfile must be pinned instead.
            bad += [f"{name}: {msg}" for msg in unpinned_base_images(svc["build"], project_dir)]
            continue
        if not image:
            bad.append(f"{name}: no image")
        elif not _image_pinned(image):
            bad.append(f"{name}: image {image} is not pinned to an exact release")
    return bad


def missing_healthchecks(cfg: Config) -> list[str]:
    bad = []
    init_jobs = one_shots(cfg)
    svcs = services(cfg)
    for name, svc in svcs.items():
        hc = svc.get("healthcheck") or {}
        if name in init_jobs and svc.get("restart", "no") == "no":
            continue
        if not hc or hc.get("disable") or hc.get("test") in (None, [], ["NONE"]):
            bad.append(f"{name}: no healthcheck")
        for dep, spec in (svc.get("depends_on") or {}).items():
            cond = (spec or {}).get("condition")
            if dep in svcs and dep not in init_jobs and cond != "service_healthy":
                bad.append(f"{name}: depends on {dep} with {cond}, not service_healthy")
    return bad


def non_loopback_ports(cfg: Config) -> list[str]:
    bad = []
    for name, svc in services(cfg).items():
        for port in svc.get("ports") or []:
            host_ip = port.get("host_ip") or "0.0.0.0"
            if host_ip not in LOOPBACK:
                bad.append(
                    f"{name}: port {port.get('published')}->{port.get('target')} "
                    f"published on {host_ip}, not 127.0.0.1"
                )
    return bad


def generated_secret_paths(project_dir: Path = REPO) -> set[Path]:
    """What `make secrets` creates for this project (generated in a scratch dir)."""
    from tools import secrets as secrets_tool

    with tempfile.TemporaryDirectory() as tmp:
        created = secrets_tool.ensure(Path(tmp), repo=project_dir)
    paths = {project_dir / rel for rel in created}
    for p in list(paths):
        paths |= {d for d in p.parents if d.is_relative_to(project_dir / "secrets")}
    return paths


def missing_bind_sources(
    cfg: Config, project_dir: Path = REPO, generated: set[Path] | None = None
) -> list[str]:
    generated = generated_secret_paths(project_dir) if generated is None else generated
    bad = []

    def check(owner: str, source: str, read_only: bool) -> None:
        path = Path(source)
        if path.is_relative_to(project_dir):
            if not path.exists() and path not in generated:
                rel = path.relative_to(project_dir)
                bad.append(f"{owner}: mounted path {rel} does not exist")
        elif source not in HOST_PATHS:
            bad.append(f"{owner}: host path {source} is not one the exporters may read")
        elif not read_only:
            bad.append(f"{owner}: host path {source} must be mounted read-only")

    for name, svc in services(cfg).items():
        for vol in svc.get("volumes") or []:
            if vol.get("type") == "bind":
                check(name, vol["source"], bool(vol.get("read_only")))
        for env_file in svc.get("env_file") or []:
            check(name, env_file["path"] if isinstance(env_file, dict) else env_file, True)
    for name, secret in (cfg.get("secrets") or {}).items():
        if secret.get("file"):
            check(f"secret {name}", secret["file"], True)
    return bad


def root_without_reason(cfg: Config) -> list[str]:
    bad = []
    for name, svc in services(cfg).items():
        user = str(svc.get("user", "")).split(":")[0]
        if user in ("", "0", "root") and not (svc.get("labels") or {}).get(ROOT_REASON_LABEL):
            shown = svc.get("user") or "the image default"
            bad.append(f"{name}: runs as {shown} without a {ROOT_REASON_LABEL} label")
    return bad


_SECRET_KEY = re.compile(r"(PASSWORD|PASSWD|_PASS|SECRET|TOKEN|API_KEY)$", re.I)
_URL_PASSWORD = re.compile(r"://[^/\s:@]+:[^@\s/]+@")


def default_credentials(cfg: Config) -> list[str]:
    bad = []
    for name, svc in services(cfg).items():
        env = svc.get("environment") or {}
        for key, value in env.items():
            if value and _SECRET_KEY.search(key):
                bad.append(f"{name}: {key} is a plain value; use a secret file (*_FILE)")
            if value and _URL_PASSWORD.search(str(value)):
                bad.append(f"{name}: {key} carries a password inside a URL")
        if (
            str(env.get("GF_AUTH_ANONYMOUS_ENABLED", "false")).lower() != "false"
            and name == "grafana"
        ):
            bad.append(f"{name}: anonymous access is on")
        if name == "grafana" and str(env.get("GF_USERS_ALLOW_SIGN_UP", "")).lower() != "false":
            bad.append(f"{name}: sign-up is not switched off")
        if name == "grafana" and "GF_SECURITY_ADMIN_PASSWORD__FILE" not in env:
            bad.append(f"{name}: admin password does not come from a file")
    return bad


def weak_hardening(cfg: Config, budget: int = MEMORY_BUDGET_BYTES) -> list[str]:
    bad = []
    total = 0
    for name, svc in services(cfg).items():
        if "no-new-privileges:true" not in (svc.get("security_opt") or []):
            bad.append(f"{name}: no-new-privileges is not set")
        if "ALL" not in (svc.get("cap_drop") or []):
            bad.append(f"{name}: capabilities are not dropped (cap_drop: [ALL])")
        if svc.get("privileged"):
            bad.append(f"{name}: privileged")
        if svc.get("network_mode") == "host" or svc.get("pid") == "host":
            bad.append(f"{name}: shares a host namespace")
        if name not in one_shots(cfg) and svc.get("restart") in (None, "no"):
            bad.append(f"{name}: no restart policy")
        limit = (((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}).get(
            "memory"
        )
        if not limit:
            bad.append(f"{name}: no memory limit")
        else:
            total += int(limit)
        logging = svc.get("logging") or {}
        opts = logging.get("options") or {}
        rotated = logging.get("driver") == "json-file" and bool(opts.get("max-size"))
        async_fluentd = logging.get("driver") == "fluentd" and opts.get("fluentd-async") == "true"
        if not (rotated or async_fluentd):
            bad.append(f"{name}: logs not rotated (json-file with max-size) nor async fluentd")
    if total > budget:
        bad.append(
            f"memory limits add up to {total / 1024**3:.2f} GiB, over the "
            f"{budget / 1024**3:.1f} GiB budget of this profile"
        )
    return bad


def _host_port(address: str) -> tuple[str, int | None]:
    if "://" in address:
        parts = urlsplit(address)
        default = {"http": 80, "https": 443}.get(parts.scheme)
        return parts.hostname or "", parts.port or default
    host, _, port = address.rpartition(":")
    return (host, int(port)) if port.isdigit() else (address, None)


def _check_address(cfg: Config, owner: str, address: str) -> list[str]:
    host, port = _host_port(address)
    svcs = services(cfg)
    if host not in svcs:
        return [f"{owner}: {address} does not name a compose service"]
    if port is None or port not in listening_ports(svcs[host]):
        return [f"{owner}: {address}: {host} does not listen on port {port}"]
    return []


def inventory_mismatches(cfg: Config, inventory_dir: Path) -> list[str]:
    bad = []
    for path in sorted(inventory_dir.glob("*.yml")):
        for group in yaml.safe_load(path.read_text()) or []:
            for target in group.get("targets") or []:
                bad += _check_address(cfg, path.name, target)
            blackbox = (group.get("labels") or {}).get("blackbox")
            if blackbox:
                bad += _check_address(cfg, path.name, blackbox)
    return bad


_ENV_REF = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def datasource_mismatches(cfg: Config, datasource_files: Iterable[Path]) -> list[str]:
    """Datasource URLs, after Grafana expands $VAR/${VAR} from its compose environment."""
    env = services(cfg).get("grafana", {}).get("environment") or {}
    bad = []
    for path in datasource_files:
        doc = yaml.safe_load(path.read_text()) or {}
        for ds in doc.get("datasources") or []:
            url = ds.get("url")
            if not url:
                continue
            owner = f"{path.name} ({ds.get('name')})"
            missing = [a or b for a, b in _ENV_REF.findall(url) if not env.get(a or b)]
            if missing:
                bad.append(f"{owner}: {url}: {', '.join(missing)} not set for grafana in compose")
                continue
            expanded = _ENV_REF.sub(lambda m: str(env[m.group(1) or m.group(2)]), url)
            bad += _check_address(cfg, owner, expanded)
    return bad


# --- secrets in tracked files -------------------------------------------------------

_SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "bcrypt hash": re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}"),
    "Slack webhook": re.compile(
        r"hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,}"
    ),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
}
_CONFIG_SUFFIXES = {".yml", ".yaml", ".env", ".conf", ".ini", ".toml", ".json", ".example"}
_KEY_VALUE = re.compile(
    r"""(?ix)\b[\w.-]*(?:password|passwd|secret|token|api_?key)\b["']?\s*[:=]\s*
        ["']?(?P<value>[^\s"'#,}]{8,})"""
)


def _placeholder(value: str) -> bool:
    v = value.lower()
    return (
        value.startswith(("$", "/", "<", "{", "%", "file:"))
        or "example" in v
        or "placeholder" in v
        or "change" in v
        or "_from_make_secrets" in v
        or len(set(value)) <= 2
        or v.endswith(("_file", "file"))
    )


def secret_values(files: Mapping[str, str], known_values: Iterable[str] = ()) -> list[str]:
    """Secrets written into tracked files: real values from secrets/ and tell-tale shapes."""
    known = [v for v in known_values if len(v) >= 8]
    bad = []
    for rel, text in files.items():
        for value in known:
            if value in text:
                bad.append(f"{rel}: contains the value of a file in secrets/")
        for what, pattern in _SECRET_PATTERNS.items():
            if pattern.search(text):
                bad.append(f"{rel}: contains a {what}")
        if Path(rel).suffix in _CONFIG_SUFFIXES or Path(rel).name.startswith(".env"):
            for m in _KEY_VALUE.finditer(text):
                if not _placeholder(m.group("value")):
                    bad.append(f"{rel}: literal secret in `{m.group(0)[:40]}...`")
    return bad


def tracked_text_files(repo: Path = REPO) -> dict[str, str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    files = {}
    for rel in filter(None, out.split("\0")):
        path = repo / rel
        try:
            if path.is_file() and path.stat().st_size < 1_000_000:
                files[rel] = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
    return files


def local_secret_values(repo: Path = REPO) -> list[str]:
    root = repo / "secrets"
    values = []
    if root.is_dir():
        for p in root.rglob("*"):
            if p.is_file() and p.suffix == "" and p.parent == root:
                values.append(p.read_text().strip())
    return values


def env_example_mismatches(compose_text: str, env_example_text: str) -> list[str]:
    """The image pins in .env.example and the defaults in the compose files must agree (and
    every file that uses a pin must give it the same default). `compose_text`: the compose
    files concatenated."""
    found = re.findall(r"\$\{([A-Z0-9_]+_IMAGE):-([^}]+)\}", compose_text)
    defaults = dict(found)
    listed = dict(re.findall(r"^([A-Z0-9_]+_IMAGE)=(\S+)$", env_example_text, re.M))
    bad = []
    for key, value in sorted(set(found)):
        if defaults[key] != value:
            bad.append(f"{key}: the compose files pin both {defaults[key]} and {value}")
    for key, value in defaults.items():
        if listed.get(key) != value:
            bad.append(f"{key}: compose.yaml pins {value}, .env.example has {listed.get(key)}")
    for key in listed.keys() - defaults.keys():
        bad.append(f"{key}: in .env.example but not used in compose.yaml")
    return bad
