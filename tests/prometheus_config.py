"""A Prometheus configuration file as Prometheus loads it, for the tests that read jobs.

The scrape jobs live in prometheus/scrape-configs.yml, which prometheus.yml (and the HA and
agent configs) include through `scrape_config_files`: load() merges them back into
`scrape_configs`, resolving each glob against the including file's directory like
Prometheus does (config.GetScrapeConfigs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_YML = ROOT / "prometheus" / "prometheus.yml"


def load(config: Path = PROMETHEUS_YML) -> dict[str, Any]:
    doc = yaml.safe_load(config.read_text()) or {}
    jobs = list(doc.get("scrape_configs") or [])
    for pattern in doc.get("scrape_config_files") or []:
        for path in sorted(config.parent.glob(pattern)):
            jobs += (yaml.safe_load(path.read_text()) or {}).get("scrape_configs") or []
    doc["scrape_configs"] = jobs
    return doc
