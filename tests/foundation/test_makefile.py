"""`make help` lists the targets for users first, then for contributors; `make up` ends by
printing the address of each UI compose publishes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = ROOT / "Makefile"
USERS = {"up", "down", "test", "doctor", "secrets", "logs", "ps", "reload", "diagnose",
         "bundle", "clean"}
CONTRIBUTORS = {"lint", "mutation", "slo", "dashboards", "bootstrap", "benchmark",
                "benchmark-scale", "benchmark-capacity", "test-rules", "test-live", "smoke"}


def help_groups() -> tuple[list[str], list[str]]:
    """The target names `make help` prints under its two headings."""
    out = subprocess.run(["make", "-s", "--no-print-directory", "help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    users, contributors = out.split("\n\n")
    assert users.startswith("For users") and contributors.startswith("For contributors"), out
    names = [[line.split()[0] for line in group.splitlines()[1:]]
             for group in (users, contributors)]
    return names[0], names[1]


def test_help_lists_users_targets_first_then_contributors() -> None:
    users, contributors = help_groups()
    assert users[:3] == ["up", "test", "down"], users
    assert set(users) >= USERS, USERS - set(users)
    assert set(contributors) >= CONTRIBUTORS, CONTRIBUTORS - set(contributors)
    assert not set(users) & set(contributors)


def test_every_target_with_a_description_is_listed_once() -> None:
    described = re.findall(r"^([a-z][a-z-]*):.*?##(?:@dev)? ", MAKEFILE.read_text(), re.M)
    users, contributors = help_groups()
    assert sorted(users + contributors) == sorted(described)


def test_up_prints_each_ui_compose_publishes() -> None:
    """UI_LINKS (what `make urls` asks `compose port` for) names published container ports."""
    text = MAKEFILE.read_text()
    links = re.search(r"^UI_LINKS := ((?:.*\\\n)*.*)$", text, re.M)
    assert links, "no UI_LINKS in the Makefile"
    entries = [e.split(",") for e in links.group(1).replace("\\\n", " ").split()]
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    published = {(name, str(p).rsplit(":", 1)[-1]) for name, svc in compose.items()
                 for p in svc.get("ports", [])}
    assert {(service, port) for _, service, port, _ in entries} <= published
    assert {label for label, *_ in entries} == {
        "Grafana", "Prometheus", "Alertmanager", "Jaeger", "Demo_api"}
    recipe = text.split("\nup-compose:", 1)[1].split("\n\n", 1)[0]
    assert recipe.index("up -d --build --wait") < recipe.index("urls"), recipe
