"""The MLOps verbs of the `resonance` command line: register, promote, versions, deploy, monitor, field build|evaluate.

Only the standard library at module level (like resonance.cli); each verb imports what it needs. The project
folder is the params file's folder (params.yaml at the project root by default).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _project(args: argparse.Namespace) -> Path:
    return Path(args.params).resolve().parent


def _section(args: argparse.Namespace, name: str, cls: Any) -> Any:
    from resonance.config import load_section

    return load_section(args.params, name, cls)


def _register(args: argparse.Namespace) -> int:
    from resonance.config.mlops import PromoteParams
    from resonance.registry.gate import run_gate
    from resonance.registry.versions import register

    project = _project(args)
    done = register(project, reason=args.reason)
    state = "described and tagged" if done["new"] else "already described"
    print(f"register: {done['name']} v{done['version']} {state}; alias challenger -> v{done['version']}")
    if not args.no_gate:
        gate = run_gate(project, done["version"], done["figures"], _section(args, "promote", PromoteParams),
                        log=lambda line: None)
        print(f"promote: {gate['decision']}: {'; '.join(gate['reasons'])}; champion -> v{gate['champion']}")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from resonance.registry.gate import promote_manual

    done = promote_manual(_project(args), args.version, args.reason)
    previous = f"v{done['previous']}" if done["previous"] else "no champion"
    print(f"promote: {done['name']} v{done['version']} is the champion (was {previous}); reason recorded: "
          f"{done['reason']}")
    return 0


def _versions(args: argparse.Namespace) -> int:
    from resonance.config.mlops import PromoteParams
    from resonance.registry.history import write

    gate = _section(args, "promote", PromoteParams)
    print(write(_project(args), Path(args.out) if args.out else None, gate.headline, gate.open_set,
                as_json=args.json), end="")
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from resonance.config.mlops import DeployParams
    from resonance.registry.deploy import build_release

    release = build_release(_project(args), _section(args, "deploy", DeployParams),
                            log=print if args.verbose else (lambda line: None))
    what = "deployed" if release["swapped"] else "already deployed"
    print(f"deploy: {release.get('model_uri')} {what} ({release.get('index', {}).get('tracks')} tracks)")
    return 0


def _monitor(args: argparse.Namespace) -> int:
    from resonance.config import EmbeddingParams
    from resonance.config.mlops import DeployParams, MonitorParams
    from resonance.monitor.stage import describe, log_to_mlflow, run
    from resonance.registry.lineage import tracking_uri

    params = _section(args, "monitor", MonitorParams)
    verdict = run(_project(args), params, _section(args, "embedding", EmbeddingParams),
                  _section(args, "deploy", DeployParams), progress=not args.quiet)
    if not args.no_mlflow:
        verdict["mlflow_run_id"] = log_to_mlflow(verdict, params, tracking_uri(_project(args)))
    print(json.dumps(verdict) if args.json else describe(verdict))
    return 0


def _field_build(args: argparse.Namespace) -> int:
    from resonance.config.mlops import FieldParams
    from resonance.field.build import describe, run

    header = run(_section(args, "field", FieldParams), Path(args.catalog), Path(args.outside), Path(args.banks),
                 Path(args.cache), Path(args.out), progress=not args.quiet)
    print(describe(header, Path(args.out)))
    return 0


def _field_evaluate(args: argparse.Namespace) -> int:
    from resonance.config import EmbeddingParams, EvaluateParams
    from resonance.field.evaluate import describe, run
    from resonance.index.stage import load_recognizer

    emb = _section(args, "embedding", EmbeddingParams)
    method = load_recognizer(args.model or emb.model, Path(args.index or emb.index),
                             Path(args.calibration or emb.calibration), emb)
    out = Path(args.out)
    metrics = run(Path(args.csv), method, out, Path(args.metrics) if args.metrics else None,
                  _section(args, "evaluate", EvaluateParams).mlflow_experiment, progress=not args.quiet)
    print(describe(metrics, out))
    return 0


def add_verbs(sub: Any) -> None:
    """Add the MLOps verbs to the `resonance` subparsers."""
    p = sub.add_parser("register", help="describe the trained model version in the MLflow registry (lineage, "
                       "evaluation, artifacts), alias challenger, then the promotion gate")
    p.add_argument("--reason", default=None, help="why this model was trained (recorded on the version)")
    p.add_argument("--no-gate", action="store_true", help="describe only, do not run the promotion gate")
    p.set_defaults(func=_register)

    p = sub.add_parser("promote", help="manual override: make VERSION the champion, recording --reason")
    p.add_argument("version", help="the registered model version (e.g. 3 or v3)")
    p.add_argument("--reason", required=True, help="why (recorded as promotion.reason on the version)")
    p.set_defaults(func=_promote)

    p = sub.add_parser("versions", help="the registered model versions: aliases, figures, the gate's decisions and "
                       "reasons (from the MLflow registry's tags)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a markdown table")
    p.add_argument("--out", default=None, help="also write it to this file (temp file + rename)")
    p.set_defaults(func=_versions)

    p = sub.add_parser("deploy", help="build the champion's index and calibration into deploy/current (atomic)")
    p.set_defaults(func=_deploy)

    p = sub.add_parser("monitor", help="validate and describe the field clips in monitoring/inbox, check drift")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.add_argument("--no-mlflow", action="store_true", help="do not log the run to MLflow")
    p.set_defaults(func=_monitor)

    p = sub.add_parser("field", help="field tests (see `field build|evaluate`)")
    fld = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = fld.add_parser("build", help="the default field set from real measured responses (not the simulator)")
    p.add_argument("--catalog", default="data/catalog")
    p.add_argument("--outside", default="data/outside", help="never-indexed music (false accepts)")
    p.add_argument("--banks", default="data/banks", help="crowd beds (built from real crowd recordings)")
    p.add_argument("--cache", default="data/cache", help="download cache (apt-get download of the responses)")
    p.add_argument("--out", default="data/field")
    p.set_defaults(func=_field_build)
    p = fld.add_parser("evaluate", help="evaluate a labeled field CSV (file, track_id, venue, device)")
    p.add_argument("csv", help="the field CSV (files relative to its folder)")
    p.add_argument("--out", default="data/evaluate_field", help="report folder (default: data/evaluate_field)")
    p.add_argument("--metrics", default=None, help="also write the headline metrics JSON here (for DVC)")
    p.add_argument("--model", default=None, help="model (default: embedding.model)")
    p.add_argument("--index", default=None, help="index folder (default: embedding.index)")
    p.add_argument("--calibration", default=None, help="calibration folder (default: embedding.calibration)")
    p.set_defaults(func=_field_evaluate)
