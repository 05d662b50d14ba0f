"""Does a finer reference hop help? The deployed index (windows every train.hop_s) against one of the same catalog
and model with reference windows every --hop seconds (`embedding.reference_hop_s`), chosen on val, reported on
test. Prints markdown tables and writes them to --out.

Run: .venv/bin/python benchmarks/reference_hop.py [--hop 0.25] [--excerpts 60 40] [--out FILE]

A query window falls up to half a reference hop from the nearest reference window (the sequence search takes the
better of the two neighbours): at the default 0.5 s hop that is 0.25 s, the training's offset jitter; at 0.25 s it
is 0.125 s. Queries: the first --excerpts in-catalog and out-of-catalog excerpts of each set, every grid cell,
the 3, 5 and 10 s prefixes of each clip (one embedding pass serves both indexes). Per index and length: top-1,
and the share accepted and right at 1% false accepts with its threshold fitted on the val out-of-catalog queries
of that index (as `resonance calibrate` does; on test the val threshold is applied). Differences are paired,
with 95% intervals from a bootstrap over excerpts. The finer index is built once into --cache.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from resonance.io import write_report

LENGTHS = (3.0, 5.0, 10.0)


def run_set(folder: Path, n_in: int, n_out: int, methods: dict, sr: int) -> list[dict]:
    """Per query (prefix) and index: truth, excerpt, whether in the catalog, the guess and its decision score."""
    from resonance.evaluate.queries import flac_loader, load_queries
    from resonance.progress import progress

    qs = [q for q in load_queries(folder) if q.length_s == max(LENGTHS)]
    keep = set(sorted({q.excerpt for q in qs if q.in_catalog})[:n_in]) | set(
        sorted({q.excerpt for q in qs if not q.in_catalog})[:n_out])
    qs = [q for q in qs if q.excerpt in keep]
    load = flac_loader(folder, sr)
    first = next(iter(methods.values()))
    hop, window = first.config.query_hop_s, first.embedder.model.window
    rows = []
    for q in progress(qs, desc=f"reference hop: {folder.name}", unit="clip"):
        audio = load(q)
        windows = first.embedder.embed(audio, hop)
        usable = first.usable(audio, hop)
        evidence = {name: m.evidence(windows, usable) for name, m in methods.items()}
        for length_s in LENGTHS:
            n = min(audio.size, int(round(length_s * sr)))
            k = 1 + int(round((n - window) / sr * 1e6)) // int(round(hop * 1e6))
            row = {"excerpt": q.excerpt, "truth": q.track_id, "in": q.in_catalog, "length": length_s,
                   "snr": q.snr_db, "reverb": q.reverb}
            for name, m in methods.items():
                found = m.decide(evidence[name], k, length_s)
                row[name] = (found.guess.track_id if found.guess is not None else None, float(found.score))
            rows.append(row)
    return rows


def thresholds(rows: list[dict], name: str, target_far: float) -> dict[float, float]:
    """Per length: the score threshold at target_far false accepts of the out-of-catalog rows."""
    from resonance.evaluate.stats import threshold_at_far

    return {L: threshold_at_far(np.array([r[name][1] for r in rows if r["length"] == L and not r["in"]]),
                                target_far) for L in LENGTHS}


def outcomes(rows: list[dict], name: str, thr: dict[float, float], length: float) -> tuple[np.ndarray, np.ndarray]:
    """(top-1 hits, accepted-and-right) as 0/1 arrays over the in-catalog rows of one length."""
    sel = [r for r in rows if r["in"] and r["length"] == length]
    top1 = np.array([r[name][0] == r["truth"] for r in sel], dtype=float)
    ok = np.array([r[name][0] == r["truth"] and r[name][1] >= thr[length] for r in sel], dtype=float)
    return top1, ok


def table(rows: list[dict], names: list[str], thr: dict[str, dict[float, float]], boot, title: str) -> list[str]:
    base, other = names
    lines = [title, "", "| length | top-1 " + base + " | top-1 " + other + " | change (95% CI) | at 1% FA " + base
             + " | at 1% FA " + other + " | change (95% CI) |", "|---|---|---|---|---|---|---|"]
    for L in LENGTHS:
        ex = [r["excerpt"] for r in rows if r["in"] and r["length"] == L]
        (t0, a0), (t1, a1) = outcomes(rows, base, thr[base], L), outcomes(rows, other, thr[other], L)
        cells = []
        for x0, x1 in ((t0, t1), (a0, a1)):
            lo, hi = boot.interval(ex, x1 - x0, 0.95)
            cells += [f"{x0.mean():.1%}", f"{x1.mean():.1%}", f"{x1.mean() - x0.mean():+.1%} [{lo:+.1%}, {hi:+.1%}]"]
        lines.append(f"| {L:g} s | " + " | ".join(cells) + " |")
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--catalog", default="data/catalog")
    ap.add_argument("--hop", type=float, default=0.25, help="the finer reference hop (s)")
    ap.add_argument("--excerpts", type=int, nargs=2, default=[60, 40], help="in-catalog and outside, per set")
    ap.add_argument("--cache", default="data/cache/bench/reference_hop")
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--out", default="benchmarks/reference_hop.md")
    args = ap.parse_args()

    from resonance.config import EmbeddingParams, EvaluateParams, load_section
    from resonance.evaluate.stats import ClusterBootstrap
    from resonance.index.method import EmbeddingMethod
    from resonance.index.stage import build_from_catalog, load_recognizer
    from resonance.index.store import EmbeddingIndex

    params = load_section(args.params, "embedding", EmbeddingParams)
    target_far = load_section(args.params, "evaluate", EvaluateParams).target_far
    deployed = load_recognizer(params.model, Path(params.index), Path(params.calibration), params)
    folder = Path(args.cache) / f"hop{args.hop:g}"
    if not (folder / "index.json").is_file():
        fine = dataclasses.replace(params, reference_hop_s=args.hop)
        print(f"reference hop: building the {args.hop:g} s index into {folder}", flush=True)
        build_from_catalog(params.model, Path(args.catalog), folder, True, fine)
    fine_index = EmbeddingIndex.load(folder, deployed.model_sha256)
    base_name, fine_name = f"{deployed.index.hop_s:g} s (deployed)", f"{fine_index.hop_s:g} s"
    methods = {base_name: deployed,
               fine_name: EmbeddingMethod.with_index(deployed.embedder, params, fine_index, deployed.calibration)}
    sr = deployed.embedder.sr
    val = run_set(Path("data/queries/val"), *args.excerpts, methods, sr)
    test = run_set(Path("data/queries/test"), *args.excerpts, methods, sr)
    thr = {name: thresholds(val, name, target_far) for name in methods}  # chosen on val, for both sets
    names = list(methods)
    lines = [f"# Reference hop: {base_name} vs {fine_name} (`python benchmarks/reference_hop.py`)", "",
             f"The same model, catalog ({len(deployed.index.tracks)} tracks) and decision; windows indexed: "
             f"{deployed.index.n_windows:,} vs {fine_index.n_windows:,}. Open set: accepted and right at a "
             f"threshold per length fitted on the val out-of-catalog queries of each index ({target_far:.0%} false "
             f"accepts), applied unchanged on test.", ""]
    for label, rows in (("val (where the choice is made)", val), ("test", test)):
        boot = ClusterBootstrap([r["excerpt"] for r in rows], 1000, args.seed)
        n_in = len({r["excerpt"] for r in rows if r["in"]})
        n_out = len({r["excerpt"] for r in rows if not r["in"]})
        lines += table(rows, names, thr, boot, f"## {label}: {n_in} in-catalog and {n_out} out-of-catalog "
                                                f"excerpts x 24 cells")
        if label == "test":
            far = {name: np.mean([r[name][1] >= thr[name][r["length"]] for r in rows if not r["in"]])
                   for name in names}
            lines += ["False accepts on test at the val thresholds: " + ", ".join(
                f"{name} {v:.2%}" for name, v in far.items()), ""]
    write_report(Path(args.out), lines)


if __name__ == "__main__":
    main()
