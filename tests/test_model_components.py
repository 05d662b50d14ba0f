"""Model components (resonance.model): log-mel frontend, encoders, contrastive losses, builders. Fast, CPU only.

DEBUG_* are the tiny sizes of params.yaml's `train.profiles.fast` (training-behaviour tests); DEFAULT_* the default
CPU sizes of `train` (checked for parameter count only).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resonance.config import ParamsError, load_train
from resonance.model.builders import build_encoder, build_frontend, build_loss, count_parameters
from resonance.model.encoders import standardize
from resonance.model.frontend import FrontendConfig, mel_filterbank, windows
from resonance.model.losses import MemoryQueue, nt_xent, nt_xent_with_queue, supcon, triplet_hard

from conftest import ROOT, music_clip

torch.set_num_threads(1)
SR = 16000
_DEFAULT, _FAST = load_train(ROOT / "params.yaml"), load_train(ROOT / "params.yaml", "fast")
DEFAULT_FRONTEND, DEBUG_FRONTEND = _DEFAULT.frontend, _FAST.frontend
DEFAULT_NAFP, DEBUG_NAFP = _DEFAULT.encoders["nafp"], _FAST.encoders["nafp"]
DEFAULT_TRANSFORMER, DEBUG_TRANSFORMER = _DEFAULT.encoders["transformer"], _FAST.encoders["transformer"]


def unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=1)


# ---------------------------------------------------------------- frontend


def test_mel_filterbank_shape_peaks_and_coverage() -> None:
    cfg = DEFAULT_FRONTEND
    fb = mel_filterbank(cfg["sr"], cfg["n_fft"], cfg["n_mels"], cfg["fmin_hz"], cfg["fmax_hz"])
    n_bins = cfg["n_fft"] // 2 + 1
    assert fb.shape == (cfg["n_mels"], n_bins) == (256, 1025) and fb.dtype == np.float32
    assert (fb >= 0).all() and fb.max() <= 1.0
    peaks = fb.argmax(axis=1)
    bins_hz = np.arange(n_bins) * SR / cfg["n_fft"]
    assert (np.diff(peaks) >= 0).all()  # each filter peaks at or above the previous one ...
    assert (np.diff(peaks)[bins_hz[peaks[1:]] > 300] > 0).all()  # ... strictly once bands are wider than a bin
    inside = (bins_hz > cfg["fmin_hz"]) & (bins_hz < cfg["fmax_hz"])
    assert (fb.sum(axis=0)[inside] > 0).all()  # every bin strictly inside fmin..fmax is caught by a filter
    assert (fb[:, ~inside] == 0).all()  # and nothing outside
    assert bins_hz[peaks[0]] < cfg["fmin_hz"] + 20 and bins_hz[peaks[-1]] > cfg["fmax_hz"] - 100


def test_mel_filterbank_rejects_empty_filters_and_bad_band() -> None:
    with pytest.raises(ValueError, match="catch no FFT bin"):
        mel_filterbank(SR, 256, 128, 0.0, 8000.0)
    with pytest.raises(ValueError, match="fmax_hz"):
        mel_filterbank(SR, 1024, 64, 60.0, 9000.0)


def numpy_logmel(audio: np.ndarray, cfg: dict) -> np.ndarray:
    """Reference: periodic-Hann frames (center=False) -> np.fft.rfft power -> filterbank -> log(. + eps)."""
    n_fft, hop = cfg["n_fft"], cfg["hop"]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    n_frames = 1 + (len(audio) - n_fft) // hop
    frames = np.stack([audio[t * hop:t * hop + n_fft] for t in range(n_frames)]).astype(np.float64) * window
    power = np.abs(np.fft.rfft(frames, axis=1) / (window.sum() / 2)) ** 2  # (n_frames, n_fft//2+1), re full scale
    fb = mel_filterbank(cfg["sr"], n_fft, cfg["n_mels"], cfg["fmin_hz"], cfg["fmax_hz"]).astype(np.float64)
    mel = fb @ power.T  # (n_mels, n_frames)
    floor = 0.0 if cfg["floor_db"] is None else mel.max() * 10 ** (-cfg["floor_db"] / 10)
    return np.log(mel + floor + cfg["log_eps"])


def test_logmel_shape_finite_and_matches_numpy_reference() -> None:
    torch.manual_seed(0)
    frontend = build_frontend(DEFAULT_FRONTEND)
    assert {"mel_fb", "window"} <= set(dict(frontend.named_buffers()))
    audio = np.stack([music_clip(1.0, seed=s, sr=SR) for s in range(3)])
    audio[2] = 0.1 * np.random.default_rng(0).standard_normal(SR)
    out = frontend(torch.from_numpy(audio))
    n_frames = FrontendConfig(**DEFAULT_FRONTEND).n_frames(SR)
    assert out.shape == (3, DEFAULT_FRONTEND["n_mels"], n_frames) == (3, 256, 14)
    assert torch.isfinite(out).all()
    for i in range(3):
        np.testing.assert_allclose(out[i].numpy(), numpy_logmel(audio[i], DEFAULT_FRONTEND), atol=1e-4, rtol=0)
    tone = np.sin(2 * np.pi * 1000.0 * np.arange(SR) / SR).astype(np.float32)
    loud, quiet = frontend(torch.from_numpy(np.stack([tone, 0.1 * tone]))).amax(dim=(1, 2))
    assert -1.0 < loud.item() < 1.0  # power re a full-scale sine: about 0 dB
    assert (loud - quiet).item() == pytest.approx(np.log(100.0), abs=1e-3)  # -20 dB
    silent = frontend(torch.zeros(1, SR))
    assert torch.allclose(silent, torch.full_like(silent, float(np.log(DEFAULT_FRONTEND["log_eps"]))))
    with pytest.raises(ValueError, match="batch, n_samples"):
        frontend(torch.zeros(SR))
    with pytest.raises(ValueError, match="shorter than one STFT frame"):
        frontend(torch.zeros(1, 100))


def test_logmel_floor_is_relative_to_the_window_peak() -> None:
    """Detail more than floor_db under a window's loudest bin weighs nothing, at any playback level; without the
    relative floor (older models) a quiet band keeps its own level."""
    t = np.arange(SR) / SR
    loud_tone = np.sin(2 * np.pi * 500.0 * t)
    faint = 10 ** (-100 / 20) * np.sin(2 * np.pi * 4000.0 * t)  # 100 dB under the tone
    audio = torch.from_numpy(np.stack([loud_tone + faint, 0.01 * (loud_tone + faint)]).astype(np.float32))
    cfg = {**DEFAULT_FRONTEND, "floor_db": 80.0}
    out = build_frontend(cfg)(audio)
    fb = mel_filterbank(SR, cfg["n_fft"], cfg["n_mels"], cfg["fmin_hz"], cfg["fmax_hz"])
    band = int(np.argmin(np.abs(fb.argmax(axis=1) * SR / cfg["n_fft"] - 4000.0)))
    peak = out.amax(dim=(1, 2), keepdim=True)
    assert float((peak - out)[:, band].mean()) == pytest.approx(80 * np.log(10) / 10, abs=0.05)  # at the floor
    np.testing.assert_allclose((out[0] - peak[0]).numpy(), (out[1] - peak[1]).numpy(), atol=1e-3)  # gain-free
    unfloored = build_frontend({**cfg, "floor_db": None})(audio[:1])
    assert float((unfloored.amax() - unfloored[0, band].mean())) > 90 * np.log(10) / 10  # the faint tone shows
    with pytest.raises(ParamsError, match="floor_db"):
        build_frontend({**cfg, "floor_db": -3.0})


def test_windows_count_overlap_and_short_audio_error() -> None:
    audio = np.arange(int(3.2 * SR), dtype=np.float32)
    win = windows(audio, SR, window_s=1.0, hop_s=0.5)
    assert win.shape == (1 + (len(audio) - SR) // 8000, SR) == (5, SR)
    assert win.dtype == np.float32 and not win.flags.writeable  # a read-only view, no copy
    np.testing.assert_array_equal(win[1, :8000], win[0, 8000:])  # 50% overlap
    assert win[-1, -1] == 4 * 8000 + SR - 1  # last full window; the partial tail is dropped
    assert windows(audio[:SR], SR, 1.0, 0.5).shape == (1, SR)
    with pytest.raises(ValueError, match="shorter than one 1.0 s window"):
        windows(audio[:SR - 1], SR, 1.0, 0.5)
    with pytest.raises(ValueError, match="1-D"):
        windows(audio.reshape(2, -1), SR, 1.0, 0.5)
    with pytest.raises(ValueError, match="whole number"):
        windows(audio, SR, 1.0, 0.00001)


# ---------------------------------------------------------------- encoders


@pytest.mark.parametrize("name,frontend_cfg,cfg", [("nafp", DEBUG_FRONTEND, DEBUG_NAFP),
                                                   ("transformer", DEBUG_FRONTEND, DEBUG_TRANSFORMER)])
def test_debug_encoders_give_unit_vectors(name: str, frontend_cfg: dict, cfg: dict) -> None:
    torch.manual_seed(0)
    frontend, encoder = build_frontend(frontend_cfg), build_encoder(name, cfg)
    z = encoder(frontend(0.1 * torch.randn(5, SR)))
    assert z.shape == (5, cfg["dim"])
    assert torch.allclose(z.norm(dim=1), torch.ones(5), atol=1e-5)
    z.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in encoder.parameters())
    n = count_parameters(encoder)
    default = count_parameters(build_encoder(name, {"nafp": DEFAULT_NAFP, "transformer": DEFAULT_TRANSFORMER}[name]))
    print(f"debug {name}: {n} parameters (default {default})")
    assert 1000 < n < default / 20  # the fast profile's model is a tiny one (read from params.yaml, not pinned)


def test_encoders_ignore_gain() -> None:
    torch.manual_seed(0)
    frontend, encoder = build_frontend(DEBUG_FRONTEND), build_encoder("nafp", DEBUG_NAFP)
    audio = torch.from_numpy(music_clip(1.0, seed=3, sr=SR))[None]
    z = encoder(frontend(torch.cat([audio, 0.25 * audio])))
    assert (z[0] @ z[1]).item() > 0.999
    assert torch.allclose(standardize(torch.ones(1, 4, 4) * 5 + torch.eye(4)), standardize(torch.eye(4)[None]))


README_PARAMETERS_M = {"nafp": 1.6, "transformer": 1.8}  # README "encoders": 1.6 M and 1.8 M parameters


@pytest.mark.parametrize("name,cfg", [("nafp", DEFAULT_NAFP), ("transformer", DEFAULT_TRANSFORMER)])
def test_default_encoders_are_small_enough_for_cpu(name: str, cfg: dict) -> None:
    torch.manual_seed(0)
    encoder = build_encoder(name, cfg)
    n = count_parameters(encoder)
    print(f"default {name}: {n} parameters")
    assert round(n / 1e6, 1) == README_PARAMETERS_M[name]  # what the README says about the default model
    logmel = build_frontend(DEFAULT_FRONTEND)(0.1 * torch.randn(2, SR))
    assert encoder.eval()(logmel).shape == (2, 128)


def test_transformer_checks_its_input_size() -> None:
    encoder = build_encoder("transformer", DEBUG_TRANSFORMER)
    n_mels, n_frames = DEBUG_TRANSFORMER["n_mels"], DEBUG_TRANSFORMER["n_frames"]
    with pytest.raises(ValueError, match=rf"expected \(batch, {n_mels}, {n_frames}\)"):
        encoder(torch.zeros(2, n_mels, n_frames + 39))
    with pytest.raises(ValueError, match=rf"expected \(batch, {n_mels}, {n_frames}\)"):
        encoder(torch.zeros(2, n_mels + 8, n_frames))
    assert encoder(torch.zeros(2, n_mels, n_frames)).shape == (2, DEBUG_TRANSFORMER["dim"])


# ---------------------------------------------------------------- losses


def clustered(n_items: int, views: int, dim: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_items * views, dim) unit vectors: `views` noisy copies of each of n_items random centres; labels."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_items, dim, generator=g)
    z = centres.repeat(views, 1) + noise * torch.randn(n_items * views, dim, generator=g)
    return unit(z), torch.arange(n_items).repeat(views)


LOSS_CALLS = {
    "nt_xent": lambda z, labels, n: nt_xent(z[:n], z[n:], 0.1),
    "supcon": lambda z, labels, n: supcon(z, labels, 0.1),
    "triplet": lambda z, labels, n: triplet_hard(z, labels, 0.5),
}


@pytest.mark.parametrize("name", sorted(LOSS_CALLS))
def test_loss_is_lower_for_aligned_than_random_pairs(name: str) -> None:
    torch.manual_seed(0)
    aligned, labels = clustered(8, 2, 16, noise=0.1, seed=1)
    random = unit(torch.randn(16, 16))
    low, high = LOSS_CALLS[name](aligned, labels, 8), LOSS_CALLS[name](random, labels, 8)
    assert torch.isfinite(low) and torch.isfinite(high) and low.ndim == 0
    assert low < high


@pytest.mark.parametrize("name", sorted(LOSS_CALLS))
def test_loss_decreases_when_fitting_a_tiny_encoder(name: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(8, 32)
    views = torch.cat([x + torch.randn(8, 32), x + torch.randn(8, 32)])  # noise as strong as the signal
    labels = torch.arange(8).repeat(2)
    encoder = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 16))
    opt = torch.optim.Adam(encoder.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = LOSS_CALLS[name](unit(encoder(views)), labels, 8)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.5 * losses[0]


def test_loss_shape_errors() -> None:
    z = unit(torch.randn(4, 8))
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(z, z[:3], 0.1)
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z, z, 0.0)
    with pytest.raises(ValueError, match="labels must be"):
        supcon(z, torch.arange(3), 0.1)
    with pytest.raises(ValueError, match="batch, dim"):
        triplet_hard(z[0], torch.arange(4), 0.2)
    with pytest.raises(ValueError, match="no anchor has a positive"):
        supcon(z, torch.arange(4), 0.1)
    with pytest.raises(ValueError, match="both a positive and a negative"):
        triplet_hard(z, torch.zeros(4, dtype=torch.long), 0.2)


def test_nt_xent_of_identical_embeddings_is_log_2n_minus_1() -> None:
    z = unit(torch.ones(4, 8))
    assert nt_xent(z, z, 0.5).item() == pytest.approx(np.log(7), abs=1e-5)


def test_supcon_with_two_views_per_label_is_nt_xent() -> None:
    z, labels = clustered(6, 2, 16, noise=0.5, seed=4)
    assert torch.allclose(supcon(z, labels, 0.2), nt_xent(z[:6], z[6:], 0.2), atol=1e-6)


def test_memory_queue_is_fifo() -> None:
    queue = MemoryQueue(dim=2, size=5)
    assert len(queue) == 0 and queue.items().shape == (0, 2)
    batch = lambda start, n: torch.arange(start, start + n, dtype=torch.float32)[:, None].repeat(1, 2)  # noqa: E731
    queue.enqueue(batch(0, 3))
    assert queue.items()[:, 0].tolist() == [0, 1, 2]
    queue.enqueue(batch(3, 4))  # wraps: 0 and 1 fall out
    assert queue.items()[:, 0].tolist() == [2, 3, 4, 5, 6]
    queue.enqueue(batch(10, 7))  # more than size at once: keeps the last 5
    assert queue.items()[:, 0].tolist() == [12, 13, 14, 15, 16] and len(queue) == 5
    grad = torch.ones(1, 2, requires_grad=True)
    queue.enqueue(grad * 2)
    assert not queue.items().requires_grad
    assert {"bank", "ids", "ptr", "count"} <= set(queue.state_dict())
    with pytest.raises(ValueError, match="dim 2"):
        queue.enqueue(torch.zeros(1, 3))


def test_queue_negatives_change_the_loss() -> None:
    torch.manual_seed(0)
    z, _ = clustered(8, 2, 16, noise=0.3, seed=2)
    z1, z2 = z[:8], z[8:]
    queue = MemoryQueue(dim=16, size=32)
    assert torch.allclose(nt_xent_with_queue(z1, z2, queue, 0.1), nt_xent(z1, z2, 0.1))
    queue.enqueue(unit(torch.randn(32, 16)))
    assert nt_xent_with_queue(z1, z2, queue, 0.1) > nt_xent(z1, z2, 0.1)  # more negatives, bigger denominator
    with pytest.raises(ValueError, match="queue holds dim 16"):
        nt_xent_with_queue(unit(torch.randn(4, 8)), unit(torch.randn(4, 8)), queue, 0.1)


def test_queue_entries_of_the_anchor_own_stretch_are_not_negatives() -> None:
    """A queued window of the same stretch of music (its neighbour, seen a step earlier) is masked out of that
    pair's negatives; other pairs still meet it."""
    torch.manual_seed(1)
    z, _ = clustered(4, 2, 16, noise=0.3, seed=3)
    z1, z2 = z[:4], z[4:]
    ids = torch.tensor([10, 11, 12, 13])
    queue = MemoryQueue(dim=16, size=8)
    queued = unit(z1 + 0.1 * torch.randn(4, 16))  # the same stretches' neighbouring windows: near-copies
    queue.enqueue(queued, ids)
    assert queue.item_ids().tolist() == [10, 11, 12, 13]
    masked = nt_xent_with_queue(z1, z2, queue, 0.1, ids)
    views = torch.cat([z1, z2])
    by_hand = []
    for r in range(8):  # each view's own cross-entropy: the batch, plus the queued entries of OTHER stretches
        others = queued[torch.arange(4) != r % 4]
        logits = torch.cat([views[r] @ views[torch.arange(8) != r].T, views[r] @ others.T]) / 0.1
        positive = (r + 4) % 8 - (1 if (r + 4) % 8 > r else 0)  # the other view's column once r is dropped
        by_hand.append(-torch.log_softmax(logits, 0)[positive])
    assert torch.allclose(masked, torch.stack(by_hand).mean(), atol=1e-5)
    assert nt_xent_with_queue(z1, z2, queue, 0.1) > masked + 0.5  # unmasked: each pair's own copy is a negative
    other = nt_xent_with_queue(z1, z2, queue, 0.1, torch.tensor([20, 21, 22, 23]))
    assert torch.allclose(other, nt_xent_with_queue(z1, z2, queue, 0.1))
    with pytest.raises(ValueError, match="ids must be"):
        queue.enqueue(z1, torch.tensor([1, 2]))


