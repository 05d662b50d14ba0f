"""The decision on hand-made embeddings: sequence search, the open-set calibration fit, the excerpt bootstrap.

Real FAISS indexes of planted unit vectors (no model): each test builds the situation it checks, so what the
decision must do is known exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from resonance.calibrate.fit import fit_lengths
from resonance.evaluate.stats import ClusterBootstrap
from resonance.index.sequence import Background, sequence_search
from resonance.index.store import EmbeddingIndex
from resonance.index.vote import vote

DIM, HOP, QHOP = 32, 0.5, 0.25


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _planted(seed: int = 0):
    """300 random tracks x 40 windows; a 20-window query of track 7 from 5.0 s (each window its aligned reference
    plus noise); for every query window, decoys elsewhere (scattered tracks and times) that are MORE similar to
    it than its true reference: 12 per window (the truth falls out of the top 10), 3 for window 0 (it stays in)."""
    rng = np.random.default_rng(seed)
    refs = _unit(rng.standard_normal((300, 40, DIM)))
    truth_track, offset_s, m = 7, 5.0, 20
    slots = np.floor((offset_s + QHOP * np.arange(m)) / HOP + 1e-9).astype(int)
    queries = _unit(refs[truth_track, slots] + 0.9 * _unit(rng.standard_normal((m, DIM))))
    taken = {(truth_track, int(j)) for j in range(40)}
    for i in range(m):
        for _ in range(3 if i == 0 else 12):
            while True:
                t, j = int(rng.integers(300)), int(rng.integers(40))
                if (t, j) not in taken:
                    break
            taken.add((t, j))
            refs[t, j] = _unit(queries[i] + 0.25 * _unit(rng.standard_normal(DIM)))
    index = EmbeddingIndex(DIM, 1.0, HOP, "planted")
    for t in range(300):
        index.add_track(f"t{t}", f"T{t}", refs[t], HOP, 20.5, "planted")
    return index, queries, truth_track, offset_s


def test_sequence_search_finds_a_sequence_no_single_window_ranks_first() -> None:
    index, queries, truth, offset_s = _planted()
    scores, track, start = index.search(queries, 10)
    assert not (track[:, 0] == truth).any()  # no window's nearest neighbour is the true track
    assert (track == truth).any(axis=1).sum() == 1  # and only window 0 has it in its top 10 at all
    found = sequence_search(index, queries, np.ones(len(queries), bool), QHOP, top_k=10, max_candidates=1000)
    assert found.best.track == truth and found.best.offset_s == pytest.approx(offset_s)
    assert found.runner_up.track != truth and found.margin > 0.2
    assert found.best.n_aligned == len(queries)  # every window was compared with its aligned reference
    old = vote(scores, track, start, QHOP, HOP)  # the top-k vote sees one window of it and names a decoy
    assert old.track != truth


def test_windows_between_reference_windows_take_the_better_neighbour() -> None:
    rng = np.random.default_rng(3)
    refs = _unit(rng.standard_normal((1, 10, DIM)))
    index = EmbeddingIndex(DIM, 1.0, HOP, "x")
    index.add_track("only", "only", refs[0], HOP, 5.5, "x")
    # window 1 (at 0.25 s) lies between slots 0 and 1: make it equal slot 1, window 3 equal slot 1 (its floor)
    queries = _unit(np.stack([refs[0, 0], refs[0, 1], refs[0, 1], refs[0, 1]]))
    found = sequence_search(index, queries, np.ones(4, bool), QHOP, top_k=3, max_candidates=10)
    assert found.best.track == 0 and found.best.offset_s == 0.0
    assert found.best.similarity == pytest.approx(1.0, abs=1e-5)  # 0 -> slot 0, 1 -> 1, 2 -> 1, 3 -> max(1, 2)


def test_silent_query_windows_are_no_evidence_and_the_background_normalises() -> None:
    index, queries, truth, offset_s = _planted(seed=1)
    usable = np.ones(len(queries), bool)
    usable[10:] = False  # the second half is "silent": it must not count for or against any candidate
    found = sequence_search(index, queries, usable, QHOP, top_k=10, max_candidates=1000)
    assert found.n_usable == 10 and found.best.track == truth and found.best.n_aligned == 10
    mu, sigma = np.full(10, 0.1, np.float32), np.full(10, 0.2, np.float32)
    z = sequence_search(index, queries, usable, QHOP, 10, 1000, Background(mu, sigma))
    assert z.best.track == truth and z.best.score == pytest.approx((found.best.score - 0.1) / 0.2, rel=1e-4)


def test_calibration_fit_picks_the_threshold_per_length_on_out_of_catalog_scores() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for length, shift in ((1.0, 0.5), (5.0, 3.0)):  # longer queries separate better: a higher threshold is fine
        for _ in range(400):
            rows.append((length, True, True, rng.normal(shift, 1.0)))
        for _ in range(200):
            rows.append((length, False, False, rng.normal(0.0, 0.5 if length == 5.0 else 1.0)))
    rows.append((1.0, True, False, -np.inf))  # nothing to judge: a certain rejection
    length, inside, correct, score = (np.array(v) for v in zip(*rows))
    fitted = fit_lengths(length, inside.astype(bool), correct.astype(bool), score.astype(float), 0.01)
    assert [c.length_s for c in fitted] == [1.0, 5.0]
    for c in fitted:
        out = score[(length == c.length_s) & ~inside.astype(bool)]
        assert (out >= c.threshold).mean() <= 0.01 and c.val_far <= 0.01
        assert (out >= np.nextafter(c.threshold, -np.inf) - 0.2).mean() > 0.0  # not needlessly high
        assert c.a > 0  # confidence grows with the score
    assert fitted[1].val_hit_rate > fitted[0].val_hit_rate
    with pytest.raises(ValueError, match="both in- and out-of-catalog"):
        fit_lengths(np.array([1.0, 1.0]), np.array([True, True]), np.array([True, False]), np.array([1.0, 2.0]), 0.01)


def test_the_bootstrap_resamples_excerpts_so_correlated_queries_widen_the_interval() -> None:
    rng = np.random.default_rng(0)
    excerpts = [f"e{i}" for i in range(100) for _ in range(24)]  # 24 queries per excerpt
    per_excerpt = rng.random(100) < 0.5
    hits = np.repeat(per_excerpt, 24).astype(float)  # all queries of an excerpt agree: 100 effective samples
    boot = ClusterBootstrap(excerpts, 2000, seed=1)
    lo, hi = boot.interval(excerpts, hits, 0.95)
    assert lo < hits.mean() < hi and 0.16 < hi - lo < 0.24  # ~ 2 * 1.96 * sqrt(.25 / 100) = 0.196
    independent = ClusterBootstrap([str(i) for i in range(2400)], 2000, seed=1)
    lo2, hi2 = independent.interval([str(i) for i in range(2400)], hits, 0.95)
    assert hi2 - lo2 < 0.5 * (hi - lo)  # treating the 2400 queries as independent would claim 5x the precision
    same = boot.difference(excerpts, hits, hits, 0.95)
    assert same == (0.0, 0.0)


def test_a_compressed_ivfpq_index_keeps_only_codes_and_answers_the_same_once_loaded(tmp_path) -> None:
    from resonance.index.ann import AnnSpec
    from resonance.index.store import EmbeddingIndexError

    index, queries, truth, offset_s = _planted(seed=2)
    spec = AnnSpec("ivfpq", 16, 64, 64, ivf_nlist=64, ivf_nprobe=16, pq_m=8, pq_nbits=8)
    pq = EmbeddingIndex(DIM, 1.0, HOP, "planted", spec)
    for t in index.tracks:
        pos = index.position(t.track_id)
        pq.add_track(t.track_id, t.title, index.vectors()[index.row_track() == pos], HOP, t.duration_s, t.source)
    pq.save(tmp_path / "pq")
    index.save(tmp_path / "flat")
    assert not (tmp_path / "pq" / "index.faiss").exists()  # no float copy on disk: codes only
    size = {name: sum(p.stat().st_size for p in (tmp_path / name).iterdir()) for name in ("pq", "flat")}
    assert size["pq"] < 0.5 * size["flat"]
    rec = pq.vectors()  # after the save, in memory as loaded: reconstructions, close to the exact rows
    assert 0.85 < float(np.mean(np.sum(rec * index.vectors(), axis=1))) < 0.9999
    found = sequence_search(pq, queries, np.ones(len(queries), bool), QHOP, 10, 1000)
    assert found.best.track == truth and found.best.offset_s == pytest.approx(offset_s)
    loaded = EmbeddingIndex.load(tmp_path / "pq")
    assert loaded.ann_spec == spec and loaded.n_windows == index.n_windows
    np.testing.assert_array_equal(loaded.vectors(), rec)
    np.testing.assert_array_equal(loaded.search_rows(queries, 10)[1], pq.search_rows(queries, 10)[1])
    again = sequence_search(loaded, queries, np.ones(len(queries), bool), QHOP, 10, 1000)
    assert (again.best.track, again.best.offset_s, again.best.score) == (found.best.track, found.best.offset_s,
                                                                        found.best.score)
    loaded.remove_track("t3")  # in place: the codes of every other window are untouched
    assert loaded._ann is not None and loaded._ann.ntotal == loaded.n_windows == index.n_windows - 40
    after = sequence_search(loaded, queries, np.ones(len(queries), bool), QHOP, 10, 1000)
    assert after.best.track == truth - 1 and after.best.score == pytest.approx(found.best.score)
    data = bytearray((tmp_path / "pq" / "ann.faiss").read_bytes())
    data[len(data) // 3] ^= 1
    (tmp_path / "pq" / "ann.faiss").write_bytes(bytes(data))
    with pytest.raises(EmbeddingIndexError, match="ann.faiss fail"):
        EmbeddingIndex.load(tmp_path / "pq")


def test_an_hnsw_index_proposes_the_same_candidates_and_survives_a_save(tmp_path) -> None:
    from resonance.index.ann import AnnSpec

    index, queries, truth, offset_s = _planted(seed=2)
    hnsw = index.subset([t.track_id for t in index.tracks])
    hnsw.ann_spec = AnnSpec("hnsw", 16, 64, 64)
    exact = sequence_search(index, queries, np.ones(len(queries), bool), QHOP, 10, 1000)
    approx = sequence_search(hnsw, queries, np.ones(len(queries), bool), QHOP, 10, 1000)
    assert approx.best.track == exact.best.track == truth and approx.best.offset_s == exact.best.offset_s
    _, exact_rows = index.search_rows(queries, 10)
    _, approx_rows = hnsw.search_rows(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact_rows, approx_rows)])
    assert recall > 0.9
    hnsw.save(tmp_path / "idx")
    assert (tmp_path / "idx" / "ann.faiss").is_file()
    loaded = EmbeddingIndex.load(tmp_path / "idx")
    assert loaded.ann_spec == hnsw.ann_spec and loaded._ann is not None  # read back, not rebuilt
    assert not (tmp_path / "idx" / "index.faiss").exists()  # the graph holds the floats: no second copy saved
    np.testing.assert_array_equal(loaded.vectors(), hnsw.vectors())  # and gives them back exactly
    np.testing.assert_array_equal(loaded.search_rows(queries, 10)[1], approx_rows)
    data = bytearray((tmp_path / "idx" / "ann.faiss").read_bytes())
    data[len(data) // 2] ^= 1
    (tmp_path / "idx" / "ann.faiss").write_bytes(bytes(data))
    from resonance.index.store import EmbeddingIndexError

    with pytest.raises(EmbeddingIndexError, match="ann.faiss fail"):
        EmbeddingIndex.load(tmp_path / "idx")


def test_the_peak_score_keeps_a_true_alignment_and_rejects_a_passage_that_matches_at_every_offset() -> None:
    """`peak` = score minus the best track's best score at the sidelobe offsets: a true match stands out in offset
    (its windows change as the song moves on), a stationary passage (the same texture in every window) scores the
    same at every offset, so its peak is about 0 however high its score."""
    from resonance.index.method import decision_score

    rng = np.random.default_rng(4)
    refs = _unit(rng.standard_normal((50, 40, DIM)))
    drone = _unit(rng.standard_normal(DIM))
    refs[3] = _unit(drone + 0.05 * rng.standard_normal((40, DIM)))  # track 3: one texture throughout
    index = EmbeddingIndex(DIM, 1.0, HOP, "planted")
    for t in range(50):
        index.add_track(f"t{t}", f"T{t}", refs[t], HOP, 20.5, "planted")
    m, side = 20, (1.0, 2.0, 3.0)
    slots = np.floor((4.0 + QHOP * np.arange(m)) / HOP + 1e-9).astype(int)
    song = _unit(refs[8, slots] + 0.5 * _unit(rng.standard_normal((m, DIM))))  # track 8 from 4.0 s, noisy
    texture = _unit(drone + 0.3 * _unit(rng.standard_normal((m, DIM))))  # an unknown song with that texture
    usable = np.ones(m, bool)
    true = sequence_search(index, song, usable, QHOP, top_k=10, max_candidates=200, sidelobe_s=side)
    fake = sequence_search(index, texture, usable, QHOP, top_k=10, max_candidates=200, sidelobe_s=side)
    assert true.best.track == 8 and fake.best.track == 3
    assert fake.best.score > true.best.score  # the raw score prefers the stationary match...
    assert decision_score(true, "peak") > 0.2 and decision_score(fake, "peak") < 0.05  # ...the peak does not
    assert sequence_search(index, song, usable, QHOP, top_k=10, max_candidates=200).sidelobe is None
