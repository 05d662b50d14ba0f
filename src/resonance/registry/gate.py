"""The promotion gate: `challenger` becomes `champion` only when, on the same catalog and query set, its headline
figure improves by at least `promote.margin` and no grid cell nor the open-set figure loses more than its
tolerance. The first model becomes champion. Every decision (and the manual override `resonance promote`) is
written as tags on the version: promotion.decision (promote | hold), promotion.mode (gate | manual),
promotion.reason, promotion.compared_with and the compared figures (promotion.challenger.KEY,
promotion.champion.KEY, promotion.delta.KEY, promotion.worst_cell...)."""

from __future__ import annotations

import datetime as dt
import getpass
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resonance.config.mlops import PromoteParams
from resonance.registry.lineage import RegistryError
from resonance.registry.versions import CHAMPION, alias_version, client, get_version, load_figures, model_name

EPS = 1e-9
MAX_LISTED_CELLS = 5


@dataclass(frozen=True)
class Decision:
    """decision: "promote" or "hold"; reasons: readable sentences; figures: what was compared (flat)."""

    decision: str
    reasons: list[str]
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def promote(self) -> bool:
        return self.decision == "promote"


def decide(challenger: dict[str, Any], champion: dict[str, Any] | None, params: PromoteParams) -> Decision:
    """Apply the gate to two sets of gate figures (resonance.registry.figures.gate_figures); `champion` None:
    there is none yet. Pure: no MLflow."""
    head, open_key = params.headline, params.open_set
    if head not in challenger["headline"]:
        raise RegistryError(f"promote.headline {head!r} is not an evaluation figure of this query set; known: "
                            f"{', '.join(sorted(challenger['headline']))}")
    ch = challenger["headline"][head]
    figures: dict[str, Any] = {f"challenger.{head}": ch}
    if champion is None:
        return Decision("promote", ["first model: there is no champion yet"], figures)
    if champion.get("data_key") != challenger.get("data_key"):
        return Decision("hold", ["the champion was measured on other data (catalog or queries differ): "
                                 "re-evaluate it (promote.reevaluate_champion) or promote by hand"], figures)
    cp = champion["headline"].get(head)
    if cp is None:
        return Decision("hold", [f"the champion has no {head} figure to compare with"], figures)
    delta = ch - cp
    figures.update({f"champion.{head}": cp, f"delta.{head}": round(delta, 4)})
    reasons, ok = [], True
    if delta + EPS < params.margin:
        ok = False
        reasons.append(f"{head} {cp:.4f} -> {ch:.4f} ({delta:+.4f}): less than the margin {params.margin:g}")
    else:
        reasons.append(f"{head} {cp:.4f} -> {ch:.4f} ({delta:+.4f}): at least the margin {params.margin:g}")
    o_ch, o_cp = challenger["headline"].get(open_key), champion["headline"].get(open_key)
    if o_ch is not None and o_cp is not None:
        o_delta = o_ch - o_cp
        figures.update({f"challenger.{open_key}": o_ch, f"champion.{open_key}": o_cp,
                        f"delta.{open_key}": round(o_delta, 4)})
        if -o_delta > params.open_set_tolerance + EPS:
            ok = False
            reasons.append(f"open set {open_key} {o_cp:.4f} -> {o_ch:.4f} ({o_delta:+.4f}): loses more than the "
                           f"tolerance {params.open_set_tolerance:g}")
    drops = sorted(((champion["cells"][k]["hit_rate"] - c["hit_rate"], k) for k, c in challenger["cells"].items()
                    if k in champion["cells"]), reverse=True)
    if drops:
        worst, cell = drops[0]
        figures.update({"worst_cell": cell, "worst_cell.delta": round(-worst, 4)})
        bad = [(d, k) for d, k in drops if d > params.cell_tolerance + EPS]
        if bad:
            ok = False
            listed = ", ".join(f"{k} {champion['cells'][k]['hit_rate']:.3f} -> {challenger['cells'][k]['hit_rate']:.3f}"
                               for _, k in bad[:MAX_LISTED_CELLS])
            more = f" and {len(bad) - MAX_LISTED_CELLS} more" if len(bad) > MAX_LISTED_CELLS else ""
            reasons.append(f"{len(bad)} grid cell(s) lose more than the tolerance {params.cell_tolerance:g}: "
                           f"{listed}{more}")
        else:
            reasons.append(f"no grid cell loses more than {params.cell_tolerance:g} (worst {cell}: {-worst:+.3f})")
    return Decision("promote" if ok else "hold", reasons, figures)


