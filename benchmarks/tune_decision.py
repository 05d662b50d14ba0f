"""Choose the embedding decision on the val queries (never the test set), and measure hubness.

Run: .venv/bin/python benchmarks/tune_decision.py [--model data/model] [--queries data/queries/val]
     [--cache DIR] [--out benchmarks/decision_tuning.md]

Embeds the whole catalog once WITHOUT the silence mask (each window's usable flag kept, so the masked index is
the same vectors minus the silent rows) and every val clip once (each query length is a prefix of its clip), then
scores each decision variant (vote vs sequence search, the open-set score, the background cohort, top-k, the
silence mask) on every val query: top-1 per length, at 0 dB with reverb, and the share accepted and right at 1%
false accepts per length (threshold per length chosen on these same val queries, as `resonance calibrate` does).
Hubness: how often reference windows turn up in the val query windows' top-10 lists (k-occurrence), with and
without the silence mask. Prints a markdown table and writes it to --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import zlib
from pathlib import Path

import numpy as np

from resonance.calibrate.stage import draw_cohort
from resonance.catalog.manifest import load_manifest
from resonance.config import EmbeddingParams, EvaluateParams, load_section
from resonance.evaluate.queries import flac_loader, load_queries
from resonance.evaluate.stats import threshold_at_far
from resonance.index.ann import AnnSpec
from resonance.index.calibration import Calibration
from resonance.index.method import EmbeddingMethod, Evidence, decision_score
from resonance.index.store import EmbeddingIndex
from resonance.io import atomic_open
from resonance.model.embedder import Embedder, load_model
from resonance.progress import progress

K_MAX = 20


def build_unmasked(method: EmbeddingMethod, catalog: Path, cache: Path) -> tuple[EmbeddingIndex, np.ndarray]:
    """The catalog index with every window, and each row's usable flag (cached in `cache`)."""
    from resonance.audio import read_audio

    if (cache / "index" / "index.json").is_file():
        index = EmbeddingIndex.load(cache / "index", method.model_sha256)
        return index, np.load(cache / "usable.npy")
    index, flags = method.new_index(), []
    for t in progress(load_manifest(catalog), desc="tune: index", unit="track"):
        audio = read_audio(catalog / t.audio_path, t.sample_rate)[0]
        emb = method.embedder.embed(audio, index.hop_s)
        usable = method.usable(audio, index.hop_s)
        index.add_track(t.track_id, t.title, emb, index.hop_s, audio.size / t.sample_rate, "catalog")
        flags.append(usable if usable.size == emb.shape[0] else np.zeros(emb.shape[0], bool))
    index.save(cache / "index")
    np.save(cache / "usable.npy", np.concatenate(flags))
    return index, np.concatenate(flags)


def masked_copy(index: EmbeddingIndex, usable: np.ndarray, ann: AnnSpec | None = None) -> EmbeddingIndex:
    """The same index without the rows whose window is not usable (proposing candidates with `ann`)."""
    out = EmbeddingIndex(index.dim, index.window_s, index.hop_s, index.model_sha256, ann)
    vectors, track = index.vectors(), index.row_track()
    for pos, info in enumerate(index.tracks):
        rows = np.flatnonzero(track == pos)
        if usable[rows].any():
            out.add_track(info.track_id, info.title, vectors[rows], index.hop_s, info.duration_s, info.source,
                          usable[rows])
    return out


def embed_clips(method: EmbeddingMethod, queries: list, folder: Path, cache: Path) -> dict[str, tuple]:
    """{audio_path: (windows (m, dim), usable (m,))} of every val clip at the query hop (cached per query set
    content and query hop: a re-rendered query set is never read from a stale cache)."""
    import hashlib

    digest = hashlib.sha256((folder / "queries.jsonl").read_bytes()).hexdigest()[:12]
    path = cache / f"val_clips-{digest}-hop{method.config.query_hop_s:g}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=True) as npz:
            return npz["clips"].item()
    load = flac_loader(folder, method.embedder.sr)
    clips = {}
    longest = {}
    for q in queries:
        if q.length_s > longest.get(q.audio_path, (0, None))[0]:
            longest[q.audio_path] = (q.length_s, q)
    for rel, (_, q) in progress(sorted(longest.items()), desc="tune: val clips", unit="clip"):
        audio = load(q)
        clips[rel] = (method.embedder.embed(audio, method.config.query_hop_s),
                      method.usable(audio, method.config.query_hop_s))
    np.savez(path, clips=np.array(clips, dtype=object))
    return clips


