"""retrain: reproduce the pipeline with DVC, register the new model version, gate it, deploy the champion.

    .venv/bin/python flows/retrain.py                    # one run now (an ephemeral Prefect server starts itself)
    .venv/bin/python flows/retrain.py --profile quick    # the whole chain on a small catalog, in runs/quick/
    .venv/bin/python flows/retrain.py --reason "new songs added"
    .venv/bin/python flows/retrain.py --all              # also the baselines' evaluation and the report

Steps (each a Prefect task calling a plain function of resonance): fetch (the download stages, retried),
validate (`dvc repro validate`: a failing validation stops the flow before training), repro (`dvc repro` of
params flows.retrain_targets: train, index, calibrate, evaluate_embedding, field, evaluate_field and what they
need), register (lineage, description, artifacts, alias challenger), gate (promote or hold, reasons as tags),
report (RESULTS.md, reproduced when the baselines are current, else left for `dvc repro`; with --all the
repro step already ran every stage), then the `rebuild-index` flow when the champion changed. A rerun with nothing
changed reproduces nothing, registers nothing and promotes nothing.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

ROOT = Path(__file__).resolve().parents[1]


def sibling(name: str):
    """Another flow module of this folder (flows/ is not a package)."""
    from resonance.orchestrate import flow_module

    return flow_module(Path(__file__).parent, name)


def flows_params(project_dir: str):
    from resonance.config import load_section
    from resonance.config.mlops import FlowsParams

    return load_section(Path(project_dir) / "params.yaml", "flows", FlowsParams)


@task(name="dvc-repro")
def repro(project_dir: str, targets: list[str]) -> list[str]:
    """`dvc repro TARGETS`; the stages that ran."""
    from resonance.orchestrate import dvc_repro

    logger = get_run_logger()
    return dvc_repro(Path(project_dir), targets, log=logger.info)


@task(name="report")
def report(project_dir: str) -> dict:
    """`dvc repro` of the report when only it is behind (the baselines are current); else nothing, with a note
    of what waits for `dvc repro`. Returns {"ran": stages, "waiting": stages left for `dvc repro`}."""
    from resonance.orchestrate import dvc_repro, dvc_stale

    logger = get_run_logger()
    stale = dvc_stale(Path(project_dir), [])
    if set(stale) <= {"report"}:
        return {"ran": dvc_repro(Path(project_dir), [], log=logger.info) if stale else [], "waiting": []}
    logger.info(f"left for `dvc repro` (or --all): {', '.join(stale)}: the report waits for the baselines")
    return {"ran": [], "waiting": stale}


@task(name="register")
def register(project_dir: str, reason: str | None) -> dict:
    from resonance.registry.versions import register as register_version

    return register_version(Path(project_dir), reason=reason)


@task(name="promotion-gate")
def gate(project_dir: str, version: str, figures: dict) -> dict:
    from resonance.config import load_section
    from resonance.config.mlops import PromoteParams
    from resonance.registry.gate import run_gate

    params = load_section(Path(project_dir) / "params.yaml", "promote", PromoteParams)
    return run_gate(Path(project_dir), version, figures, params, log=get_run_logger().info)


@flow(name="retrain", log_prints=True)
def retrain(project_dir: str = str(ROOT), reason: str | None = None, everything: bool = False) -> dict:
    """The retrain flow (module docstring); `everything`: reproduce every stage (the baselines too). Returns
    {"ran", "name", "version", "new", "decision", "reasons", "champion", "deployed", "reason", "waiting"}."""
    p = flows_params(project_dir)
    flaky = {"retries": p.retries, "retry_delay_seconds": p.retry_delay_s}
    logger = get_run_logger()
    if reason:
        logger.info(f"retrain requested: {reason}")
    ran = repro.with_options(name="fetch-data", **flaky)(project_dir, ["field"])
    ran += repro.with_options(name="validate-data")(project_dir, ["validate"])
    targets = [] if everything else list(p.retrain_targets)
    ran += repro.with_options(name="reproduce-pipeline")(project_dir, targets)
    version = register.with_options(**flaky)(project_dir, reason)
    if version["new"]:
        decision = gate.with_options(**flaky)(project_dir, version["version"], version["figures"])
    else:
        decision = {"decision": "unchanged", "reasons": [f"v{version['version']} was registered and gated before: "
                                                         "nothing new to promote"], "champion": None}
    waiting = []
    if targets:
        rest = report(project_dir)
        ran, waiting = ran + rest["ran"], rest["waiting"]
    release = sibling("rebuild_index").rebuild_index(project_dir=project_dir)
    result = {"ran": ran, "name": version["name"], "version": version["version"], "new": version["new"],
              "decision": decision["decision"], "reasons": decision["reasons"],
              "champion": release.get("champion"), "deployed": release.get("version"), "reason": reason,
              "waiting": waiting}
    create_markdown_artifact(key="retrain", description="resonance retrain: what ran and the promotion decision",
                             markdown=_summary(result))
    return result


def _summary(r: dict) -> str:
    reasons = "\n".join(f"- {x}" for x in r["reasons"])
    return (f"## retrain: {r['name']} v{r['version']}: **{r['decision']}**\n\n"
            f"Requested because: {r['reason'] or 'scheduled / manual run'}\n\n"
            f"Stages reproduced: {', '.join(r['ran']) or 'none (everything up to date)'}\n\n{reasons}\n\n"
            f"Champion: v{r['champion']}; deployed release: v{r['deployed']}\n"
            + (f"\nLeft for `dvc repro` (the report waits for them): {', '.join(r['waiting'])}\n"
               if r.get("waiting") else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=None, help="a run profile of params.yaml flows.profiles (runs/NAME)")
    parser.add_argument("--reason", default=None, help="why this retrain runs (recorded on the new version)")
    parser.add_argument("--all", action="store_true", dest="everything",
                        help="reproduce every stage: also the baselines' evaluation (hours on a clean clone)")
    args = parser.parse_args()
    from resonance.orchestrate import prepare_profile, where_to_look

    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{ROOT / 'mlruns' / 'mlflow.db'}")
    (ROOT / "mlruns").mkdir(exist_ok=True)
    project = prepare_profile(ROOT, args.profile) if args.profile else ROOT
    result = retrain(project_dir=str(project), reason=args.reason, everything=args.everything)
    print(where_to_look(project, result))


if __name__ == "__main__":
    main()
