"""The registry's history as a reviewer reads it: one row per model version (aliases, when, from which commit,
how long it trained, its headline and open-set figures, and the promotion gate's decision and reasons), from the
tags `register` and the gate wrote. `resonance versions` prints it; `--out FILE.md` writes it (temp + rename)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from resonance.registry.versions import client, model_name


def versions(project_dir: Path, headline: str, open_set: str) -> list[dict[str, Any]]:
    """The project's registered model versions, oldest first: dicts with version, aliases (list), created (UTC
    ISO time), commit (12 hex), profile, steps (steps_per_epoch x max_epochs of its training run, None when not
    logged), headline and open_set (floats or None: `eval.<key>` tags), decision, mode, compared_with, reason,
    retrain_reason (str or None)."""
    mc = client(Path(project_dir))
    name = model_name(Path(project_dir))
    found = mc.search_model_versions(f"name='{name}'")
    aliases: dict[str, list[str]] = {}
    for model in mc.search_registered_models(filter_string=f"name='{name}'"):
        for alias, v in (model.aliases or {}).items():
            aliases.setdefault(str(v), []).append(alias)
    rows = []
    for mv in sorted(found, key=lambda m: int(m.version)):
        tags = mv.tags or {}
        rows.append({
            "version": int(mv.version), "aliases": sorted(aliases.get(str(mv.version), [])),
            "created": dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, dt.timezone.utc)
            .isoformat(timespec="minutes"),
            "commit": tags.get("lineage.git_commit", "")[:12] or None, "profile": tags.get("lineage.train_profile"),
            "steps": _steps(mc, mv.run_id), "headline": _float(tags.get(f"eval.{headline}")),
            "open_set": _float(tags.get(f"eval.{open_set}")), "decision": tags.get("promotion.decision"),
            "mode": tags.get("promotion.mode"), "compared_with": tags.get("promotion.compared_with"),
            "reason": tags.get("promotion.reason"), "retrain_reason": tags.get("retrain.reason")})
    return rows


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _steps(mc: Any, run_id: str | None) -> int | None:
    """steps_per_epoch x max_epochs of the training run's params (None: no run or not logged)."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    try:
        params = mc.get_run(run_id).data.params
        return int(params["steps_per_epoch"]) * int(params["max_epochs"])
    except (MlflowException, KeyError, ValueError):
        return None


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def markdown(name: str, rows: list[dict[str, Any]], headline: str, open_set: str) -> str:
    """The rows as a markdown table (newest last), with a line saying which version is champion."""
    champion = next((r["version"] for r in rows if "champion" in r["aliases"]), None)
    lines = [f"# Model versions of `{name}`", "",
             f"Champion: {'v' + str(champion) if champion else 'none yet'}. Figures are the version's own "
             f"evaluation tags (`eval.{headline}`, `eval.{open_set}`); decision and reason are the promotion "
             "gate's tags (`promotion.*`). Written by `resonance versions --out FILE`.", "",
             f"| version | aliases | created (UTC) | commit | profile | steps | {headline} | {open_set} | decision "
             "| compared with | reason |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        decision = r["decision"] or "not gated"
        if r["mode"] == "manual":
            decision += " (manual)"
        reason = (r["reason"] or "").replace("|", "/").replace("\n", " ")
        lines.append(f"| v{r['version']} | {', '.join(r['aliases']) or '-'} | {r['created']} | {r['commit'] or '-'} "
                     f"| {r['profile'] or '-'} | {r['steps'] if r['steps'] is not None else '-'} "
                     f"| {_pct(r['headline'])} | {_pct(r['open_set'])} | {decision} | {r['compared_with'] or '-'} "
                     f"| {reason or '-'} |")
    return "\n".join(lines) + "\n"


def write(project_dir: Path, out: Path | None, headline: str, open_set: str, as_json: bool = False) -> str:
    """The table (or JSON) of `versions`; also written to `out` through a temp file + rename when given.
    RegistryError when the store holds no version of the model."""
    from resonance.registry.lineage import RegistryError, tracking_uri

    name = model_name(Path(project_dir))
    rows = versions(project_dir, headline, open_set)
    if not rows:
        raise RegistryError(f"no version of {name!r} is registered in {tracking_uri(Path(project_dir))}: run "
                            "`make run` (or point MLFLOW_TRACKING_URI at the store that holds it)")
    text = json.dumps({"name": name, "versions": rows}, indent=1) + "\n" if as_json \
        else markdown(name, rows, headline, open_set)
    if out is not None:
        from resonance.io import atomic_open

        with atomic_open(out) as fh:
            fh.write(text)
    return text