def model_cohort(method: EmbeddingMethod, catalog: Path) -> np.ndarray:
    """The background cohort `resonance calibrate` would draw for this model."""
    import torch

    embedder, base = method.embedder, method.config

    def embed(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return embedder.model(torch.from_numpy(np.ascontiguousarray(batch))).numpy()

    usable_window = lambda a: bool(method.usable(a, embedder.window_s).all())  # noqa: E731
    return draw_cohort(catalog, base.cohort_size, base.seed, embedder.window_s, embedder.sr, usable_window, embed)


def windows_of(length_s: float, window_s: float, hop_s: float) -> int:
    return 1 + int(round((length_s - window_s) / hop_s + 1e-9))


def search_clips(index: EmbeddingIndex, clips: dict[str, tuple], label: str,
                 cache: Path | None = None) -> dict[str, tuple]:
    """{audio_path: (scores, rows) (m_usable, K_MAX)} of every clip's usable windows in `index` (kept in
    cache/neighbours_<label>.npz when a cache folder is given)."""
    path = None if cache is None else cache / f"neighbours_{label}.npz"
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=True) as npz:
            return npz["neighbours"].item()
    out = search_all(index, clips, label)
    if path is not None:
        np.savez(path, neighbours=np.array(out, dtype=object))
    return out


def search_all(index: EmbeddingIndex, clips: dict[str, tuple], label: str) -> dict[str, tuple]:
    out = {}
    for rel, (q, usable) in progress(clips.items(), desc=f"tune: search {label}", unit="clip"):
        idx = np.flatnonzero(usable)
        out[rel] = index.search_rows(np.ascontiguousarray(q[idx]), K_MAX) if idx.size else (None, None)
    return out


def evaluate_variant(embedder: Embedder, config: EmbeddingParams, index: EmbeddingIndex, clips: dict[str, tuple],
                     neighbours: dict[str, tuple], queries: list, cohort: np.ndarray, cohort_top: int | None,
                     target_far: float, mode: str = "z") -> dict[str, float]:
    """Top-1 per length (`top1_L`), at 0 dB + reverb (`r0_L`) and accepted-and-right at `target_far` false accepts
    per length (`far1_L`, threshold chosen on these queries) of one decision configuration."""
    t0 = time.perf_counter()
    sha = index.model_sha256
    cal = None if cohort_top is None else Calibration(sha, config.decision, config.score, cohort_top, target_far, (),
                                                      cohort, mode)
    tuned = EmbeddingMethod.with_index(embedder, config, index, cal)
    by_clip: dict[str, list] = {}
    for q in queries:
        by_clip.setdefault(q.audio_path, []).append(q)
    k = config.top_k
    outcome = []  # (length, in_catalog, correct, score, reverb0)
    for rel, group in by_clip.items():
        q, usable = clips[rel]
        idx = np.flatnonzero(usable)
        scores, nrows = neighbours[rel]
        qs = np.ascontiguousarray(q[idx])
        bg = cal.background(qs) if (cal is not None and idx.size) else None
        evidence = Evidence(int(usable.size), idx, qs, None if scores is None else scores[:, :k],
                            None if nrows is None else nrows[:, :k], bg)
        for query in group:
            m = windows_of(query.length_s, embedder.window_s, config.query_hop_s)
            found = tuned.decide(evidence, m, query.length_s)
            guess = found.guess.track_id if found.guess is not None else None
            outcome.append((query.length_s, query.in_catalog, guess == query.track_id and query.in_catalog,
                            decision_score(found.result, config.score) if found.result is not None else -np.inf,
                            query.snr_db == 0 and query.reverb != "dry", zlib.crc32(query.excerpt.encode()) % 2,
                            *features(found.result)))
    length, inside, correct, score, reverb0, fold = (np.array(v) for v in list(zip(*outcome))[:6])
    feats = np.array([o[6:] for o in outcome], dtype=np.float64)
    learned = cross_fitted(feats, length, inside, correct, fold)
    row: dict[str, float] = {"seconds": time.perf_counter() - t0}
    for L in sorted(set(length.tolist())):
        sel = length == L
        row[f"top1_{L:g}"] = float(correct[sel & inside].mean())
        row[f"r0_{L:g}"] = float(correct[sel & inside & reverb0].mean())
        for key, values in (("far1", score), ("learned", learned)):
            thr = threshold_at_far(values[sel & ~inside], target_far)
            row[f"{key}_{L:g}"] = float((correct & (values >= thr))[sel & inside].mean())
    return row


def features(result) -> tuple[float, float, float, float]:
    """(best normalised score, margin to the best other track, best raw similarity, raw margin); zeros without a
    sequence result."""
    best, runner = getattr(result, "best", None), getattr(result, "runner_up", None)
    if best is None:
        return 0.0, 0.0, 0.0, 0.0
    rs, rsim = (runner.score, runner.similarity) if runner is not None else (0.0, 0.0)
    return best.score, best.score - rs, best.similarity, best.similarity - rsim


