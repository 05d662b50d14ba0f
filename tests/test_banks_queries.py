"""The banks and queries stages end to end on fixture packages (real .debs, real pyroomacoustics rooms,
espeak-ng speech), then every preset through the chain, the query sets and the preview."""

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from resonance.banks.stage import BanksError, load_banks
from resonance.catalog.manifest import load_manifest
from resonance.config import QueriesParams, SimulateParams, load_section
from resonance.evaluate.queries import flac_loader, load_queries
from resonance.queries.stage import run as build_queries
from resonance.simulate.chain import apply_condition, grid_cells, sample_preset

from conftest import ROOT, scramble_global_rngs


def test_banks_hold_rooms_with_target_rt60_and_crowd_beds(built: dict) -> None:
    header = built["banks_header"]
    assert header["rooms"] == {"club": 2, "theatre": 2, "arena": 2, "festival": 2}
    assert header["clips"]["speech"] == 3 + 1 and header["clips"]["cheer"] == 1 and header["clips"]["applause"] == 1
    banks = load_banks(built["root"] / "banks")
    rows = [json.loads(line) for line in (built["root"] / "banks" / "rooms.jsonl").read_text().splitlines()]
    for row in rows:
        if row["class"] != "festival":
            assert abs(row["rt60_measured_s"] - row["rt60_target_s"]) <= 0.25 * row["rt60_target_s"], row
    assert all(r["rt60_measured_s"] < 0.7 for r in rows if r["class"] == "festival")
    assert len(banks.beds) == 2 and all(b.size == 6 * banks.sr and np.isfinite(b).all() for b in banks.beds)
    assert all(pair.shape[0] == 2 for pairs in banks.rirs.values() for pair in pairs)


def test_every_preset_runs_finite_and_same_length(built: dict) -> None:
    sim = load_section(built["params"], "simulate", SimulateParams)
    banks = load_banks(built["root"] / "banks")
    track = load_manifest(built["root"] / "catalog")[0]
    import soundfile as sf

    music, _ = sf.read(built["root"] / "catalog" / track.audio_path, dtype="float32")
    for name, preset in sim.presets.items():
        cond = sample_preset(np.random.default_rng(1), name, preset, sim, banks)
        out = apply_condition(music, cond, banks)
        assert out.shape == music.shape and out.dtype == np.float32 and np.isfinite(out).all(), name
        assert np.max(np.abs(out)) <= 1.0 and np.std(out) > 1e-3, name
        scramble_global_rngs(len(name))  # the draws come from the generator passed in, never global state
        again = apply_condition(music, sample_preset(np.random.default_rng(1), name, preset, sim, banks), banks)
        assert np.array_equal(out, again), f"{name}: same seed, different output"


def _digest(folder: Path) -> str:
    h = hashlib.sha256((folder / "queries.jsonl").read_bytes())
    for f in sorted((folder / "audio").iterdir()):
        h.update(f.read_bytes())
    return h.hexdigest()


def test_query_sets_have_ground_truth_and_are_reproducible(built: dict, tmp_path: Path) -> None:
    root = built["root"]
    params = load_section(built["params"], "queries", QueriesParams)
    sim = load_section(built["params"], "simulate", SimulateParams)
    banks = load_banks(root / "banks")
    headers = build_queries(params, sim, banks, root / "catalog", root / "outside", tmp_path / "q1", progress=False)
    n_cells = len(grid_cells(sim.grid))
    assert n_cells == 2 * 3 * 2
    assert headers[0]["queries"] == 2 * (4 + 2) * n_cells and headers[0]["out_of_catalog"] == 2 * 2 * n_cells
    assert headers[0]["clips"] == (4 + 2) * n_cells  # one rendered clip per excerpt and cell
    queries = load_queries(tmp_path / "q1" / "val")
    tracks = {t.track_id: t for t in load_manifest(root / "catalog")}
    outside = {t.track_id for t in load_manifest(root / "outside")}
    for q in queries:
        if q.in_catalog:
            assert tracks[q.track_id].split == "val" and 0 <= q.offset_s <= tracks[q.track_id].duration_s - q.length_s
        else:
            assert q.track_id is None and q.condition["source_track"] in outside
        assert q.condition["snr_db"] == q.snr_db and (q.reverb == "dry") == (q.condition["room_class"] is None)
    load = flac_loader(tmp_path / "q1" / "val", 16000)
    by_clip: dict[str, list] = {}
    for q in queries:
        by_clip.setdefault(q.audio_path, []).append(q)
    for clip in list(by_clip.values())[:6]:  # the lengths of one excerpt and cell: prefixes of one recording
        short, long = sorted(clip, key=lambda q: q.length_s)
        assert short.excerpt == long.excerpt and short.offset_s == long.offset_s and short.condition == long.condition
        a, b = load(short), load(long)
        assert a.size == 16000 * short.length_s and b.size == 16000 * long.length_s and np.isfinite(b).all()
        assert np.array_equal(a, b[:a.size])
    assert len({q.excerpt for q in queries}) == 4 + 2
    one_worker = dataclasses.replace(params, workers=1)  # thread count must not change a single bit
    build_queries(one_worker, sim, banks, root / "catalog", root / "outside", tmp_path / "q2", progress=False)
    assert _digest(tmp_path / "q1" / "val") == _digest(tmp_path / "q2" / "val"), "same params, other queries"


