"""Every container of the compose stack is healthy; the one-shot jobs finished cleanly."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.compose

# Services that run once and exit (restart: "no"); everything else must stay up and healthy.
ONE_SHOT = {"volume-init", "elasticsearch-setup"}


def test_every_container_healthy(compose) -> None:
    containers = compose.containers()
    assert containers, "compose ps lists no container"
    problems = []
    for c in containers:
        name, state, health = c["Service"], c.get("State"), c.get("Health", "")
        if name in ONE_SHOT:
            if state != "exited" or int(c.get("ExitCode", -1)) != 0:
                problems.append(f"{name}: one-shot {state}, exit code {c.get('ExitCode')}")
        elif state != "running" or health != "healthy":
            # compose.yaml gives every long-running service a healthcheck: "" is a defect too.
            problems.append(f"{name}: {state}, health {health or 'none'}")
    compose.watch(*(p.split(":")[0] for p in problems))
    assert not problems, "\n".join(problems)


def test_one_shot_setup_applied_template_and_policies(compose, es) -> None:
    compose.watch("elasticsearch-setup", "elasticsearch")
    template = es.get("/_index_template/apollonia-logs")
    assert template.status_code == 200, template.text
    patterns = template.json()["index_templates"][0]["index_template"]["index_patterns"]
    assert patterns == ["apollonia-*"]
    for policy in ("apollonia-logs", "apollonia-traces"):
        resp = es.get(f"/_ilm/policy/{policy}")
        assert resp.status_code == 200, f"{policy}: {resp.text}"
        assert "delete" in resp.json()[policy]["policy"]["phases"]
    # Single node: no index may ask for a replica it can never get.
    health = es.get("/_cluster/health").json()
    assert health["status"] == "green", health
