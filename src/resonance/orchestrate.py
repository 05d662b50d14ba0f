"""What the Prefect flows call besides the registry and the monitor: `dvc repro` with its stages reported, run
profiles (`make run PROFILE=quick`: a copy of the project in runs/NAME/ with some params replaced), and the
"where to look" summary that ends a run."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resonance.errors import ResonanceError

RUNNING = re.compile(r"^Running stage '([^']+)'")


class ReproError(ResonanceError):
    """`dvc repro` failed; the message names the stage and ends with its last output lines."""


def _dvc() -> str:
    local = Path(sys.executable).parent / "dvc"
    return str(local) if local.is_file() else (shutil.which("dvc") or "dvc")


def _dvc_env(project_dir: Path) -> dict[str, str]:
    """The environment of a dvc subprocess: no analytics, site cache inside the project unless set."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    env.setdefault("DVC_SITE_CACHE_DIR", str(Path(project_dir) / ".dvc" / "site-cache"))
    return env


def dvc_repro(project_dir: Path, targets: list[str], log: Callable[[str], None] = print) -> list[str]:
    """`dvc repro TARGETS` (all stages when empty) in `project_dir`, output streamed to `log`; returns the stages
    that ran, in order (empty: everything was up to date). ReproError when a stage fails."""
    proc = subprocess.Popen([_dvc(), "repro", *targets], cwd=project_dir, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=_dvc_env(project_dir))
    ran: list[str] = []
    tail: deque[str] = deque(maxlen=12)
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        m = RUNNING.match(line)
        if m:
            ran.append(m.group(1))
        if line and "\r" not in line:
            tail.append(line)
            log(line)
    if proc.wait() != 0:
        stage = ran[-1] if ran else (targets[0] if targets else "the pipeline")
        raise ReproError(f"dvc repro {' '.join(targets)}: stage {stage!r} failed (exit {proc.returncode}): "
                         + " | ".join(tail))
    return ran


def dvc_stale(project_dir: Path, targets: list[str]) -> list[str]:
    """The stages among `targets` (and what they depend on) that `dvc repro` would run: `dvc status --json`;
    empty when all are current. ReproError when DVC cannot tell (a target that is no stage, say)."""
    args = ["--with-deps", *targets] if targets else []
    proc = subprocess.run([_dvc(), "status", "--json", *args], cwd=project_dir, capture_output=True, text=True,
                          env=_dvc_env(project_dir))
    if proc.returncode != 0:
        raise ReproError(f"dvc status {' '.join(targets)}: {(proc.stderr or proc.stdout).strip()[-500:]}")
    status = json.loads(proc.stdout or "{}")
    return [name.split(":")[-1] for name in status]


def flow_module(folder: Path, name: str) -> Any:
    """The module of flows/NAME.py in `folder`, loaded once per process (flows/ is a folder of scripts, not a
    package: the flows call each other through this)."""
    import importlib.util

    key = f"resonance_flows_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, Path(folder) / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def _set_dotted(params: dict[str, Any], key: str, value: Any) -> None:
    node = params
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node.get(part), dict):
            raise ResonanceError(f"flows.profiles: {key!r}: {'.'.join(parts[:i + 1])} is not a params section")
        node = node[part]
    if parts[-1] not in node:
        raise ResonanceError(f"flows.profiles: {key!r} is not a params key (a profile only replaces keys)")
    node[parts[-1]] = copy.deepcopy(value)


def profile_params(params: dict[str, Any], name: str) -> dict[str, Any]:
    """params with the dotted keys of flows.profiles.NAME replaced (ResonanceError for an unknown profile/key)."""
    profiles = (params.get("flows") or {}).get("profiles") or {}
    if name not in profiles:
        raise ResonanceError(f"unknown run profile {name!r}; known: {', '.join(sorted(profiles)) or 'none'} "
                             "(params.yaml flows.profiles)")
    out = copy.deepcopy(params)
    for key, value in profiles[name].items():
        _set_dotted(out, key, value)
    return out


