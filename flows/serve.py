"""Serve the MLOps flows on their schedules against a Prefect server (orchestration only).

    .venv/bin/prefect server start                     # shell 1: the API and UI at http://127.0.0.1:4200
    PREFECT_API_URL=http://127.0.0.1:4200/api .venv/bin/python flows/serve.py   # shell 2

Deployments: `retrain/weekly` (cron flows.retrain_cron), `monitor/daily` (cron flows.monitor_cron) and
`rebuild-index/on-demand` (no schedule; `prefect deployment run rebuild-index/on-demand`). This process runs
the flows it is handed (`prefect.serve`, the many-flow form of `flow.serve`); a work pool and workers take over
when runs should go elsewhere (docs/scale.md).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _flow(module: str, name: str):
    key = f"resonance_flows_{module}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, Path(__file__).with_name(f"{module}.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[key] = mod
        spec.loader.exec_module(mod)
    return getattr(sys.modules[key], name)


def deployments(project_dir: Path = ROOT) -> list:
    """The three deployments with their schedules from params.yaml `flows`."""
    from resonance.config import load_section
    from resonance.config.mlops import FlowsParams

    p = load_section(project_dir / "params.yaml", "flows", FlowsParams)
    where = {"project_dir": str(project_dir)}
    return [_flow("retrain", "retrain").to_deployment(name="weekly", cron=p.retrain_cron, parameters=where),
            _flow("monitor", "monitor").to_deployment(name="daily", cron=p.monitor_cron, parameters=where),
            _flow("rebuild_index", "rebuild_index").to_deployment(name="on-demand", parameters=where)]


if __name__ == "__main__":
    from prefect import serve

    serve(*deployments())
