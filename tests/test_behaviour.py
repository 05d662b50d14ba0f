"""What a TRAINED model does: one fast-profile model trained once per session on a catalog of generated songs,
then checked the way a user would (invariance through concert conditions, rejection of an unknown song, window
ranking among thousands of distractors), each against an untrained model of the same shape.

Real parts: the real training code (Lightning, the concert simulator with real pyroomacoustics rooms and crowd
beds from the fixture banks), the real index, sequence search and calibration fit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import music_clip

SR = 16000
N_TRAIN, N_VAL, N_UNSEEN, N_OUTSIDE, N_DISTRACTORS = 24, 6, 8, 4, 72
SONG_S = 20.0


def _write_catalog(folder: Path, songs: dict[str, tuple[np.ndarray, str]]) -> Path:
    from resonance.audio import pcm_sha256, to_pcm16, write_flac
    from resonance.catalog.manifest import CATALOG_FORMAT, Track
    from resonance.io import write_json, write_jsonl

    rows = []
    for name, (audio, split) in songs.items():
        pcm = to_pcm16(audio)
        write_flac(folder / "audio" / f"{name}.flac", pcm, SR)
        rows.append(Track(name, name, "generated", "fixture", "1.0", f"{name}.ogg", "CC0", audio.size / SR, SR,
                          pcm_sha256(pcm), 0.0, 0.0, split, f"audio/{name}.flac").to_dict())
    write_jsonl(folder / "manifest.jsonl", rows)
    write_json(folder / "catalog.json", {"format": CATALOG_FORMAT})
    return folder


def _song(seed: int) -> np.ndarray:
    return np.round(music_clip(SONG_S, seed=seed, sr=SR) * 32767) / 32767


@pytest.fixture(scope="module")
def behaviour(built: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A catalog of generated songs (train / val / unseen), songs never indexed, and a fast model trained on it."""
    from resonance.cli import main

    root = tmp_path_factory.mktemp("behaviour")
    splits = ["train"] * N_TRAIN + ["val"] * N_VAL + ["unseen"] * N_UNSEEN
    songs = {f"song{i:02d}": (_song(3000 + i), split) for i, split in enumerate(splits)}
    catalog = _write_catalog(root / "catalog", songs)
    outside = {f"stranger{i}": _song(5000 + i) for i in range(N_OUTSIDE)}
    params = yaml.safe_load(built["params"].read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root}/mlflow.db"
    try:
        code = main(["-q", "--params", str(root / "params.yaml"), "train", "--profile", "fast", "--catalog",
                     str(catalog), "--banks", str(built["root"] / "banks"), "--out", str(root / "model")])
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old
    assert code == 0
    return {"root": root, "catalog": catalog, "songs": songs, "outside": outside, "params": root / "params.yaml",
            "banks": built["root"] / "banks", "model": root / "model"}


def _models(b: dict) -> dict:
    """The trained model and an untrained one of the same shape and seed."""
    from resonance.config import load_train
    from resonance.model.embedder import load_model
    from resonance.train.module import build_model

    params = load_train(b["params"], "fast")
    torch.manual_seed(params.seed)
    return {"trained": load_model(b["model"]), "untrained": build_model(params).eval()}


def _concert(audio: np.ndarray, b: dict, seed: int, snr_db: float = 0.0, reverb: str = "hall",
             clipping: str = "True") -> np.ndarray:
    """`audio` through a grid cell of the real chain (0 dB crowd, a hall, phone clipping by default; the grid's
    clipping keys are the strings "True" and "False", as YAML reads on and off)."""
    from resonance.banks.stage import load_banks
    from resonance.config import SimulateParams, load_section
    from resonance.simulate.chain import apply_condition, sample_grid_cell

    sim = load_section(b["params"], "simulate", SimulateParams)
    banks = load_banks(b["banks"])
    cond = sample_grid_cell(np.random.default_rng(seed), snr_db, reverb, clipping, sim, banks)
    pre = int(sim.preroll_s * SR)
    return apply_condition(audio, cond, banks)[pre:]


def _excerpt(audio: np.ndarray, start_s: float, length_s: float, preroll_s: float = 2.0) -> np.ndarray:
    """The excerpt with its preroll in front (what the chain needs for the room's tail)."""
    a = int((start_s - preroll_s) * SR)
    return audio[a: int((start_s + length_s) * SR)]


def _recognizer(model, b: dict):
    from resonance.config import EmbeddingParams, load_section
    from resonance.index.method import EmbeddingMethod
    from resonance.model.embedder import Embedder

    params = load_section(b["params"], "embedding", EmbeddingParams)
    method = EmbeddingMethod(Embedder(model), params)
    method.build([(k, a) for k, (a, _) in b["songs"].items()], SR)
    return method


