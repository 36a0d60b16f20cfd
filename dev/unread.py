"""Files in a config folder that its consumer will never read (part of `make lint`).

    python -m dev.unread [--root DIR]

Prometheus, Alertmanager and Grafana read some folders by glob: a rules file named
`prometheus/rules/x.yaml` next to `rule_files: [rules/*.yml]`, an inventory that no
`file_sd_configs` names, an Alertmanager template without `.tmpl` or a dashboard that is not
`.json` is silently ignored. Nothing here restates a glob: each is read from the config
that holds it (rule_files, scrape_config_files, file_sd_configs, templates, the Grafana
dashboard providers' options.path) and mapped from the container's path to the repository's
through the compose files' bind mounts. What is fixed is only which key of which tool is a
glob, and Grafana's own rule for its provisioning folders: every `*.yaml` / `*.yml` in
datasources/, dashboards/, plugins/ and alerting/ (grafana.com/docs/grafana/latest/
administration/provisioning/).

One line per unread file, naming it and the glob it misses; exit 1 if there is any.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILES = ("compose.yaml", "compose.staging.yaml", "compose.scale.yaml", "compose.agent.yaml")
GRAFANA_KINDS = ("datasources", "dashboards", "plugins", "alerting")
_VAR = re.compile(r"\$\{[^}]*\}")


@dataclass
class Folder:
    """A repository folder its consumer reads by glob."""

    path: str  # relative to the repository; may hold `*` (an environment variable's value)
    patterns: set[str] = field(default_factory=set)  # file names (or relative paths, **)
    why: set[str] = field(default_factory=set)  # where the globs come from
    recursive: bool = False  # files in subfolders count (and are matched by name)


class Mounts:
    """Container path -> repository path, from the bind mounts of every compose file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.binds: dict[str, list[tuple[str, str]]] = {}
        self.services: list[tuple[str, dict[str, Any]]] = []  # (name, as one file has it)
        for name in COMPOSE_FILES:
            path = root / name
            if not path.is_file():
                continue
            doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_ComposeLoader) or {}
            for svc, spec in (doc.get("services") or {}).items():
                spec = spec or {}
                self.services.append((svc, spec))
                for vol in spec.get("volumes") or []:
                    bind = _bind(vol)
                    if bind:
                        self.binds.setdefault(svc, []).append(bind)

    def hosts(self, service: str, container: str) -> list[str]:
        """The repository paths (relative, `*` for a variable) of a container path: one per
        compose file that binds it (an overlay may bind another folder there)."""
        found = [(s, t) for s, t in self.binds.get(service, [])
                 if container == t or container.startswith(t.rstrip("/") + "/")]
        if not found:
            return []
        longest = max(len(t) for _, t in found)
        out = []
        for source, target in found:
            if len(target) == longest:
                rest = container[len(target):].lstrip("/")
                source = _VAR.sub("*", source).removeprefix("./").rstrip("/")
                out.append(f"{source}/{rest}" if rest else source)
        return list(dict.fromkeys(out))

    def host(self, service: str, container: str) -> str | None:
        hosts = self.hosts(service, container)
        return hosts[0] if hosts else None


class _ComposeLoader(yaml.SafeLoader):
    """Compose's merge tags (!override, !reset) read as the plain value they tag."""


def _untag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_ComposeLoader.add_multi_constructor("!", _untag)


def _bind(vol: Any) -> tuple[str, str] | None:
    if isinstance(vol, dict):
        if vol.get("type") == "bind" and vol.get("source") and vol.get("target"):
            return str(vol["source"]), str(vol["target"])
        return None
    parts = _VAR.sub("*", str(vol)).split(":")
    if len(parts) >= 2 and parts[0].startswith((".", "/")):
        return parts[0], parts[1]
    return None


def _flag(command: Any, name: str) -> str | None:
    for arg in command if isinstance(command, list) else str(command or "").split():
        if str(arg).startswith(f"--{name}="):
            return str(arg).split("=", 1)[1]
    return None


def _load(root: Path, rel: str) -> dict[str, Any]:
    path = root / rel
    if "*" in rel or not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _add(folders: dict[str, Folder], host: str | list[str] | None, pattern: str, why: str,
         recursive: bool = False) -> None:
    if isinstance(host, list):
        for h in host:
            _add(folders, h, pattern, why, recursive)
        return
    if host is None:
        return
    folder = folders.setdefault(host, Folder(host, recursive=recursive))
    folder.patterns.add(pattern)
    folder.why.add(why)
    folder.recursive |= recursive


def _glob(folders: dict[str, Folder], mounts: Mounts, service: str, config_dir: str,
          glob: str, why: str, recursive: bool = False) -> None:
    """A glob relative to a config in the container -> its repository folder and pattern."""
    full = PurePosixPath(config_dir, glob)
    _add(folders, mounts.hosts(service, str(full.parent)), full.name, why, recursive)


