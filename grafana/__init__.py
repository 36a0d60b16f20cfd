"""Grafana configuration of the bundle.

Mostly a config folder (provisioning/ and dashboards/ are mounted into Grafana);
it is a package only so the dashboard generator runs as `python -m grafana.codegen`.
"""