def test_a_trained_model_names_songs_through_reverb_crowd_and_clipping(behaviour: dict) -> None:
    b, hits = behaviour, {}
    unseen = [k for k, (_, split) in b["songs"].items() if split == "unseen"]
    for name, model in _models(b).items():
        method = _recognizer(model, b)
        found = []
        for i, song in enumerate(unseen):
            clip = _concert(_excerpt(b["songs"][song][0], 6.0 + i, 5.0), b, seed=i)
            found.append(method.recognize(clip, SR).guess.track_id == song)
        hits[name] = sum(found)
    assert hits["trained"] >= 6 and hits["trained"] >= hits["untrained"] + 3, hits  # of 8 songs never trained on


def test_a_trained_model_rejects_a_song_it_has_never_indexed(behaviour: dict) -> None:
    from resonance.calibrate.fit import fit_lengths
    from resonance.index.calibration import Calibration
    from resonance.index.method import decision_score

    b = behaviour
    method = _recognizer(_models(b)["trained"], b)
    rng = np.random.default_rng(0)
    train = [k for k, (_, s) in b["songs"].items() if s == "train"]
    cohort = np.concatenate([method.embedder.embed(b["songs"][k][0][: 6 * SR]) for k in train])
    method.calibration = Calibration(method.model_sha256, "sequence", method.config.score, 16, 0.01, (), cohort,
                                     method.config.background)
    # fit the threshold on val-like clips: val songs (in the index) and two strangers, clean to +10 dB
    rows = []
    val = [k for k, (_, s) in b["songs"].items() if s == "val"]
    for j in range(24):
        inside = j % 3 != 0
        name = val[j % len(val)] if inside else f"stranger{j % 2}"
        audio = b["songs"][name][0] if inside else b["outside"][name]
        clip = _concert(_excerpt(audio, float(rng.uniform(3, 14)), 5.0), b, seed=100 + j, snr_db=10.0,
                        reverb="dry", clipping="False")
        found = method.recognize(clip, SR)
        rows.append((5.0, inside, found.guess is not None and found.guess.track_id == name,
                     decision_score(found.result, method.config.score)))
    length, inside, correct, score = (np.array(v) for v in zip(*rows))
    lengths = fit_lengths(length.astype(float), inside.astype(bool), correct.astype(bool), score.astype(float), 0.01)
    method.calibration = Calibration(method.model_sha256, "sequence", method.config.score, 16, 0.01, lengths,
                                     cohort, method.config.background)
    unseen = [k for k, (_, s) in b["songs"].items() if s == "unseen"]
    known = [method.recognize(_concert(_excerpt(b["songs"][k][0], 9.0, 5.0), b, 300 + i, 10.0, "dry", "False"), SR)
             for i, k in enumerate(unseen[:4])]
    strangers = [method.recognize(_concert(_excerpt(b["outside"][k], 9.0, 5.0), b, 400 + i, 10.0, "dry", "False"), SR)
                 for i, k in enumerate(["stranger2", "stranger3"])]  # never seen by the calibration either
    assert all(not m.accepted and m.track is None for m in strangers), [m.score for m in strangers]
    assert sum(m.accepted and m.track.track_id == k for m, k in zip(known, unseen)) >= 3, [m.score for m in known]


def test_a_degraded_window_ranks_its_reference_in_the_top_10_of_thousands(behaviour: dict) -> None:
    from resonance.model.embedder import Embedder

    b = behaviour
    distractors = [_song(7000 + i) for i in range(N_DISTRACTORS)]
    unseen = [k for k, (_, s) in b["songs"].items() if s == "unseen"]
    rates = {}
    for name, model in _models(b).items():
        embedder = Embedder(model)
        refs = [embedder.embed(b["songs"][k][0]) for k in unseen] + [embedder.embed(d) for d in distractors]
        bank = np.concatenate(refs)
        assert bank.shape[0] >= 3000  # the aligned window competes with thousands
        hits = []
        for i, song in enumerate(unseen):
            start = 4.0 + 0.5 * i  # on the reference grid: window j = start / 0.5
            clip = _concert(_excerpt(b["songs"][song][0], start, 4.0), b, seed=500 + i, snr_db=10.0,
                            reverb="dry")  # crowd at +10 dB, a dry room, phone clipping
            q = embedder.embed(clip)  # windows at the reference hop, aligned with slots start/0.5 + n
            first = sum(r.shape[0] for r in refs[:i]) + int(start / 0.5)
            for n in range(q.shape[0]):
                top = np.argsort(-(bank @ q[n]))[:10]
                hits.append(first + n in top)
        rates[name] = float(np.mean(hits))
    # measured, 56 windows against 3120: trained 0.54 under bf16-mixed, 0.34 under 32-true (the default since
    # bf16 went NaN; 160 steps land where they land), untrained 0.02 (a single window; whole clips and halls are
    # the sequence search's job, tested above)
    assert rates["trained"] >= 0.25 and rates["trained"] >= rates["untrained"] + 0.2, rates


def test_the_fast_profile_validation_moves_with_training(behaviour: dict) -> None:
    summary = json.loads((behaviour["model"] / "train.json").read_text())
    assert summary["val_window_recall_untrained"] <= 0.3  # the check is not passed by an untrained model
    assert summary["best_val_window_recall"] >= summary["val_window_recall_untrained"] + 0.2, summary