def cross_fitted(feats: np.ndarray, length: np.ndarray, inside: np.ndarray, correct: np.ndarray,
                 fold: np.ndarray) -> np.ndarray:
    """A logistic combination of the features per length, each query scored by the model fitted on the other
    half of the excerpts (so its threshold is not chosen on its own fit)."""
    from scipy.optimize import minimize

    out = np.full(length.size, -np.inf)
    for L in np.unique(length):
        for f in (0, 1):
            train, test = (length == L) & (fold != f), (length == L) & (fold == f)
            x = feats[train]
            mu, sd = x.mean(0), x.std(0) + 1e-9
            xs = (x - mu) / sd
            y = correct[train].astype(float)
            w = np.where(inside[train], 0.5 / max(1, inside[train].sum()), 0.5 / max(1, (~inside[train]).sum()))

            def nll(p: np.ndarray) -> float:
                z = xs @ p[:-1] + p[-1]
                return float(np.sum(w * (np.logaddexp(0, z) - y * z)) + 1e-4 * np.sum(p[:-1] ** 2))

            p = minimize(nll, np.zeros(xs.shape[1] + 1), method="L-BFGS-B").x
            out[test] = ((feats[test] - mu) / sd) @ p[:-1] + p[-1]
    return out


def hubness(index: EmbeddingIndex, neighbours: dict[str, tuple]) -> dict[str, float]:
    """k-occurrence N_10 of the reference rows over all usable val query windows: max, skewness, and the share of
    all top-10 slots taken by the 0.1% most frequent rows."""
    counts = np.zeros(index.n_windows, dtype=np.int64)
    for scores, rows in neighbours.values():
        r = rows[:, :10].ravel()
        np.add.at(counts, r[r >= 0], 1)
    n_top = max(1, index.n_windows // 1000)
    mean, std = counts.mean(), counts.std()
    return {"max": int(counts.max()), "skew": float(np.mean((counts - mean) ** 3) / std ** 3),
            "top0.1%": float(np.sort(counts)[-n_top:].sum() / counts.sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--model", default=None, help="default: embedding.model")
    parser.add_argument("--catalog", default="data/catalog")
    parser.add_argument("--queries", default="data/queries/val")
    parser.add_argument("--cache", default=None, help="where the embeddings are kept (default: data/tune/<model>)")
    parser.add_argument("--out", default="benchmarks/decision_tuning.md")
    args = parser.parse_args()
    base = load_section(args.params, "embedding", EmbeddingParams)
    ev = load_section(args.params, "evaluate", EvaluateParams)
    embedder = Embedder(load_model(args.model or base.model), batch=base.batch)
    method = EmbeddingMethod(embedder, base)
    cache = Path(args.cache or f"data/tune/{method.model_sha256[:12]}")
    cache.mkdir(parents=True, exist_ok=True)
    full, row_usable = build_unmasked(method, Path(args.catalog), cache)
    indexes = {"unmasked": full, "masked": masked_copy(full, row_usable)}
    t0 = time.perf_counter()
    indexes["hnsw"] = masked_copy(full, row_usable, base.ann_spec() if base.index_type == "hnsw" else
                                  AnnSpec("hnsw", 32, 80, 128))
    indexes["hnsw"].ann_structure()
    hnsw_build_s = time.perf_counter() - t0
    queries = load_queries(args.queries)
    clips = embed_clips(method, queries, Path(args.queries), cache)

    cohort = model_cohort(method, Path(args.catalog))
    neighbours = {name: search_clips(index, clips, name, cache if name != "hnsw" else None)
                  for name, index in indexes.items()}
    sample = dict(list(clips.items())[:200])
    search_ms = {}
    for name in ("masked", "hnsw"):
        t0 = time.perf_counter()
        search_all(indexes[name], sample, f"timing {name}")
        search_ms[name] = (time.perf_counter() - t0) / len(sample)
    z, top = base.cohort_top, base.cohort_top
    # (label, decision overrides, index, cohort top (None: raw cosine), top-k, background mode)
    variants = [
        ("vote (before)", dict(decision="vote", score="score"), "unmasked", None, 10, "z"),
        ("vote, silence masked", dict(decision="vote", score="score"), "masked", None, 10, "z"),
        ("sequence, raw cosine, score", dict(decision="sequence", score="score"), "masked", None, 10, "z"),
        ("sequence, raw cosine, margin", dict(decision="sequence", score="margin"), "masked", None, 10, "z"),
        (f"sequence, cohort top {top} z, score", dict(decision="sequence", score="score"), "masked", z, 10, "z"),
        (f"sequence, cohort top {top} z, margin", dict(decision="sequence", score="margin"), "masked", z, 10, "z"),
        (f"sequence, cohort top {top} z, blend", dict(decision="sequence", score="blend"), "masked", z, 10, "z"),
        (f"sequence, cohort top {top} z, peak (score - best sidelobe)", dict(decision="sequence", score="peak"),
         "masked", z, 10, "z"),
        (f"sequence, cohort top {top} shift, score", dict(decision="sequence", score="score"), "masked", z, 10,
         "shift"),
        (f"sequence, cohort top {top} shift, margin", dict(decision="sequence", score="margin"), "masked", z, 10,
         "shift"),
        ("sequence, cohort top 20 z, margin", dict(decision="sequence", score="margin"), "masked", 20, 10, "z"),
        ("sequence, cohort top 500 z, margin", dict(decision="sequence", score="margin"), "masked", 500, 10, "z"),
        (f"sequence, cohort top {top} z, margin, top-k 5", dict(decision="sequence", score="margin"), "masked", z, 5,
         "z"),
        (f"sequence, cohort top {top} z, margin, top-k 20", dict(decision="sequence", score="margin"), "masked", z,
         20, "z"),
        (f"sequence, cohort top {top} z, margin, unmasked", dict(decision="sequence", score="margin"), "unmasked",
         z, 10, "z"),
        (f"sequence, cohort top {top} z, margin, HNSW proposals", dict(decision="sequence", score="margin"), "hnsw",
         z, 10, "z"),
    ]
    lengths = sorted({q.length_s for q in queries})
    rows = []
    for label, over, index_name, cohort_top, k, mode in variants:
        config = dataclasses.replace(base, top_k=k, background=mode, **over)
        row = evaluate_variant(embedder, config, indexes[index_name], clips, neighbours[index_name], queries, cohort,
                               cohort_top, ev.target_far, mode)
        rows.append({"label": label, **row})
        print(label, {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    hub = {name: hubness(indexes[name], neighbours[name]) for name in ("unmasked", "masked")}
    show = [L for L in lengths if L in (1.0, 3.0, 5.0, 10.0)]
    lines = [f"# Decision tuning on `{args.queries}` (the whole {len(full.tracks)}-track catalog indexed)", "",
             "Generated by `.venv/bin/python benchmarks/tune_decision.py`; do not edit by hand. Top-1: the best "
             "guess is the right song. At 1% FA: accepted and right, with a threshold per length at 1% false "
             "accepts of the out-of-catalog val queries (chosen on these same queries). Learned: a logistic "
             "combination of (score, margin, raw similarity, raw margin) per length, each query scored by the fit "
             "on the other half of the excerpts.", "",
             "| decision | " + " | ".join(f"top-1 {L:g} s" for L in show) + " | 0 dB + reverb 3 s / 5 s | "
             + " | ".join(f"at 1% FA {L:g} s" for L in show) + " | learned, at 1% FA 3 s / 5 s |",
             "|---|" + "---|" * (2 * len(show) + 2)]
    for r in rows:
        lines.append(f"| {r['label']} | " + " | ".join(f"{r[f'top1_{L:g}']:.1%}" for L in show)
                     + f" | {r['r0_3']:.1%} / {r['r0_5']:.1%} | "
                     + " | ".join(f"{r[f'far1_{L:g}']:.1%}" for L in show)
                     + f" | {r['learned_3']:.1%} / {r['learned_5']:.1%} |")
    spec = indexes["hnsw"].ann_spec
    clip_ms = {name: 1000 * t for name, t in search_ms.items()}
    lines += ["", f"Candidate search per 10 s val clip ({K_MAX} neighbours of each usable window): exact scan "
              f"{clip_ms['masked']:.0f} ms, HNSW (m {spec.hnsw_m}, ef_search {spec.ef_search}; built in "
              f"{hnsw_build_s:.0f} s) {clip_ms['hnsw']:.1f} ms."]
    lines += ["", "Hubness of the reference windows (k-occurrence in the top-10 lists of all usable val query "
              "windows): a hub is a window that turns up for everything.", "",
              "| index | windows | max k-occurrence | skewness | share of top-10 slots held by the 0.1% most "
              "frequent windows |", "|---|---|---|---|---|"]
    for name, h in hub.items():
        lines.append(f"| {name} | {indexes[name].n_windows:,} | {h['max']} | {h['skew']:.1f} | {h['top0.1%']:.1%} |")
    text = "\n".join(lines) + "\n"
    with atomic_open(Path(args.out)) as fh:
        fh.write(text)
    print(text)


if __name__ == "__main__":
    main()