def prepare_profile(root: Path, name: str) -> Path:
    """runs/NAME/: a DVC project of its own (dvc.yaml, params.yaml with the profile applied, src/ and data/cache
    linked to the main project's so downloads are shared, benchmarks/ copied so its report stays its own).
    Re-running refreshes dvc.yaml and params.yaml and keeps everything already built there."""
    import yaml

    from resonance.config import load_params

    root = Path(root).resolve()
    params = profile_params(load_params(root / "params.yaml"), name)
    run = root / "runs" / name
    (run / "data").mkdir(parents=True, exist_ok=True)
    (root / "data" / "cache").mkdir(parents=True, exist_ok=True)
    for link, target in ((run / "src", root / "src"), (run / "data" / "cache", root / "data" / "cache")):
        if not link.is_symlink():
            link.symlink_to(target, target_is_directory=True)
    for name_ in ("dvc.yaml", ".dvcignore"):
        shutil.copyfile(root / name_, run / name_)
    shutil.copytree(root / "benchmarks", run / "benchmarks", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "RESULTS.md", "*.png"))
    text = yaml.safe_dump(params, sort_keys=False)
    if not (run / "params.yaml").is_file() or (run / "params.yaml").read_text() != text:
        (run / "params.yaml").write_text(text)
    from resonance.io import atomic_open
    from resonance.registry.lineage import git_commit

    source = json.dumps({**git_commit(root), "project": str(root), "profile": name}, indent=1)
    with atomic_open(run / "source.json", "w") as fh:  # the lineage of a copy: the commit it was made from
        fh.write(source)
    if not (run / ".git").exists():
        subprocess.run(["git", "init", "-q"], cwd=run, check=True)
    if not (run / ".dvc").exists():
        subprocess.run([_dvc(), "init", "-q"], cwd=run, check=True)
        subprocess.run([_dvc(), "config", "core.site_cache_dir", str(run / ".dvc" / "site-cache")], cwd=run,
                       check=True)
    return run


def where_to_look(project_dir: Path, result: dict[str, Any]) -> str:
    """The lines that end `make run`: the MLflow UI (command and URL), the evaluation table, the drift report."""
    from resonance.registry.figures import headline_table
    from resonance.registry.lineage import tracking_uri
    from resonance.registry.versions import HEADLINE_KEYS

    project_dir = Path(project_dir)
    uri = tracking_uri(project_dir)
    name, version = result.get("name"), result.get("version")
    page = f"#/models/{name}/versions/{version}" if name and version else "#/models"
    lines = ["", "== where to look ==",
             f"MLflow UI:   .venv/bin/mlflow ui --backend-store-uri {uri} --port 5000   -> "
             f"http://127.0.0.1:5000/{page}",
             f"model:       {name} v{version}: {result.get('decision')} ({'; '.join(result.get('reasons') or [])}); "
             f"champion v{result.get('champion')}; deployed {result.get('deployed') or 'nothing'}"]
    headline_path = project_dir / "metrics" / "evaluate_embedding.json"
    if headline_path.is_file():
        headline = json.loads(headline_path.read_text())
        lines += ["evaluation:  metrics/evaluate_embedding.json (per condition: data/evaluate/embedding/report.md)",
                  headline_table(headline, [k for k in HEADLINE_KEYS if k in headline])]
    if result.get("waiting"):
        lines.append(f"report:      benchmarks/RESULTS.md waits for {', '.join(result['waiting'])} (the baselines do "
                     "not depend on the model): `make run ALL=1` or `.venv/bin/dvc repro`")
    else:
        lines.append("report:      benchmarks/RESULTS.md (every method, paired, with intervals)")
    field = project_dir / "metrics" / "field.json"
    if field.is_file():
        lines.append(f"field test:  {json.dumps(json.loads(field.read_text()))[:300]} "
                     "(data/evaluate_field/report.md; a stand-in for real field clips)")
    from resonance.config import load_params

    monitor_dir = (load_params(project_dir / "params.yaml").get("monitor") or {}).get("dir", "monitoring")
    latest = project_dir / monitor_dir / "reports" / "latest.json"
    if latest.is_file():
        verdict = json.loads(latest.read_text())
        lines.append(f"drift:       {verdict['report_html']} (drift: {verdict['drift']}, "
                     f"{', '.join(verdict['drifted_features']) or 'no feature'} drifted)")
    else:
        lines.append(f"drift:       no report yet: drop field clips into {monitor_dir}/inbox/ and run "
                     "`.venv/bin/python flows/monitor.py`")
    return "\n".join(lines)
