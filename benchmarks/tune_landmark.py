"""Tune the landmark baseline's density and fan-out on the validation queries (never on the test set).

Run: .venv/bin/python benchmarks/tune_landmark.py [--queries data/queries/val] [--index-tracks 200]
Indexes the val split's songs plus a seeded sample of other catalog songs (so chance matches are realistic),
evaluates each setting on the val queries and prints a markdown table, best first. The first row set is the
audfprint-style default (20 peaks/s, fan-out 3); the others sweep peaks_per_s x fan_out around params.yaml.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools

import numpy as np

from resonance.catalog.manifest import load_manifest
from resonance.config import EvaluateParams, load_section
from resonance.evaluate.harness import compute_metrics, run_queries
from resonance.evaluate.methods import LandmarkMethod, build_reference
from resonance.evaluate.queries import flac_loader, load_queries
from resonance.evaluate.stage import catalog_audio
from resonance.landmark.peaks import LandmarkConfig

SWEEP = {"peaks_per_s": [15.0, 30.0, 45.0], "fan_out": [4, 8, 12]}
AUDFPRINT_STYLE = {"peaks_per_s": 20.0, "fan_out": 3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--catalog", default="data/catalog")
    parser.add_argument("--queries", default="data/queries/val")
    parser.add_argument("--index-tracks", type=int, default=200, help="songs in the tuning index (val + others)")
    args = parser.parse_args()
    base = load_section(args.params, "landmark", LandmarkConfig)
    ev = load_section(args.params, "evaluate", EvaluateParams)
    tracks = load_manifest(args.catalog)
    val = [t for t in tracks if t.split == "val"]
    others = [t for t in tracks if t.split != "val"]
    rng = np.random.default_rng(0)
    extra = rng.choice(len(others), max(0, min(len(others), args.index_tracks - len(val))), replace=False)
    index_tracks = val + [others[int(i)] for i in sorted(extra)]
    queries = load_queries(args.queries)
    settings = [("audfprint-style", AUDFPRINT_STYLE)] + [
        (f"{p:g}/s x {f}", {"peaks_per_s": p, "fan_out": f})
        for p, f in itertools.product(SWEEP["peaks_per_s"], SWEEP["fan_out"])]
    rows = []
    for label, change in settings:
        method = LandmarkMethod(dataclasses.replace(base, **change))
        ref_s = build_reference(method, catalog_audio(index_tracks, args.catalog, progress=False), base.sr)
        results = run_queries(method, queries, flac_loader(args.queries, base.sr), base.sr)
        m = compute_metrics(results, method_name=label, target_far=ev.target_far,
                            segment_tolerance_s=ev.segment_tolerance_s, confidence=ev.confidence,
                            score_threshold=None, index_bytes=method.index_bytes(), reference_s=ref_s)
        op = (m["open_set"]["at_target_far"] or {}).get("all") or {}
        rows.append((label, m["by_length"]["len3"]["all"]["hit_rate"], m["by_length"]["len5"]["all"]["hit_rate"],
                     m["all"]["hit_rate"], op.get("hit_rate", float("nan")), m["latency_ms"]["p50"],
                     m["index"]["bytes_per_hour"] / 1e6))
        print(f"  done: {label}", flush=True)
    print(f"\n{len(queries)} val queries; index of {len(index_tracks)} songs "
          f"({sum(t.duration_s for t in index_tracks) / 3600:.1f} h)\n")
    print("| setting (peaks/s x fan-out) | top-1 3 s | top-1 5 s | top-1 all | hit at 1% FA | p50 ms | MB/h |")
    print("|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: -r[3]):
        print(f"| {r[0]} | {r[1]:.1%} | {r[2]:.1%} | {r[3]:.1%} | {r[4]:.1%} | {r[5]:.1f} | {r[6]:.1f} |")


if __name__ == "__main__":
    main()
