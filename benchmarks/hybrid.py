"""Hybrid fusion, measured: landmark and embedding evidence for the same 5 s clip, combined by a rule chosen on val
and compared with both methods, paired, on test. Prints markdown tables and writes them to --out.

Run: .venv/bin/python benchmarks/hybrid.py [--val-excerpts 60 40] [--test-excerpts 80 40] [--out FILE]

The rule: "the landmark answer when its vote count is at least T, else the embedding's" (a landmark match with
many aligned hashes is rarely wrong; below that the embedding is the better guess). T is the value that gives the
best val top-1. Open set: the hybrid accepts when the landmark's votes reach T_open (the count that keeps its own
false accepts on val at or under half the target rate) or when the embedding's calibrated decision accepts; the
false accepts of both add up, so the hybrid's rate is reported beside its accepted-and-right share.
Queries: the 5 s prefixes of the first in-catalog and out-of-catalog excerpts of each set, every grid cell.
Intervals: 95% bootstrap over excerpts. `resonance evaluate --method hybrid` applies the rule with the counts in
params.yaml (`hybrid`), which this script checks against the ones it chooses.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from resonance.io import write_report


def run_set(folder: Path, n_in: int, n_out: int, landmark, embedding, sr: int) -> list[dict]:
    """Both methods on the 5 s queries of the first n_in in-catalog and n_out outside excerpts of `folder`."""
    from resonance.evaluate.queries import flac_loader, load_queries
    from resonance.progress import progress

    qs = [q for q in load_queries(folder) if q.length_s == 5.0]
    keep = set(sorted({q.excerpt for q in qs if q.in_catalog})[:n_in]) | set(
        sorted({q.excerpt for q in qs if not q.in_catalog})[:n_out])
    qs = [q for q in qs if q.excerpt in keep]
    load = flac_loader(folder, sr)
    rows = []
    for q in progress(qs, desc=f"hybrid: {folder.name}", unit="query"):
        audio = load(q)
        lm = landmark.identify(audio, sr)
        em = embedding.recognize(audio, sr)
        rows.append({"excerpt": q.excerpt, "truth": q.track_id, "in": q.in_catalog, "snr": q.snr_db,
                     "reverb": q.reverb, "lm_track": lm.track_id, "lm_score": lm.score,
                     "em_track": em.guess.track_id if em.guess else None, "em_accepted": bool(em.accepted)})
    return rows


def fuse(rows: list[dict], t: float) -> list[str | None]:
    """The answers of the shipped rule (`resonance.evaluate.hybrid.fuse`) at answer_votes t, for every row."""
    from resonance.evaluate.hybrid import fuse as rule
    from resonance.evaluate.methods import Identification

    return [rule(Identification(r["lm_track"], None, r["lm_score"]), Identification(r["em_track"], None, 0.0),
                 t, np.inf).track_id for r in rows]


def top1(rows: list[dict], answers: list[str | None]) -> np.ndarray:
    return np.array([a is not None and a == r["truth"] for r, a in zip(rows, answers) if r["in"]], dtype=float)


def interval(rows: list[dict], a: np.ndarray, b: np.ndarray, seed: int) -> tuple[float, float]:
    """95% bootstrap (by excerpt) of mean(b - a) over the in-catalog rows."""
    ex = [r["excerpt"] for r in rows if r["in"]]
    groups = {e: np.flatnonzero(np.array(ex) == e) for e in dict.fromkeys(ex)}
    names = list(groups)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(1000):
        pick = np.concatenate([groups[names[i]] for i in rng.integers(0, len(names), len(names))])
        diffs.append(float((b[pick] - a[pick]).mean()))
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--catalog", default="data/catalog")
    ap.add_argument("--val-excerpts", type=int, nargs=2, default=[60, 40], help="in-catalog and outside")
    ap.add_argument("--test-excerpts", type=int, nargs=2, default=[80, 40], help="in-catalog and outside")
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--out", default="benchmarks/hybrid.md")
    args = ap.parse_args()

    from resonance.catalog.manifest import load_manifest
    from resonance.config import EvaluateParams, load_section
    from resonance.evaluate.stage import catalog_audio, make_method

    target_far = load_section(args.params, "evaluate", EvaluateParams).target_far
    tracks = load_manifest(Path(args.catalog))
    sr = tracks[0].sample_rate
    landmark = make_method("landmark", Path(args.params))
    landmark.build(catalog_audio(tracks, Path(args.catalog), True), sr)
    embedding = make_method("embedding", Path(args.params))
    val = run_set(Path("data/queries/val"), *args.val_excerpts, landmark, embedding, sr)
    test = run_set(Path("data/queries/test"), *args.test_excerpts, landmark, embedding, sr)

    scores = sorted({r["lm_score"] for r in val if r["lm_track"] is not None})
    grid = [np.inf] + scores
    best_t = max(grid, key=lambda t: (top1(val, fuse(val, t)).mean(), t))
    out_scores = np.array([r["lm_score"] for r in val if not r["in"] and r["lm_track"] is not None])
    allowed = int(np.floor(0.5 * target_far * sum(not r["in"] for r in val)))
    t_open = float(np.sort(out_scores)[-allowed - 1] + 1e-9) if out_scores.size > allowed else 0.0
    t_open = max(t_open, best_t)  # the landmark vouches only for its own answer (hybrid.answer_votes <= accept_votes)

    lines = ["# Hybrid fusion: landmark + embedding (`python benchmarks/hybrid.py`)", "",
             f"Rule chosen on val ({sum(r['in'] for r in val)} in-catalog and {sum(not r['in'] for r in val)} "
             f"out-of-catalog 5 s queries): landmark's answer at >= {best_t:g} votes, else the embedding's; open "
             f"set: accepted when landmark has >= {t_open:g} votes or the embedding's calibrated decision accepts.",
             "", f"## Test: {sum(r['in'] for r in test)} in-catalog 5 s queries "
             f"({len({r['excerpt'] for r in test if r['in']})} excerpts x 24 cells), paired", "",
             "| method | top-1 | vs embedding (95% CI) | accepted and right | false accepts |", "|---|---|---|---|---|"]
    em = top1(test, [r["em_track"] for r in test])
    n_out = sum(not r["in"] for r in test)
    for name, answers, accepted in (
            ("landmark", [r["lm_track"] for r in test], [r["lm_track"] is not None and r["lm_score"] >= t_open
                                                          for r in test]),
            ("embedding", [r["em_track"] for r in test], [r["em_accepted"] for r in test]),
            ("hybrid", fuse(test, best_t), [r["em_accepted"] or (r["lm_track"] is not None and r["lm_score"] >= t_open)
                                            for r in test])):
        hits = top1(test, answers)
        ok = np.mean([acc and a == r["truth"] for r, a, acc in zip(test, answers, accepted) if r["in"]])
        far = sum(acc for r, acc in zip(test, accepted) if not r["in"]) / max(n_out, 1)
        lo, hi = interval(test, em, hits, args.seed)
        vs = "" if name == "embedding" else f"{hits.mean() - em.mean():+.1%} [{lo:+.1%}, {hi:+.1%}]"
        lines.append(f"| {name} | {hits.mean():.1%} | {vs} | {ok:.1%} | {far:.2%} of {n_out} |")
    hy = top1(test, fuse(test, best_t))
    lo, hi = interval(test, em, hy, args.seed)
    verdict = ("beats" if lo > 0 else "does not beat") + " the embedding on top-1 (interval " + \
        ("above" if lo > 0 else "not above") + " zero)"
    from resonance.config import HybridParams

    shipped = load_section(args.params, "hybrid", HybridParams)
    same = (shipped.answer_votes, shipped.accept_votes) == (best_t, t_open)
    lines += ["", f"Verdict: the hybrid {verdict}.", "",
              f"`resonance evaluate --method hybrid` runs this rule over a whole query set with `hybrid.answer_votes` "
              f"{shipped.answer_votes:g} and `hybrid.accept_votes` {shipped.accept_votes:g} from params.yaml"
              + (" (the values chosen here)." if same else f": NOT the values chosen here ({best_t:g}, {t_open:g}); "
                 "set them."), ""]
    write_report(Path(args.out), lines)


if __name__ == "__main__":
    main()
