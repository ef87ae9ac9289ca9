"""prefect.yaml names flows and parameters that exist: a typo there only shows on a worker."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_every_deployment_points_at_a_flow_and_its_parameters():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = spec["deployments"]
    assert {d["name"] for d in deployments} >= {"cozmox", "invent-acme", "backfill"}
    for deployment in deployments:
        module, name = deployment["entrypoint"].split(":")
        flow = getattr(importlib.import_module(module), name)
        accepted = set(inspect.signature(flow.fn).parameters)
        assert set(deployment.get("parameters", {})) <= accepted, deployment["name"]
        assert deployment["work_pool"]["name"] == "chatsync"
        env = deployment["work_pool"].get("job_variables", {}).get("env", {})
        assert all(v.startswith("{{ prefect.blocks.secret.") for k, v in env.items() if "KEY" in k or "token" in k)
    scheduled = [d for d in deployments if d.get("schedules")]
    assert all(d["concurrency_limit"]["limit"] == 1 for d in scheduled)