def _file_sd(cfg: dict[str, Any]) -> Iterator[str]:
    jobs = list(cfg.get("scrape_configs") or [])
    for am in ((cfg.get("alerting") or {}).get("alertmanagers") or []):
        jobs.append(am)
    for job in jobs:
        for sd in (job or {}).get("file_sd_configs") or []:
            yield from (sd or {}).get("files") or []


def prometheus(folders: dict[str, Folder], mounts: Mounts, service: str, config: str) -> None:
    config_dir = str(PurePosixPath(config).parent)
    for host in mounts.hosts(service, config):
        cfg = _load(mounts.root, host)
        for glob in cfg.get("rule_files") or []:
            _glob(folders, mounts, service, config_dir, glob, f"rule_files of {host}: {glob}")
        configs = [(cfg, host)]
        for extra in cfg.get("scrape_config_files") or []:
            for inner in mounts.hosts(service, str(PurePosixPath(config_dir, extra))):
                configs.append((_load(mounts.root, inner), inner))
        for doc, name in configs:
            for glob in _file_sd(doc):
                # file_sd paths resolve against the config's directory. Each environment's
                # inventory folder holds the same names (the mount's ${VARIABLE} is any of
                # them), and files in its subfolders are mounted over them by name.
                _glob(folders, mounts, service, config_dir, glob, f"file_sd_configs of {name}",
                      recursive=True)


def alertmanager(folders: dict[str, Folder], mounts: Mounts, service: str, config: str) -> None:
    for host in mounts.hosts(service, config):
        for glob in _load(mounts.root, host).get("templates") or []:
            _glob(folders, mounts, service, str(PurePosixPath(config).parent), glob,
                  f"templates of {host}: {glob}")


def grafana(folders: dict[str, Folder], mounts: Mounts, service: str, provisioning: str) -> None:
    base = mounts.host(service, provisioning)
    if base is None:
        return
    # The provisioning folder itself: only its kinds' folders are read.
    _add(folders, base, "*/*", "Grafana reads provisioning/<kind>/ for the kinds "
         + ", ".join(GRAFANA_KINDS))
    folders[base].patterns = {f"{kind}/*" for kind in GRAFANA_KINDS}
    folders[base].recursive = True
    for kind in GRAFANA_KINDS:
        for ext in ("*.yaml", "*.yml"):
            _add(folders, f"{base}/{kind}", ext, f"Grafana reads {kind}/*.yaml and *.yml")
    for path in sorted((mounts.root / base / "dashboards").glob("*.y*ml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for provider in doc.get("providers") or []:
            target = ((provider or {}).get("options") or {}).get("path")
            if target:
                _add(folders, mounts.hosts(service, str(target)), "*.json",
                     f"the dashboard provider {provider.get('name')!r} of "
                     f"{path.relative_to(mounts.root)} (*.json, subfolders too)",
                     recursive=True)


def consumers(root: Path) -> dict[str, Folder]:
    """Every folder read by glob, with its patterns, from the compose files and configs."""
    mounts = Mounts(root)
    folders: dict[str, Folder] = {}
    images = {name: str(spec["image"]) for name, spec in mounts.services if spec.get("image")}
    for name, spec in mounts.services:
        # An overlay's entry for a service inherits its image (and a scale replica's name
        # says what it runs).
        image = f"{images.get(name, '')} {name}"
        config = _flag(spec.get("command"), "config.file")
        if config and "alertmanager" in image:
            alertmanager(folders, mounts, name, config)
        elif config and "prometheus" in image:
            prometheus(folders, mounts, name, config)
        env = spec.get("environment") or {}
        if isinstance(env, dict) and env.get("GF_PATHS_PROVISIONING"):
            grafana(folders, mounts, name, str(env["GF_PATHS_PROVISIONING"]))
    return folders


def unread(root: Path) -> list[str]:
    problems: dict[Path, str] = {}  # one line per file (the first folder that reads it)
    for folder in consumers(root).values():
        dirs = sorted(p for p in root.glob(folder.path) if p.is_dir())
        for base in dirs:
            for f in sorted(p for p in base.rglob("*") if p.is_file()):
                rel = f.relative_to(base).as_posix()
                if folder.recursive:
                    read = any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(f.name, pat)
                               for pat in folder.patterns)
                else:  # a glob without ** reads no subfolder
                    read = f.parent == base and any(fnmatch.fnmatch(f.name, pat)
                                                    for pat in folder.patterns)
                if read:
                    continue
                problems.setdefault(
                    f, f"{f.relative_to(root)}: never read: {folder.path}/ is read as "
                    f"{', '.join(sorted(folder.patterns))} ({'; '.join(sorted(folder.why))}); "
                    "rename it to match or move it out")
    return [problems[f] for f in sorted(problems)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.unread",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=REPO)
    args = parser.parse_args(argv)
    try:
        problems = unread(args.root.resolve())
    except (OSError, yaml.YAMLError) as exc:
        print(f"unread: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
