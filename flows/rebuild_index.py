"""rebuild-index: when the champion changed, build its release and swap it in for the service.

    .venv/bin/python flows/rebuild_index.py      # one run now; does nothing when deploy/current is the champion's

The release (resonance.registry.deploy): `resonance index build --model models:/NAME/N` (N: the version the
`champion` alias names when the flow starts) and `resonance calibrate` for it, into deploy/.staging-*, then one
atomic exchange with deploy/current (the previous release is kept as deploy/previous). A service whose
serve.index / serve.calibration point into deploy/current reloads on its own (it polls them and the alias).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task

ROOT = Path(__file__).resolve().parents[1]


def _deploy_params(project_dir: str):
    from resonance.config import load_section
    from resonance.config.mlops import DeployParams

    return load_section(Path(project_dir) / "params.yaml", "deploy", DeployParams)


@task(name="champion-changed")
def champion_state(project_dir: str) -> dict:
    from resonance.registry.deploy import champion_changed

    return champion_changed(Path(project_dir), _deploy_params(project_dir))


@task(name="build-release")
def build(project_dir: str) -> dict:
    from resonance.registry.deploy import build_release

    return build_release(Path(project_dir), _deploy_params(project_dir), log=get_run_logger().info)


@flow(name="rebuild-index", log_prints=True)
def rebuild_index(project_dir: str = str(ROOT)) -> dict:
    """Returns {"champion", "version" (deployed after), "swapped"}."""
    from resonance.config import load_section
    from resonance.config.mlops import FlowsParams

    p = load_section(Path(project_dir) / "params.yaml", "flows", FlowsParams)
    state = champion_state(project_dir)
    if not state["changed"]:
        get_run_logger().info(f"rebuild-index: deployed v{state['deployed']} is the champion "
                              f"(v{state['champion']}): nothing to do")
        return {"champion": state["champion"], "version": state["deployed"], "swapped": False}
    release = build.with_options(retries=p.retries, retry_delay_seconds=p.retry_delay_s)(project_dir)
    return {"champion": state["champion"], "version": release["version"], "swapped": release["swapped"]}


if __name__ == "__main__":
    print(rebuild_index())
