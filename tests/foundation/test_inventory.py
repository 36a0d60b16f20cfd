"""One prometheus.yml, one target inventory per environment: they must agree.

prometheus/targets/<env>/ is complete for the environments a whole Prometheus runs in
(compose, native, staging); remote/ is the inventory of a remote host's agent and lists only
what runs there. <env>/scale/ holds the scale profile's replacements of files of <env>/
(mounted or linked over them), and native/remote/ the native stand-in for a remote host.
"""

from pathlib import Path

import pytest
import yaml

from tests import prometheus_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "prometheus" / "prometheus.yml"
TARGETS = ROOT / "prometheus" / "targets"
ENVS = sorted(p.name for p in TARGETS.iterdir() if p.is_dir())
# Inventories of an agent-mode Prometheus: a subset of the jobs, whatever the host runs.
PARTIAL = {"remote"}


def inventory_files(config: dict) -> set[str]:
    """Every file_sd path prometheus.yml reads (scrape jobs and Alertmanagers)."""
    sd_lists = [job.get("file_sd_configs", []) for job in config["scrape_configs"]]
    sd_lists += [am.get("file_sd_configs", []) for am in config["alerting"]["alertmanagers"]]
    return {f for sds in sd_lists for sd in sds for f in sd["files"]}


def test_environments_exist() -> None:
    assert ENVS == ["compose", "native", "remote", "staging"]


def test_every_job_reads_an_inventory_file() -> None:
    config = prometheus_config.load(CONFIG)
    for job in config["scrape_configs"]:
        assert "static_configs" not in job, f"{job['job_name']}: targets belong in the inventories"
        files = [f for sd in job["file_sd_configs"] for f in sd["files"]]
        assert files and all(f.startswith("inventory/") for f in files), job["job_name"]


@pytest.mark.parametrize("env", ENVS)
def test_inventory_is_complete_and_labelled(env: str) -> None:
    config = prometheus_config.load(CONFIG)
    env_dir = ROOT / "prometheus" / "targets" / env
    wanted = {f.removeprefix("inventory/") for f in inventory_files(config)}
    present = {p.name for p in env_dir.glob("*.yml")}
    if env in PARTIAL:
        assert present and present <= wanted, f"{env}: no job reads {present - wanted}"
    else:
        assert wanted == present, f"{env}: missing {wanted - present}, unused {present - wanted}"
    for name in sorted(present):
        check_groups(env_dir / name, env)
    for sub in sorted(p for p in env_dir.iterdir() if p.is_dir()):
        files = {p.name for p in sub.glob("*.yml")}
        # scale/ replaces files of the environment; remote/ is a partial (agent) inventory.
        assert files and files <= (present if sub.name == "scale" else wanted), (
            f"{env}/{sub.name}: {files - wanted} is no inventory file of any job"
        )
        for name in sorted(files):
            check_groups(sub / name, env)


def check_groups(path: Path, env: str) -> None:
    where = path.relative_to(TARGETS)
    groups = yaml.safe_load(path.read_text())
    assert isinstance(groups, list), f"{where}: must be a list of target groups"
    for group in groups:
        labels = group.get("labels", {})
        assert labels.get("env") == env, f"{where}: env label must be {env!r}"
        assert labels.get("service"), f"{where}: every target group needs a service label"
        assert group["targets"], f"{where}: empty target group"


def test_native_inventory_is_loopback_only() -> None:
    for path in (TARGETS / "native").glob("**/*.yml"):
        for group in yaml.safe_load(path.read_text()):
            addresses = [*group["targets"], group["labels"].get("blackbox", "127.0.0.1")]
            for address in addresses:
                host = address.split("//")[-1].split(":")[0]
                assert host == "127.0.0.1", f"{path.name}: {address} is not on loopback"
