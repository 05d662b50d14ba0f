"""Measure a registered model on the project's current data, the way the pipeline measures a new one: its own
index of the catalog (`resonance index build`), its calibration on the val queries (`resonance calibrate`), then
`resonance evaluate --method embedding` on the evaluation query set. Each step is the CLI verb run as a
subprocess in the project folder (its output streamed to `log`), so nothing here re-implements a stage."""

from __future__ import annotations

import copy
import sys
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resonance.registry.lineage import RegistryError


def run_cli(args: list[str], cwd: Path, log: Callable[[str], None] = print) -> str:
    """Run `python -m resonance ARGS` in `cwd`, streaming its output lines to `log`; returns the last line.
    RegistryError with the last lines of output when it fails."""
    import subprocess

    cmd = [sys.executable, "-m", "resonance", "-q", *args]
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: deque[str] = deque(maxlen=15)
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            tail.append(line)
            log(line)
    if proc.wait() != 0:
        raise RegistryError(f"`resonance {' '.join(args)}` failed (exit {proc.returncode}): " + " | ".join(tail))
    return tail[-1] if tail else ""


def build_index_and_calibration(project_dir: Path, model_uri: str, out_dir: Path, catalog: str, val_queries: str,
                                log: Callable[[str], None] = print, params_file: str = "params.yaml") -> None:
    """`out_dir`/index (the catalog embedded by `model_uri`) and `out_dir`/calibration (fitted on `val_queries`
    against that index), both written by the CLI verbs."""
    out_dir = Path(out_dir).resolve()
    run_cli(["--params", params_file, "index", "build", "--model", model_uri, "--catalog", catalog,
             "--out", str(out_dir / "index")], project_dir, log)
    run_cli(["--params", params_file, "calibrate", "--model", model_uri, "--index", str(out_dir / "index"),
             "--catalog", catalog, "--queries", val_queries, "--out", str(out_dir / "calibration")], project_dir, log)


# The pipeline's own index and calibration (dvc.yaml stages `index` and `calibrate`) and what they are built from.
PIPELINE_BUILD = {"index": "data/index", "calibration": "data/calibration"}
PIPELINE_SOURCES = ("data/catalog", "data/queries/val")


def reuse_pipeline_build(project_dir: Path, model_sha256: str, catalog: str, val_queries: str, out_dir: Path,
                         log: Callable[[str], None] = print) -> bool:
    """Copy the pipeline's data/index and data/calibration into `out_dir` when they are what
    `build_index_and_calibration` would make: built for this very model (both record `model_sha256`), from
    the same catalog and val queries, and current by `dvc status` (no dependency or param moved since).
    Returns False, copying nothing, otherwise. Saves rebuilding what `dvc repro` just built (minutes)."""
    import json
    import shutil

    from resonance.orchestrate import ReproError, dvc_stale

    project_dir = Path(project_dir)
    if (catalog, val_queries) != PIPELINE_SOURCES:
        return False
    try:
        recorded = {json.loads((project_dir / PIPELINE_BUILD["index"] / "index.json").read_text()).get("model_sha256"),
                    json.loads((project_dir / PIPELINE_BUILD["calibration"] / "calibration.json").read_text())
                    .get("model_sha256")}
        if recorded != {model_sha256} or dvc_stale(project_dir, ["index", "calibrate"]):
            return False
    except (OSError, ValueError, ReproError):
        return False
    for name, source in PIPELINE_BUILD.items():
        shutil.copytree(project_dir / source, Path(out_dir) / name)
    log(f"the pipeline's {' and '.join(PIPELINE_BUILD.values())} were built for this model and are current: "
        "copied, not rebuilt")
    return True


def reevaluate(project_dir: Path, model_uri: str, data_key: str, log: Callable[[str], None] = print,
               keep_dir: Path | None = None) -> dict[str, Any]:
    """The gate figures of `model_uri` on the current catalog and query sets (data_key names that data): index,
    calibration and evaluation in a temp folder (or `keep_dir`), as the pipeline does for a new model."""
    import json

    import yaml

    from resonance.config import EvaluateParams, load_params
    from resonance.config.loader import build
    from resonance.registry.figures import gate_figures

    project_dir = Path(project_dir)
    params = load_params(project_dir / "params.yaml")
    ev = build(EvaluateParams, params.get("evaluate"), "evaluate")
    with tempfile.TemporaryDirectory(prefix="resonance-reevaluate-") as tmp:
        work = Path(keep_dir or tmp).resolve()
        work.mkdir(parents=True, exist_ok=True)
        build_index_and_calibration(project_dir, model_uri, work, "data/catalog", "data/queries/val", log)
        local = copy.deepcopy(params)
        local["embedding"].update(model=model_uri, index=str(work / "index"), calibration=str(work / "calibration"))
        (work / "params.yaml").write_text(yaml.safe_dump(local, sort_keys=False))
        run_cli(["--params", str(work / "params.yaml"), "evaluate", "--method", "embedding", "--catalog",
                 "data/catalog", "--queries", f"data/queries/{ev.query_set}", "--out", str(work / "evaluate"),
                 "--metrics", str(work / "headline.json")], project_dir, log)
        headline = json.loads((work / "headline.json").read_text())
        metrics = json.loads((work / "evaluate" / "metrics.json").read_text())
    return gate_figures(headline, metrics, data_key)
