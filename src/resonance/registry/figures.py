"""The figures a model version is judged by, taken from one evaluation run, and their markdown tables.

Gate figures (`gate_figures`): the evaluation headline (metrics/evaluate_embedding.json: hit rates per length,
at 0 dB with reverb, the open set at the val-chosen thresholds...) and every grid cell's song hits pooled over the
query lengths (`snr0_hall_clip0`: hits and n), plus the data key (catalog + queries hashes) they were measured on.
"""

from __future__ import annotations

import math
from typing import Any

FIGURES_FORMAT = 1


def pooled_cells(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{cell: {"hits", "n", "hit_rate"}}: each condition cell's song hits summed over every query length."""
    cells: dict[str, dict[str, float]] = {}
    for block in metrics["by_length"].values():
        for key, cell in block["cells"].items():
            if not cell or not cell.get("n"):
                continue
            acc = cells.setdefault(key, {"hits": 0, "n": 0})
            acc["hits"] += int(cell["hits"])
            acc["n"] += int(cell["n"])
    for acc in cells.values():
        acc["hit_rate"] = round(acc["hits"] / acc["n"], 4)
    return cells


def gate_figures(headline: dict[str, Any], metrics: dict[str, Any], data_key: str) -> dict[str, Any]:
    """What the promotion gate compares (module docstring), as one small JSON-able dict."""
    numbers = {k: v for k, v in headline.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    return {"format": FIGURES_FORMAT, "data_key": data_key, "query_set": metrics.get("query_set"),
            "headline": numbers, "cells": pooled_cells(metrics)}


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.1f}%"


def condition_table(metrics: dict[str, Any]) -> str:
    """Markdown: one row per grid cell (SNR x reverb x clipping), one column per query length, song hit rate
    (n queries per cell in the last column)."""
    lengths = list(metrics["by_length"])
    rows: dict[str, dict[str, Any]] = {}
    for lk in lengths:
        for ck, cell in metrics["by_length"][lk]["cells"].items():
            rows.setdefault(ck, {})[lk] = cell
    head = "| condition | " + " | ".join(f"{lk[3:]} s" for lk in lengths) + " | n per length |"
    sep = "|---|" + "---:|" * (len(lengths) + 1)
    lines = [head, sep]
    for ck, by_len in rows.items():
        n = max((c.get("n") or 0) for c in by_len.values())
        lines.append(f"| {ck} | " + " | ".join(_pct((by_len.get(lk) or {}).get("hit_rate")) for lk in lengths)
                     + f" | {n} |")
    overall = " | ".join(_pct(metrics["by_length"][lk]["all"]["hit_rate"]) for lk in lengths)
    lines.append(f"| **all** | {overall} | |")
    return "\n".join(lines)


def headline_table(headline: dict[str, Any], keys: list[str] | None = None) -> str:
    """Markdown: the numeric headline figures (or the `keys` given), one per row."""
    keys = keys or [k for k, v in headline.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    lines = ["| figure | value |", "|---|---:|"]
    for k in keys:
        v = headline.get(k)
        text = "n/a" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))
        lines.append(f"| {k} | {text} |")
    return "\n".join(lines)


def training_table(summary: dict[str, Any]) -> str:
    """Markdown: the training summary (data/model/train.json) in a few rows."""
    fields = [("profile", "profile"), ("encoder", "encoder"), ("parameters", "parameters"),
              ("train tracks", "train_tracks"), ("steps", "steps"), ("epochs", "epochs"),
              ("fit (s)", "fit_s"), ("stopped by", "stopped_by"), ("val top-1", "best_val_top1"),
              ("val top-1 untrained", "val_top1_untrained"), ("val window recall@10", "best_val_window_recall"),
              ("ONNX max abs diff", "onnx_max_abs_diff")]
    lines = ["| training | |", "|---|---:|"]
    lines += [f"| {label} | {summary.get(key)} |" for label, key in fields if key in summary]
    return "\n".join(lines)


def field_table(field: dict[str, Any] | None) -> str:
    """Markdown: field-test top-1 and false accepts per venue and per device (resonance.field.evaluate)."""
    if not field:
        return "_no field test for this version_"
    lines = ["| field group | clips in catalog | top-1 (accepted, right) | out of catalog | false accepts |",
             "|---|---:|---:|---:|---:|"]
    for group in ("all", "venue", "device"):
        block = field.get(group)
        items = [("all", block)] if group == "all" else sorted((block or {}).items())
        for name, g in items:
            if g:
                label = name if group == "all" else f"{group}={name}"
                lines.append(f"| {label} | {g['n_in']} | {_pct(g.get('top1'))} | {g['n_out']} | "
                             f"{_pct(g.get('far'))} |")
    return "\n".join(lines)
