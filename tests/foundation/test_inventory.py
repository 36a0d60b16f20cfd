"""One prometheus.yml, one target inventory per environment: they must agree."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "prometheus" / "prometheus.yml"
ENVS = sorted(p.name for p in (ROOT / "prometheus" / "targets").iterdir() if p.is_dir())


def inventory_files(config: dict) -> set[str]:
    """Every file_sd path prometheus.yml reads (scrape jobs and Alertmanagers)."""
    sd_lists = [job.get("file_sd_configs", []) for job in config["scrape_configs"]]
    sd_lists += [am.get("file_sd_configs", []) for am in config["alerting"]["alertmanagers"]]
    return {f for sds in sd_lists for sd in sds for f in sd["files"]}


def test_environments_exist() -> None:
    assert ENVS == ["compose", "native", "staging"]


def test_every_job_reads_an_inventory_file() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    for job in config["scrape_configs"]:
        assert "static_configs" not in job, f"{job['job_name']}: targets belong in the inventories"
        files = [f for sd in job["file_sd_configs"] for f in sd["files"]]
        assert files and all(f.startswith("inventory/") for f in files), job["job_name"]


@pytest.mark.parametrize("env", ENVS)
def test_inventory_is_complete_and_labelled(env: str) -> None:
    config = yaml.safe_load(CONFIG.read_text())
    env_dir = ROOT / "prometheus" / "targets" / env
    wanted = {f.removeprefix("inventory/") for f in inventory_files(config)}
    present = {p.name for p in env_dir.glob("*.yml")}
    assert wanted == present, f"{env}: missing {wanted - present}, unused {present - wanted}"
    for name in sorted(present):
        groups = yaml.safe_load((env_dir / name).read_text())
        assert isinstance(groups, list), f"{env}/{name}: must be a list of target groups"
        for group in groups:
            labels = group.get("labels", {})
            assert labels.get("env") == env, f"{env}/{name}: env label must be {env!r}"
            assert labels.get("service"), f"{env}/{name}: every target group needs a service label"
            assert group["targets"], f"{env}/{name}: empty target group"


def test_native_inventory_is_loopback_only() -> None:
    for path in (ROOT / "prometheus" / "targets" / "native").glob("*.yml"):
        for group in yaml.safe_load(path.read_text()):
            addresses = [*group["targets"], group["labels"].get("blackbox", "127.0.0.1")]
            for address in addresses:
                host = address.split("//")[-1].split(":")[0]
                assert host == "127.0.0.1", f"{path.name}: {address} is not on loopback"
