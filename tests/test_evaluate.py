"""The evaluation harness: statistics on hand-made numbers, the query-set contract, both baselines end to end on
a tiny query set (generated music, known SNR), the report files and MLflow logging."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.signal import fftconvolve

from resonance.audio import to_pcm16, write_flac
from resonance.chromaprint import ChromaprintConfig
from resonance.config import load_section
from resonance.evaluate.harness import QueryResult, cell_key
from resonance.evaluate.methods import (
    ChromaprintMethod,
    LandmarkMethod,
    Method,
    build_reference,
)
from resonance.evaluate.metrics import compute_metrics, evaluate, flatten_metrics, open_set_metrics
from resonance.evaluate.queries import (
    QuerySetError,
    flac_loader,
    load_queries,
    write_query_table,
)
from resonance.evaluate.report import compare_plot, log_to_mlflow, write_report
from resonance.evaluate.stats import accept_rate, threshold_at_far, wilson_interval
from resonance.landmark.peaks import LandmarkConfig
from resonance.simulate.mix import mix_at_snr

from conftest import ROOT, music_clip

SR = 16000
TRACK_S = 25.0
LENGTHS_S = (4.0, 8.0)
LANDMARK = load_section(ROOT / "params.yaml", "landmark", LandmarkConfig)  # the real settings, as evaluated
MIN_VOTES = 25.0  # a fixed landmark operating point (see test_landmark.py)
# name: (snr_db, reverb, rt60_s, clipping)
CONDITIONS = {"clean": (None, "dry", 0.0, False), "crowd": (10.0, "dry", 0.0, False),
              "hall": (0.0, "hall", 1.2, False), "clipped": (None, "dry", 0.0, True)}
SETTINGS = dict(target_far=0.01, segment_tolerance_s=0.5, confidence=0.95)


# --- a tiny query set ----------------------------------------------------------------------------------------------

def degrade(clean: np.ndarray, snr_db: float | None, rt60_s: float, clipping: bool,
            rng: np.random.Generator) -> np.ndarray:
    """A crude concert view: exponential-tail reverb, white 'crowd' at snr_db, hard clipping."""
    x = clean.astype(np.float64)
    if rt60_s > 0:
        t = np.arange(int(rt60_s * SR)) / SR
        ir = rng.standard_normal(t.size) * np.exp(-6.91 * t / rt60_s) * 0.05
        ir[0] = 1.0
        x = fftconvolve(x, ir)[: x.size]
    if snr_db is not None:
        x, _ = mix_at_snr(x, rng.standard_normal(x.size), snr_db)
    if clipping:
        x = np.clip(4.0 * x, -0.5, 0.5)
    return (0.9 * x / max(1e-9, float(np.max(np.abs(x))))).astype(np.float32)


@pytest.fixture(scope="module")
def catalog() -> dict[str, np.ndarray]:
    return {f"song-{s}": music_clip(TRACK_S, seed=20 + s, sr=SR) for s in range(4)}


@pytest.fixture(scope="module")
def query_dir(tmp_path_factory: pytest.TempPathFactory, catalog: dict[str, np.ndarray]) -> Path:
    """queries.json + queries.jsonl + audio/*.flac, written by hand to the contract (not by our writer)."""
    folder = tmp_path_factory.mktemp("queries")
    rng = np.random.default_rng(0)
    rows = []

    def add(qid: str, audio: np.ndarray, track_id: str | None, offset_s: float | None, length_s: float,
            cond: str) -> None:
        snr_db, reverb, rt60_s, clipping = CONDITIONS[cond]
        write_flac(folder / "audio" / f"{qid}.flac", to_pcm16(degrade(audio, snr_db, rt60_s, clipping, rng)), SR)
        rows.append({"query_id": qid, "audio_path": f"audio/{qid}.flac", "excerpt": qid, "track_id": track_id,
                     "offset_s": offset_s, "length_s": length_s, "snr_db": snr_db, "reverb": reverb,
                     "rt60_s": rt60_s, "clipping": clipping, "condition": {"name": cond, "seed": 0},
                     "in_catalog": track_id is not None})

    for length_s in LENGTHS_S:
        for track_id, audio in catalog.items():
            for cond in CONDITIONS:
                offset_s = round(float(rng.uniform(0, TRACK_S - length_s)), 3)
                i = int(round(offset_s * SR))
                add(f"{track_id}-{cond}-{length_s:g}", audio[i:i + int(length_s * SR)], track_id, offset_s,
                    length_s, cond)
        for k in range(4):
            stranger = music_clip(length_s, seed=200 + k + int(length_s), sr=SR)
            add(f"stranger-{k}-{length_s:g}", stranger, None, None, length_s, "clean" if k % 2 else "crowd")
    (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "queries.json").write_text(json.dumps({"format": 2, "sr": SR}))
    return folder


@pytest.fixture(scope="module")
def landmark_metrics(catalog: dict, query_dir: Path) -> dict[str, Any]:
    method = LandmarkMethod(LANDMARK)
    reference_s = build_reference(method, catalog.items(), SR)
    return evaluate(method, load_queries(query_dir), flac_loader(query_dir, SR), sr=SR, reference_s=reference_s,
                    score_threshold=MIN_VOTES, **SETTINGS)


# --- statistics ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k, n, lo, hi", [(5, 10, 0.2366, 0.7634), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0),
                                          (1, 1, 0.2065, 1.0), (81, 263, 0.2553, 0.3662)])
def test_wilson_interval_known_values(k: int, n: int, lo: float, hi: float) -> None:
    assert wilson_interval(k, n, 0.95) == pytest.approx((lo, hi), abs=1e-4)


def test_wilson_interval_rejects_bad_input() -> None:
    for args in [(1, 0, 0.95), (3, 2, 0.95), (-1, 2, 0.95), (1, 2, 1.0), (0.5, 2, 0.95)]:
        with pytest.raises(ValueError):
            wilson_interval(*args)


def result(**kw: Any) -> QueryResult:
    base = dict(query_id="q", excerpt="e", track_id="a", offset_s=10.0, length_s=5.0, snr_db=0.0, reverb="hall", rt60_s=1.5,
                clipping=False, in_catalog=True, predicted_track_id="a", predicted_offset_s=10.0, score=1.0,
                latency_ms=2.0)
    return QueryResult(**{**base, **kw})


def test_hit_and_segment_hit_accounting_per_length_and_cell() -> None:
    results = [result(), result(predicted_offset_s=10.5), result(predicted_offset_s=9.4),  # seg, seg (edge), song
               result(predicted_track_id="b"),  # wrong song
               result(snr_db=None, reverb="dry", predicted_track_id=None, predicted_offset_s=None),  # no match
               result(snr_db=None, reverb="dry", predicted_offset_s=None),  # song hit, no offset: no segment hit
               result(length_s=10.0, clipping=True, latency_ms=8.0),
               result(track_id=None, offset_s=None, in_catalog=False, predicted_track_id="a")]  # out of catalog
    m = compute_metrics(results, method_name="hand", score_threshold=None, index_bytes=3600, reference_s=7200.0,
                        **SETTINGS)
    len5 = m["by_length"]["len5"]
    assert list(len5["cells"]) == ["snr0_hall_clip0", "snrinf_dry_clip0"]  # ordered by SNR, no crowd last
    hall = len5["cells"]["snr0_hall_clip0"]
    assert (hall["n"], hall["hits"], hall["segment_hits"]) == (4, 3, 2)
    assert hall["hit_ci"] == pytest.approx(wilson_interval(3, 4, 0.95))
    assert hall["rt60_s_mean"] == 1.5 and hall["clipping"] is False
    dry = len5["cells"]["snrinf_dry_clip0"]
    assert (dry["n"], dry["hits"], dry["segment_hits"]) == (2, 1, 0)
    assert (len5["all"]["n"], len5["all"]["hits"], len5["all"]["segment_hits"]) == (6, 4, 2)
    assert len5["n_queries"] == 7 and len5["by_snr"]["snr0"]["hit_rate"] == 0.75
    assert m["by_length"]["len10"]["cells"]["snr0_hall_clip1"]["hit_rate"] == 1.0
    assert (m["all"]["n"], m["all"]["hits"], m["all"]["segment_hits"]) == (7, 5, 3)
    assert m["n_out_of_catalog"] == 1
    assert m["latency_ms"]["n"] == 8 and m["by_length"]["len10"]["latency_ms"]["p50"] == 8.0
    assert m["index"]["bytes_per_hour"] == 1800.0
    flat = flatten_metrics(m)
    assert flat["hit_rate/len5/snr0_hall_clip0"] == 0.75 and flat["segment_hit_rate/len5/all"] == 2 / 6
    assert flat["n/len10/snr0_hall_clip1"] == 1 and flat["hit_rate_by_snr/len5/snrinf"] == 0.5
    assert cell_key(-5.0, "arena", True) == "snr-5_arena_clip1" and cell_key(2.5, "dry", False) == "snr2.5_dry_clip0"


def test_threshold_at_one_percent_false_accepts() -> None:
    scores = np.arange(1.0, 201.0)  # 200 out-of-catalog scores: 2 false accepts allowed
    t = threshold_at_far(scores, 0.01)
    assert 198.0 < t < 198.0 + 1e-9 and accept_rate(scores, t) == 0.01
    tied = np.r_[5.0, 5.0, np.zeros(98)]  # 1 allowed, but the top two tie: accepting either accepts both
    assert accept_rate(tied, threshold_at_far(tied, 0.01)) == 0.0
    assert threshold_at_far(np.full(50, -np.inf), 0.01) == -np.inf  # nothing was ever matched
    assert threshold_at_far(np.array([3.0, 7.0]), 0.0) > 7.0
    with pytest.raises(ValueError):
        threshold_at_far(np.array([]), 0.01)


def test_open_set_hit_rate_counts_only_scores_at_or_above_the_threshold() -> None:
    out = [result(query_id=f"o{i}", track_id=None, offset_s=None, in_catalog=False, score=float(i),
                  predicted_track_id=None if i == 10 else "x") for i in range(100)]
    inside = [result(score=99.5), result(score=98.5, length_s=10.0), result(score=50.0),
              result(score=120.0, predicted_track_id="wrong")]
    m = open_set_metrics(out + inside, target_far=0.01, score_threshold=60.0, segment_tolerance_s=0.5,
                         confidence=0.95)
    at = m["at_target_far"]
    assert 98.0 < at["threshold"] < 98.5 and at["far"] == 0.01 and at["n_out"] == 100
    assert (at["all"]["hits"], at["all"]["n"]) == (2, 4)
    assert at["by_length"]["len5"]["hits"] == 1 and at["by_length"]["len10"]["hits"] == 1
    fixed = m["at_score_threshold"]
    assert fixed["far"] == 0.4 and fixed["all"]["hits"] == 2  # 60..99 accepted; the no-match at 10 never is
    assert m["scores_out"]["n"] == 99 and m["n_in"] == 4


# --- the query-set contract ----------------------------------------------------------------------------------------

def test_load_queries_reads_the_contract(query_dir: Path) -> None:
    queries = load_queries(query_dir)
    assert len(queries) == len(LENGTHS_S) * (4 * len(CONDITIONS) + 4)
    q = next(q for q in queries if q.query_id == "song-1-hall-8")
    assert (q.track_id, q.length_s, q.snr_db, q.reverb, q.rt60_s, q.in_catalog) == ("song-1", 8.0, 0.0, "hall",
                                                                                 1.2, True)
    assert q.condition == {"name": "hall", "seed": 0}
    stranger = next(q for q in queries if not q.in_catalog)
    assert stranger.track_id is None and stranger.offset_s is None


def test_write_query_table_round_trips(tmp_path: Path, query_dir: Path) -> None:
    shutil.copytree(query_dir, tmp_path / "q")
    queries = load_queries(tmp_path / "q")
    assert write_query_table(tmp_path / "q", queries, {"sr": SR}) == len(queries)
    assert load_queries(tmp_path / "q") == queries
    assert json.loads((tmp_path / "q" / "queries.json").read_text())["format"] == 2


@pytest.mark.parametrize("edit, message", [
    (lambda h, rows: h.update(format=1), "format 1"),
    (lambda h, rows: rows[2].update(excerpt=""), "'excerpt'"),
    (lambda h, rows: h.pop("format"), "format None"),
    (lambda h, rows: rows[3].update(reverb="cave"), r"row 4.*'reverb'"),
    (lambda h, rows: rows[0].pop("snr_db"), r"row 1.*missing field.*snr_db"),
    (lambda h, rows: rows[1].update(track_id=None), "in_catalog"),
    (lambda h, rows: rows[2].update(clipping="no"), "'clipping'"),
    (lambda h, rows: rows[2].update(audio_path="../x.flac"), "'audio_path'"),
    (lambda h, rows: rows[5].update(audio_path="audio/nope.flac"), "missing"),
    (lambda h, rows: rows.append(dict(rows[0])), "duplicate query_id"),
])
def test_a_broken_query_set_is_refused_clearly(tmp_path: Path, query_dir: Path, edit, message: str) -> None:
    folder = tmp_path / "q"
    shutil.copytree(query_dir, folder)
    header = json.loads((folder / "queries.json").read_text())
    rows = [json.loads(line) for line in (folder / "queries.jsonl").read_text().splitlines()]
    edit(header, rows)
    (folder / "queries.json").write_text(json.dumps(header))
    (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(QuerySetError, match=message):
        load_queries(folder)


def test_a_folder_without_header_is_not_a_query_set(tmp_path: Path) -> None:
    with pytest.raises(QuerySetError, match="not a query set"):
        load_queries(tmp_path)


# --- both baselines end to end -------------------------------------------------------------------------------------

def test_landmark_end_to_end_on_the_tiny_query_set(landmark_metrics: dict[str, Any]) -> None:
    m = landmark_metrics
    assert m["method"] == "landmark" and m["n_in_catalog"] == 32 and m["n_out_of_catalog"] == 8
    for lk in ("len4", "len8"):
        clean = m["by_length"][lk]["cells"]["snrinf_dry_clip0"]
        assert clean["n"] == 4 and clean["hit_rate"] == 1.0 and clean["segment_hit_rate"] == 1.0
        assert m["by_length"][lk]["all"]["hit_rate"] >= 0.75
        assert m["by_length"][lk]["latency_ms"]["n"] == 20
    at = m["open_set"]["at_target_far"]
    assert at["far"] == 0.0  # 8 strangers: 1% allows none, so every one is rejected
    strangers = [r for r in m["results"] if not r["in_catalog"]]
    assert all(r["predicted_track_id"] is None or r["score"] < at["threshold"] for r in strangers)
    clean_rows = [r for r in m["results"] if r["snr_db"] is None and not r["clipping"] and r["in_catalog"]]
    assert all(r["score"] >= at["threshold"] for r in clean_rows)  # clean excerpts outscore every stranger
    assert m["open_set"]["at_score_threshold"]["far"] == 0.0
    assert m["index"]["bytes"] > 0 and m["index"]["reference_s"] == 4 * TRACK_S


@pytest.mark.skipif(shutil.which("fpcalc") is None, reason="fpcalc not installed (apt-get install "
                                                           "libchromaprint-tools)")
def test_chromaprint_end_to_end_through_the_same_interface(catalog: dict, query_dir: Path) -> None:
    method = ChromaprintMethod(ChromaprintConfig(timeout_s=60.0, max_overhang_items=2))
    assert isinstance(method, Method) and isinstance(LandmarkMethod(LANDMARK), Method)
    reference_s = build_reference(method, catalog.items(), SR)
    m = evaluate(method, load_queries(query_dir), flac_loader(query_dir, SR), sr=SR, reference_s=reference_s,
                 score_threshold=None, **SETTINGS)
    clean = m["by_length"]["len8"]["cells"]["snrinf_dry_clip0"]
    assert clean["hit_rate"] == 1.0 and clean["segment_hit_rate"] == 1.0
    assert m["index"]["bytes"] == 4 * method.index.items.size
    assert m["open_set"]["at_score_threshold"] is None


def test_a_method_must_be_built_and_fed_its_own_sample_rate() -> None:
    with pytest.raises(RuntimeError, match="build"):
        LandmarkMethod(LANDMARK).identify(np.zeros(SR, np.float32), SR)
    with pytest.raises(ValueError, match="44100 Hz"):
        LandmarkMethod(LANDMARK).build([("a", np.zeros(SR, np.float32))], 44100)


# --- reports and MLflow --------------------------------------------------------------------------------------------

def test_write_report_files_exist_and_parse(tmp_path: Path, landmark_metrics: dict[str, Any]) -> None:
    import matplotlib.image

    paths = write_report(landmark_metrics, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths.values())
    loaded = json.loads(paths["metrics.json"].read_text())
    assert loaded["by_length"]["len4"]["cells"]["snrinf_dry_clip0"]["hit_rate"] == 1.0
    assert len(loaded["results"]) == 40
    report = paths["report.md"].read_text()
    assert "| 4 s | none | dry | 0.00 | no | 1.000 [" in report and "| 8 s | 0 dB | hall | 1.20 | no |" in report
    assert "false-accept rate" in report and "MB per hour" in report
    for name in ("hit_rate_vs_snr.png", "snr_rt60_heatmap.png"):
        image = matplotlib.image.imread(paths[name])
        assert image.ndim == 3 and image.shape[0] > 100
    other = {**landmark_metrics, "method": "other"}
    both = compare_plot({"landmark": landmark_metrics, "other": other}, tmp_path / "compare.png")
    assert matplotlib.image.imread(both).shape[0] > 100


def test_log_to_mlflow_logs_metrics_and_artifacts_only_in_an_active_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, landmark_metrics: dict[str, Any]) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    previous = os.environ.get("MLFLOW_TRACKING_URI")  # set_tracking_uri also sets this variable
    write_report(landmark_metrics, tmp_path / "out")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        assert log_to_mlflow(landmark_metrics, tmp_path / "out") is False  # no active run: nothing logged
        # Artifacts in tmp_path too (a sqlite store's default artifact root is ./mlruns, the project's own folder).
        experiment = mlflow.create_experiment("evaluate-test", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment) as run:
            assert log_to_mlflow(landmark_metrics, tmp_path / "out") is True
        client = MlflowClient()
        logged = client.get_run(run.info.run_id).data.metrics
        want = landmark_metrics["by_length"]["len8"]["cells"]["snr0_hall_clip0"]["hit_rate"]
        assert logged["hit_rate/len8/snr0_hall_clip0"] == pytest.approx(want)
        assert logged["hit_rate/len4/snrinf_dry_clip0"] == 1.0 and logged["index/bytes_per_hour"] > 0
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluate/landmark")}
        assert {"evaluate/landmark/report.md", "evaluate/landmark/hit_rate_vs_snr.png"} <= artifacts
    finally:
        mlflow.set_tracking_uri(previous)  # None restores "unset"


def test_the_hybrid_rule_takes_the_landmark_only_at_enough_votes() -> None:
    from resonance.evaluate.hybrid import fuse
    from resonance.evaluate.methods import Identification

    emb = Identification("b", 3.0, 0.7, accepted=False)
    few, many, sure = (Identification("a", 1.0, v) for v in (10.0, 50.0, 200.0))
    assert fuse(few, emb, 49, 173) == Identification("b", 3.0, 0.7, accepted=False)
    assert fuse(many, emb, 49, 173) == Identification("a", 1.0, 0.7, accepted=False)
    assert fuse(sure, emb, 49, 173) == Identification("a", 1.0, 0.7, accepted=True)
    none = Identification(None, None, 0.0)
    assert fuse(none, Identification("b", 3.0, 0.9, accepted=True), 49, 173).accepted is True
    assert fuse(none, Identification(None, None, -np.inf, accepted=False), 49, 173).track_id is None


def test_hybrid_end_to_end_through_the_harness(catalog: dict, query_dir: Path, tmp_path: Path) -> None:
    from resonance.evaluate.hybrid import HybridMethod
    from resonance.index.stage import load_recognizer
    from serve_helpers import build_setup, embedding_params

    setup = build_setup(tmp_path, 5, catalog)  # an untrained tiny model: the embedding side is weak here
    embedding = load_recognizer(setup["model"], setup["index"], setup["calibration"], embedding_params())
    hybrid = HybridMethod(LandmarkMethod(LANDMARK), embedding, MIN_VOTES, 2 * MIN_VOTES)
    assert isinstance(hybrid, Method)
    reference_s = build_reference(hybrid, catalog.items(), SR)
    queries = load_queries(query_dir)
    m = evaluate(hybrid, queries, flac_loader(query_dir, SR), sr=SR, reference_s=reference_s, score_threshold=None,
                 **SETTINGS)
    lm = LandmarkMethod.with_index(LANDMARK, hybrid.landmark._built())
    load = flac_loader(query_dir, SR)
    hy_right = em_right = lm_right = 0
    for q, row in zip(queries, m["results"]):
        audio = load(q)
        a, e = lm.identify(audio, SR), embedding.identify(audio, SR)
        want = a if a.track_id is not None and a.score >= MIN_VOTES else e
        assert row["predicted_track_id"] == want.track_id  # the rule, query by query
        if q.in_catalog:
            hy_right += row["predicted_track_id"] == q.track_id
            em_right += e.track_id == q.track_id
            lm_right += a.track_id == q.track_id
    assert m["method"] == "hybrid" and em_right < hy_right <= lm_right  # here the landmark rescues the weak model
    assert m["index"]["bytes"] == hybrid.landmark.index_bytes() + embedding.index_bytes()
    clip = load(queries[0])
    assert hybrid.identify_prefixes(clip, SR, [4.0]) == [hybrid.identify(clip[:4 * SR], SR)]
