"""Why out-of-catalog clips are accepted: what the decision saw on every val query, and which scores separate
in-catalog from out-of-catalog clips better (val queries only; never the test set).

Run: .venv/bin/python benchmarks/open_set_audit.py [--queries data/queries/val] [--cache DIR]
     [--out benchmarks/open_set_audit.md]

Uses the val embeddings and neighbours `benchmarks/tune_decision.py` caches (data/tune/<model>/; made here when
missing) and the default decision (params.yaml `embedding`), with the background cohort `resonance calibrate`
draws. For each query and its best candidate (track t, offset o) it records, besides the decision's score (mean
cohort-normalised similarity z over the usable windows) and the runner-up of another track:
- sidelobes: the same track scored at offsets o +- embedding.sidelobe_s (mean z of the windows aligned there): a
  true match is a peak in offset, a stationary passage (a drone, a pad, noise) scores about as well at every offset;
- the spread of the per-window z of the best candidate (median, lower quartile, minimum);
- agreement: the share of usable windows whose own top-1 neighbour is that track within one reference hop of o;
- the background: mean mu and sigma of the windows' cohort similarity, and their mean top-1 raw cosine.
It then reports, per query length, the share of in-catalog queries accepted and right at 1% false accepts for
each candidate open-set score (threshold per length chosen on these queries, as `resonance calibrate` does; the
logistic combinations are cross-fitted on halves of the excerpts), and where the false accepts come from (grid
cell, excerpt). Writes every row to <cache>/open_set_audit.parquet and the tables to --out.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

import numpy as np


def window_z(index, ev, c: int, track: int, hops: np.ndarray, qhop: float) -> np.ndarray:
    """(len(hops), c) normalised similarity of the first c usable windows with `track` at each offset (in query
    hops); nan where no reference window is aligned."""
    from resonance.index.sequence import aligned_similarity

    sims = aligned_similarity(index, ev.queries[:c], ev.window_idx[:c], np.full(hops.size, track), hops, qhop)
    z = (sims - ev.background.mu[:c]) / ev.background.sigma[:c]
    return np.where(np.isfinite(sims), z, np.nan)


def audit_rows(tuned, index, clips: dict, neighbours: dict, queries: list, window_s: float,
               side_s: tuple[float, ...]) -> list[dict]:
    """One dict per query: its truth and cell, the decision, and the features named in the module docstring."""
    from tune_decision import windows_of

    from resonance.index.method import Evidence, decision_score
    from resonance.progress import progress

    cfg, cal = tuned.config, tuned.calibration
    qhop = cfg.query_hop_s
    side_hops = np.array(sorted({int(round(s / qhop)) for s in side_s}))
    by_clip: dict[str, list] = {}
    for q in queries:
        by_clip.setdefault(q.audio_path, []).append(q)
    out = []
    for rel, group in progress(list(by_clip.items()), desc="audit", unit="clip"):
        emb, usable = clips[rel]
        idx = np.flatnonzero(usable)
        scores, rows = neighbours[rel]
        qs = np.ascontiguousarray(emb[idx])
        ev = Evidence(int(usable.size), idx, qs, None if scores is None else scores[:, :cfg.top_k],
                      None if rows is None else rows[:, :cfg.top_k], cal.background(qs) if idx.size else None)
        for q in group:
            m = windows_of(q.length_s, window_s, qhop)
            found = tuned.decide(ev, m, q.length_s)
            row = {"query_id": q.query_id, "excerpt": q.excerpt, "length_s": q.length_s, "in_catalog": q.in_catalog,
                   "truth": q.track_id, "snr_db": q.snr_db, "reverb": q.reverb, "clipping": q.clipping,
                   "device": str(q.condition.get("device", "")), "n_usable": found.n_usable}
            res = found.result
            best = getattr(res, "best", None)
            if best is None:
                out.append({**row, "guess": None, "correct": False, "score": -np.inf})
                continue
            runner = res.runner_up
            c = found.n_usable
            o = int(round(best.offset_s / qhop))
            zb = window_z(index, ev, c, best.track, np.array([o]), qhop)[0]
            side = window_z(index, ev, c, best.track, np.concatenate([o - side_hops, o + side_hops]), qhop)
            side_mean = np.where(np.isnan(side), 0.0, side).sum(axis=1) / c
            top_rows = ev.rows[:c, 0]
            ok = top_rows >= 0
            t1 = np.where(ok, index.row_track()[np.maximum(top_rows, 0)], -1)
            t1_start = index.row_slot()[np.maximum(top_rows, 0)] * index.hop_s
            want = best.offset_s + ev.window_idx[:c] * qhop
            agree = (t1 == best.track) & (np.abs(t1_start - want) <= index.hop_s + 1e-6)
            guess = index.tracks[best.track].track_id
            zf = zb[np.isfinite(zb)]
            out.append({**row, "guess": guess, "correct": bool(q.in_catalog and guess == q.track_id),
                        "score": decision_score(res, cfg.score), "z_best": best.score, "sim_best": best.similarity,
                        "z_run": runner.score if runner else 0.0, "sim_run": runner.similarity if runner else 0.0,
                        "n_aligned": best.n_aligned, "offset_s": best.offset_s,
                        "z_med": float(np.median(zf)) if zf.size else 0.0,
                        "z_q25": float(np.quantile(zf, 0.25)) if zf.size else 0.0,
                        "z_min": float(zf.min()) if zf.size else 0.0, "agree_top1": float(agree.mean()),
                        "mu_mean": float(ev.background.mu[:c].mean()),
                        "sigma_mean": float(ev.background.sigma[:c].mean()),
                        "top1_sim_mean": float(ev.scores[:c, 0].mean()),
                        "side_max": float(side_mean.max()), "side_median": float(np.median(side_mean))})
    return out


def candidate_scores(df) -> dict[str, np.ndarray]:
    """The open-set scores compared: the deployed one, single features, and simple contrasts."""
    return {"score (deployed)": df["score"].to_numpy(),
            "score - runner-up": (df["z_best"] - df["z_run"]).to_numpy(),
            "score - max sidelobe": (df["z_best"] - df["side_max"]).to_numpy(),
            "peak (embedding.score: peak): score - max(0, max sidelobe)":
                (df["z_best"] - df["side_max"].clip(lower=0.0)).to_numpy(),
            "score - median sidelobe": (df["z_best"] - df["side_median"]).to_numpy(),
            "lower-quartile window z": df["z_q25"].to_numpy(),
            "median window z": df["z_med"].to_numpy(),
            "top-1 agreement": df["agree_top1"].to_numpy() + 1e-3 * df["z_best"].to_numpy()}


FEATURES = ["z_best", "z_run", "side_max", "side_median", "z_q25", "z_med", "agree_top1", "sim_best", "mu_mean"]


def table(df, target_far: float) -> list[str]:
    """Markdown: accepted and right at target_far per length for each candidate score and two learned ones."""
    from tune_decision import cross_fitted

    from resonance.evaluate.stats import threshold_at_far

    length, inside = df["length_s"].to_numpy(), df["in_catalog"].to_numpy()
    correct = df["correct"].to_numpy()
    fold = np.array([zlib.crc32(e.encode()) % 2 for e in df["excerpt"]])
    feats = df[FEATURES].fillna(0.0).to_numpy(dtype=np.float64)
    scores = candidate_scores(df)
    scores["learned: score + sidelobes"] = cross_fitted(feats[:, [0, 2, 3]], length, inside, correct, fold)
    scores["learned: all features"] = cross_fitted(feats, length, inside, correct, fold)
    lengths = sorted(set(length.tolist()))
    lines = ["| open-set score | " + " | ".join(f"{L:g} s" for L in lengths) + " |",
             "|---|" + "---|" * len(lengths),
             "| top-1 (no threshold) | " + " | ".join(f"{correct[(length == L) & inside].mean():.1%}"
                                                     for L in lengths) + " |"]
    for name, s in scores.items():
        s = np.where(np.isfinite(s), s, -np.inf)
        cells = []
        for L in lengths:
            sel = length == L
            thr = threshold_at_far(s[sel & ~inside], target_far)
            cells.append(f"{(correct & (s >= thr))[sel & inside].mean():.1%}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def false_accepts(df, length_s: float, target_far: float) -> list[str]:
    """Markdown: where the out-of-catalog queries above the deployed score's threshold at length_s come from."""
    from resonance.evaluate.stats import threshold_at_far

    d = df[df["length_s"] == length_s]
    out = d[~d["in_catalog"]]
    thr = threshold_at_far(out["score"].to_numpy(), target_far)
    fa = out[out["score"] >= thr]
    ok = d[d["in_catalog"] & d["correct"] & (d["score"] >= thr)]
    lines = [f"At {length_s:g} s the threshold is {thr:.3f}: {len(fa)} of {len(out)} out-of-catalog queries are "
             f"above it, and {len(ok)} of {int(d['in_catalog'].sum())} in-catalog queries are accepted and right.",
             "", "| cell (SNR dB, room, clipping) | false accepts | out-of-catalog queries | in-catalog accepted "
             "and right | in-catalog queries |", "|---|---|---|---|---|"]
    key = ["snr_db", "reverb", "clipping"]
    def count(frame):
        return frame.assign(snr_db=frame["snr_db"].fillna(np.inf)).groupby(key).size()

    n_out, n_in, n_fa, n_ok = count(out), count(d[d["in_catalog"]]), count(fa), count(ok)
    for cell in sorted(n_in.index.union(n_out.index), key=lambda k: (-n_fa.get(k, 0), k)):
        snr = "no crowd" if not np.isfinite(cell[0]) else f"{cell[0]:g}"
        lines.append(f"| {snr}, {cell[1]}, {cell[2]} | {n_fa.get(cell, 0)} | {n_out.get(cell, 0)} | "
                     f"{n_ok.get(cell, 0)} | {n_in.get(cell, 0)} |")
    lines += ["", "| out-of-catalog excerpt | false accepts | guessed tracks (most often first) | mean sidelobe "
              "max | mean score |", "|---|---|---|---|---|"]
    for exc, g in sorted(fa.groupby("excerpt"), key=lambda kv: -len(kv[1]))[:12]:
        guesses = ", ".join(f"{t} ({n})" for t, n in g["guess"].value_counts().head(3).items())
        lines.append(f"| {exc} | {len(g)} | {guesses} | {g['side_max'].mean():.2f} | {g['score'].mean():.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--model", default=None, help="default: embedding.model")
    parser.add_argument("--catalog", default="data/catalog")
    parser.add_argument("--queries", default="data/queries/val")
    parser.add_argument("--index", default="data/index", help="the deployed index (built here when missing)")
    parser.add_argument("--calibration", default="data/calibration", help="its background cohort is used")
    parser.add_argument("--cache", default=None, help="default: data/tune/<model>, shared with tune_decision.py")
    parser.add_argument("--out", default="benchmarks/open_set_audit.md")
    parser.add_argument("--every", type=int, default=1, help="keep every n-th clip (a quick look; default all)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    import pandas as pd
    from tune_decision import build_unmasked, embed_clips, masked_copy, model_cohort, search_clips

    from resonance.config import EmbeddingParams, EvaluateParams, load_section
    from resonance.evaluate.queries import load_queries
    from resonance.index.calibration import Calibration, load_calibration
    from resonance.index.method import EmbeddingMethod
    from resonance.index.store import EmbeddingIndex
    from resonance.io import atomic_open
    from resonance.model.embedder import Embedder, load_model

    base = load_section(args.params, "embedding", EmbeddingParams)
    ev = load_section(args.params, "evaluate", EvaluateParams)
    embedder = Embedder(load_model(args.model or base.model), batch=base.batch)
    method = EmbeddingMethod(embedder, base)
    cache = Path(args.cache or f"data/tune/{method.model_sha256[:12]}")
    if args.every > 1:  # a subset: its embeddings and neighbours are kept apart from the whole set's
        cache = cache / f"every{args.every}"
    cache.mkdir(parents=True, exist_ok=True)
    label = "deployed"
    if (Path(args.index) / "index.json").is_file():
        index = EmbeddingIndex.load(args.index, method.model_sha256)
    else:
        label = "masked"
        full, row_usable = build_unmasked(method, Path(args.catalog), cache)
        index = masked_copy(full, row_usable)
    queries = load_queries(args.queries)
    if args.every > 1:
        keep = set(sorted({q.audio_path for q in queries})[::args.every])
        queries = [q for q in queries if q.audio_path in keep]
    clips = embed_clips(method, queries, Path(args.queries), cache)
    neighbours = search_clips(index, clips, label, cache)
    if (Path(args.calibration) / "cohort.npy").is_file():
        cohort = load_calibration(args.calibration, method.model_sha256).cohort
    else:
        cohort = model_cohort(method, Path(args.catalog))
    cal = Calibration(index.model_sha256, "sequence", base.score, base.cohort_top, ev.target_far, (), cohort,
                      base.background)
    tuned = EmbeddingMethod.with_index(embedder, base, index, cal)
    df = pd.DataFrame(audit_rows(tuned, index, clips, neighbours, queries, embedder.window_s, tuple(base.sidelobe_s)))
    tmp = cache / "open_set_audit.parquet.tmp"
    df.to_parquet(tmp)
    tmp.replace(cache / "open_set_audit.parquet")
    lines = [f"# Open-set audit on `{args.queries}` (the whole {len(index.tracks)}-track catalog indexed)", "",
             "Generated by `.venv/bin/python benchmarks/open_set_audit.py`; do not edit by hand. Share of "
             "in-catalog val queries accepted and right at 1% false accepts of the out-of-catalog val queries, "
             "threshold per length chosen on these same queries (learned rows: cross-fitted on halves of the "
             "excerpts). Sidelobes: the best track scored at offsets shifted by 1-5 s.", ""]
    lines += table(df, ev.target_far)
    for L in (3.0, 5.0):
        if (df["length_s"] == L).any():
            lines += ["", f"## Where the false accepts come from at {L:g} s", ""] + false_accepts(df, L, ev.target_far)
    text = "\n".join(lines) + "\n"
    with atomic_open(Path(args.out)) as fh:
        fh.write(text)
    print(text)


if __name__ == "__main__":
    main()