# ---------------------------------------------------------------- builders


def test_builders_raise_on_unknown_names_and_bad_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown encoder 'resnet'; known: \['nafp', 'transformer'\]"):
        build_encoder("resnet", DEBUG_NAFP)
    with pytest.raises(ValueError, match="unknown key"):
        build_encoder("nafp", {**DEBUG_NAFP, "dropout": 0.1})
    with pytest.raises(ValueError, match="missing key"):
        build_encoder("transformer", {k: v for k, v in DEBUG_TRANSFORMER.items() if k != "depth"})
    with pytest.raises(ValueError, match="expected an integer"):
        build_encoder("nafp", {**DEBUG_NAFP, "kernel": 3.5})
    with pytest.raises(ValueError, match="must divide"):
        build_encoder("nafp", {**DEBUG_NAFP, "dim": 5})
    with pytest.raises(ValueError, match="missing key"):
        build_frontend({k: v for k, v in DEBUG_FRONTEND.items() if k != "hop"})
    with pytest.raises(ParamsError, match=r"unknown loss 'infonce'; known: \['nt_xent', 'supcon', 'triplet'\]"):
        build_loss("infonce", temperature=0.1)
    with pytest.raises(ValueError, match="expected keyword"):
        build_loss("triplet", temperature=0.1)
    with pytest.raises(ValueError, match="out of range"):
        build_loss("nt_xent", temperature=-1.0)
    z, labels = clustered(4, 2, 8, noise=0.1, seed=3)
    assert build_loss("supcon", temperature=0.1)(z, labels) == supcon(z, labels, 0.1)
    assert build_loss("triplet", margin=0.2)(z, labels) == triplet_hard(z, labels, 0.2)
    assert build_loss("nt_xent", temperature=0.1)(z[:4], z[4:]) == nt_xent(z[:4], z[4:], 0.1)