def test_preview_writes_wavs_png_and_condition(built: dict, tmp_path: Path) -> None:
    root = built["root"]
    track = load_manifest(root / "catalog")[0]
    proc = subprocess.run([sys.executable, "-m", "resonance", "--params", str(built["params"]), "simulate",
                           "preview", track.track_id, "--preset", "arena", "--offset", "0", "--seconds", "4",
                           "--catalog", str(root / "catalog"), "--banks", str(root / "banks"),
                           "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(f"{track.track_id}_{s}" for s in ("clean.wav", "arena.wav", "arena.png", "arena.json"))
    assert (tmp_path / f"{track.track_id}_arena.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_banks_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BanksError, match="run `resonance banks`"):
        load_banks(tmp_path)


def test_evaluate_cli_writes_report_and_headline_metrics(built: dict, tmp_path: Path) -> None:
    root = built["root"]
    params = load_section(built["params"], "queries", QueriesParams)
    sim = load_section(built["params"], "simulate", SimulateParams)
    build_queries(params, sim, load_banks(root / "banks"), root / "catalog", root / "outside", tmp_path / "q",
                  progress=False)
    env = {k: v for k, v in __import__("os").environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run([sys.executable, "-m", "resonance", "--params", str(built["params"]), "-q", "evaluate",
                           "--method", "landmark", "--catalog", str(root / "catalog"), "--queries",
                           str(tmp_path / "q" / "val"), "--out", str(tmp_path / "eval"),
                           "--metrics", str(tmp_path / "headline.json")], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "evaluate: landmark: top-1 by query length: 1 s" in proc.stdout
    for name in ("metrics.json", "report.md", "hit_rate_vs_snr.png", "snr_rt60_heatmap.png"):
        assert (tmp_path / "eval" / name).is_file(), name
    headline = json.loads((tmp_path / "headline.json").read_text())
    assert set(headline) >= {"hit_rate_len1", "hit_rate_len3", "segment_hit_rate_len3", "latency_p50_ms",
                             "index_bytes_per_hour", "hit_rate_at_far1", "far_at_threshold"}
    assert headline["hit_rate_len3"] >= 0.3  # generated music, +10/-10 dB crowds: easy, not trivial
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n_out_of_catalog"] == 2 * 2 * len(grid_cells(sim.grid))
    (tmp_path / "all").mkdir()
    (tmp_path / "eval").rename(tmp_path / "all" / "landmark")
    report = tmp_path / "RESULTS.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "results_report.py"), "--params",
                           str(built["params"]), "--evaluate", str(tmp_path / "all"), "--out", str(report),
                           "--model", str(tmp_path / "no-model")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = report.read_text()
    assert "| landmark | " in text and "the `val` split" in text and "every one of the 12 grid cells" in text
    assert "(the embedding is not evaluated yet)" in text and "bootstrap over excerpts" in text
    assert (tmp_path / "hit_rate_vs_snr.png").is_file()


def test_evaluate_unknown_method_is_rejected(built: dict) -> None:
    proc = subprocess.run([sys.executable, "-m", "resonance", "--params", str(built["params"]), "evaluate",
                           "--method", "shazam"], capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice: 'shazam'" in proc.stderr
