"""resonance-pipeline: reproduce the DVC stages in order with Prefect (orchestration only).

    .venv/bin/python flows/pipeline.py                 # one run now (an ephemeral Prefect server starts itself)
    .venv/bin/python flows/pipeline.py --serve         # run on the cron schedule in params.yaml `flows.cron`
                                                       #   (needs `prefect server start` in another shell)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

ROOT = Path(__file__).resolve().parents[1]


@task(name="dvc-repro")
def repro_stage(stage: str, project_dir: str) -> bool:
    """`dvc repro STAGE` in `project_dir`; returns True if the stage ran, False if it was up to date."""
    logger = get_run_logger()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    env.setdefault("DVC_SITE_CACHE_DIR", str(Path(project_dir) / ".dvc" / "site-cache"))  # state stays in the project
    proc = subprocess.Popen(["dvc", "repro", stage], cwd=project_dir, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    ran = False
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        ran |= line.startswith(f"Running stage '{stage}'") or line.startswith(f"Running stage '{stage}@")
        if line and "\r" not in line:
            logger.info(line)
    if proc.wait() != 0:
        raise RuntimeError(f"dvc repro {stage} failed (exit {proc.returncode}); see the log above")
    return ran


@task(name="publish-metrics")
def publish_metrics(project_dir: str) -> dict:
    """Publish every metrics/*.json (validation, evaluation headlines) as Prefect markdown artifacts.

    Returns the validation metrics."""
    found = {}
    for path in sorted((Path(project_dir) / "metrics").glob("*.json")):
        metrics = json.loads(path.read_text())
        rows = "\n".join(f"| {k} | {v} |" for k, v in metrics.items() if not isinstance(v, dict))
        create_markdown_artifact(key=path.stem.replace("_", "-"), description=f"resonance metrics: {path.name}",
                                 markdown=f"| metric | value |\n|---|---|\n{rows}\n")
        found[path.stem] = metrics
    return found.get("validate", {})


@flow(name="resonance-pipeline", log_prints=True)
def resonance_pipeline(stages: list[str] | None = None, project_dir: str = str(ROOT)) -> dict:
    """Reproduce `stages` (default: the flow's stage list in params.yaml) and publish the metrics."""
    stages = stages or _params(project_dir)["stages"]
    ran = {stage: repro_stage(stage, project_dir) for stage in stages}
    metrics = publish_metrics(project_dir) if "validate" in stages else {}
    return {"ran": ran, "metrics": metrics}


def _params(project_dir: str) -> dict:
    import yaml

    return yaml.safe_load((Path(project_dir) / "params.yaml").read_text())["flows"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help="serve on the cron schedule from params.yaml")
    args = parser.parse_args()
    if args.serve:
        resonance_pipeline.serve(name="scheduled", cron=_params(str(ROOT))["cron"])
    else:
        print(resonance_pipeline())


if __name__ == "__main__":
    main()
