"""Serve the MLOps flows on their schedules against a Prefect server (orchestration only).

    .venv/bin/prefect server start                     # shell 1: the API and UI at http://127.0.0.1:4200
    PREFECT_API_URL=http://127.0.0.1:4200/api .venv/bin/python flows/serve.py   # shell 2

Deployments: `retrain/weekly` (cron flows.retrain_cron), `monitor/daily` (cron flows.monitor_cron) and
`rebuild-index/on-demand` (no schedule; `prefect deployment run rebuild-index/on-demand`). This process runs
the flows it is handed (`prefect.serve`, the many-flow form of `flow.serve`); a work pool and workers take over
when runs should go elsewhere (docs/scale.md).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _flow(module: str, name: str):
    from resonance.orchestrate import flow_module

    return getattr(flow_module(Path(__file__).parent, module), name)


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