# ---------------------------------------------------------------- behaviour


def noisy_view(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A gain change of -12..+6 dB and white noise at 5..15 dB SNR."""
    noise = rng.standard_normal(audio.shape) * np.std(audio) * 10 ** (-rng.uniform(5, 15) / 20)
    return ((audio + noise) * 10 ** (rng.uniform(-12, 6) / 20)).astype(np.float32)


def test_two_views_of_a_window_end_closer_than_different_windows() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    clips = [music_clip(1.0, seed=20 + i, sr=SR) for i in range(8)]
    frontend, encoder = build_frontend(DEBUG_FRONTEND), build_encoder("nafp", DEBUG_NAFP)
    loss_fn = build_loss("nt_xent", temperature=0.1)
    opt = torch.optim.Adam(encoder.parameters(), lr=1e-2)

    def embed_views() -> tuple[torch.Tensor, torch.Tensor]:
        v1, v2 = ([noisy_view(c, rng) for c in clips] for _ in range(2))
        return encoder(frontend(torch.from_numpy(np.stack(v1)))), encoder(frontend(torch.from_numpy(np.stack(v2))))

    for _ in range(40):
        loss = loss_fn(*embed_views())
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        z1, z2 = embed_views()  # fresh noise and gains
    sim = z1 @ z2.T
    positive = sim.diag().mean().item()
    negative = sim[~torch.eye(8, dtype=torch.bool)].mean().item()
    print(f"after 40 steps: positive cosine {positive:.3f}, negative cosine {negative:.3f}")
    assert positive > negative + 0.3