def _stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _record(mc: Any, name: str, version: str, decision: Decision, mode: str, compared_with: str | None) -> None:
    tags = {"promotion.decision": decision.decision, "promotion.mode": mode,
            "promotion.reason": "; ".join(decision.reasons)[:4900], "promotion.at": _stamp(),
            "promotion.compared_with": compared_with or "none"}
    tags.update({f"promotion.{k}": str(v) for k, v in decision.figures.items()})
    for key, value in tags.items():
        mc.set_model_version_tag(name, version, key, value)
    mv = mc.get_model_version(name, version)
    lines = [f"## Promotion ({mode}, {tags['promotion.at']}): **{decision.decision}**",
             f"Compared with: {compared_with or 'no champion'}"] + [f"- {r}" for r in decision.reasons]
    section = "\n".join(lines)[:2000]
    head = (mv.description or "")[:4900 - len(section) - 2]  # the promotion section always fits
    mc.update_model_version(name, version, description=(head + "\n\n" + section).strip())


def run_gate(project_dir: Path, version: str, figures: dict[str, Any], params: PromoteParams,
             log: Any = print) -> dict[str, Any]:
    """Gate `version` (its gate figures given) against the current champion, record the decision as tags, and
    move `champion` when it passes. Returns {"decision", "reasons", "figures", "champion" (after), "previous"}."""
    project_dir = Path(project_dir)
    mc = client(project_dir)
    name = model_name(project_dir)
    mv = get_version(mc, name, version)
    if mv.tags.get("promotion.decision"):
        current = alias_version(mc, name, CHAMPION)
        return {"decision": "already-gated", "reasons": [f"version {version} was gated before: "
                                                         f"{mv.tags['promotion.decision']}"], "figures": {},
                "champion": str(current.version) if current else None,
                "previous": str(current.version) if current else None}
    champ = alias_version(mc, name, CHAMPION)
    if champ is not None and str(champ.version) == str(version):
        champ = None  # the alias was set on this version by hand before the gate ran: nothing to compare with
    champ_figures = None
    if champ is not None:
        champ_figures = load_figures(champ.run_id, figures["data_key"])
        if champ_figures is None and params.reevaluate_champion:
            from resonance.registry.evaluation import reevaluate
            from resonance.registry.versions import store_figures

            log(f"promote: champion v{champ.version} was measured on other data: re-evaluating it on the current "
                "catalog and queries")
            champ_figures = reevaluate(project_dir, f"models:/{name}/{champ.version}", figures["data_key"], log=log)
            store_figures(champ.run_id, champ_figures)
        elif champ_figures is None:
            champ_figures = {"data_key": None, "headline": {}, "cells": {}}
    decision = decide(figures, champ_figures, params)
    compared = f"v{champ.version}" if champ is not None else None
    if decision.promote:  # the alias first: a failure before the tags are written is gated again on retry
        mc.set_registered_model_alias(name, CHAMPION, version)
        if champ is not None:
            mc.set_model_version_tag(name, champ.version, "promotion.replaced_by", f"v{version}")
    _record(mc, name, version, decision, "gate", compared)
    after = alias_version(mc, name, CHAMPION)
    log(f"promote: v{version} vs {compared or 'no champion'}: {decision.decision} ({'; '.join(decision.reasons)})")
    return {"decision": decision.decision, "reasons": decision.reasons, "figures": decision.figures,
            "champion": str(after.version) if after else None,
            "previous": str(champ.version) if champ else None}


def promote_manual(project_dir: Path, version: str, reason: str) -> dict[str, Any]:
    """The manual override: point `champion` at `version` whatever the gate says, recorded like a gate decision
    (promotion.mode = manual, promotion.reason = `reason`, promotion.by = the user)."""
    if not reason or not reason.strip():
        raise RegistryError("resonance promote: give the reason with --reason (it is recorded on the version)")
    project_dir = Path(project_dir)
    mc = client(project_dir)
    name = model_name(project_dir)
    version = str(version).removeprefix("v")
    get_version(mc, name, version)
    champ = alias_version(mc, name, CHAMPION)
    if champ is not None and str(champ.version) == version:
        raise RegistryError(f"version {version} of {name!r} is already the champion")
    decision = Decision("promote", [f"manual: {reason.strip()}"], {"by": getpass.getuser()})
    _record(mc, name, version, decision, "manual", f"v{champ.version}" if champ else None)
    mc.set_registered_model_alias(name, CHAMPION, version)
    if champ is not None:
        mc.set_model_version_tag(name, champ.version, "promotion.replaced_by", f"v{version}")
    return {"name": name, "version": version, "previous": str(champ.version) if champ else None,
            "reason": reason.strip()}
