"""A reviewer's look at one condition: the clean and degraded WAVs and both spectrograms side by side."""

from __future__ import annotations

import io
from dataclasses import asdict
from pathlib import Path

import numpy as np

from resonance.config import SimulateParams
from resonance.io import atomic_path, write_json
from resonance.simulate.chain import Banks, Condition, apply_condition, sample_preset


def render_preview(audio: np.ndarray, preset: str, sim: SimulateParams, banks: Banks,
                   seed: int) -> tuple[np.ndarray, Condition]:
    """Draw a condition of `preset` (seeded) and apply it to mono audio (n,) at banks.sr."""
    if preset not in sim.presets:
        raise ValueError(f"unknown preset {preset!r}; known: {sorted(sim.presets)}")
    rng = np.random.default_rng([seed, sorted(sim.presets).index(preset)])
    cond = sample_preset(rng, preset, sim.presets[preset], sim, banks)
    return apply_condition(audio, cond, banks), cond


def write_preview(clean: np.ndarray, degraded: np.ndarray, sr: int, cond: Condition, stem: str,
                  out_dir: Path, audio: bool = True) -> list[Path]:
    """Write STEM_PRESET.png (spectrograms), STEM_PRESET.json (the condition) and, if `audio`,
    STEM_clean.wav and STEM_PRESET.wav. Returns the paths written."""
    import soundfile as sf

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}_{cond.name}.png", out_dir / f"{stem}_{cond.name}.json"]
    spectrogram_figure(clean, degraded, sr, cond, paths[0])
    write_json(paths[1], asdict(cond))
    if audio:
        for path, x in ((out_dir / f"{stem}_clean.wav", clean), (out_dir / f"{stem}_{cond.name}.wav", degraded)):
            with atomic_path(path) as tmp:
                sf.write(str(tmp), x, sr, format="WAV", subtype="PCM_16")
            paths.append(path)
    return paths


def spectrogram_figure(clean: np.ndarray, degraded: np.ndarray, sr: int, cond: Condition, path: Path) -> None:
    """Two log-frequency spectrograms (dB) side by side, with the condition's main parameters in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    for ax, audio, title in zip(axes, (clean, degraded), ("clean (catalog)", f"{cond.name} (phone in the crowd)")):
        ax.specgram(audio + 1e-9, NFFT=1024, Fs=sr, noverlap=768, cmap="magma", vmin=-120, vmax=-20)
        ax.set_yscale("symlog", linthresh=500)
        ax.set_ylim(50, sr / 2)
        ax.set_xlabel("time (s)")
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("frequency (Hz)")
    snr = "no crowd" if cond.snr_db is None else f"crowd SNR {cond.snr_db:.1f} dB"
    fig.suptitle(f"{cond.name}: {cond.room_class or 'dry'} room RT60 {cond.rt60_s:.2f} s, {snr}, "
                 f"phone clip {cond.phone.clip_mode}, limiter {cond.ceiling_db:.1f} dBFS", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72)
    plt.close(fig)
    from PIL import Image

    with atomic_path(path) as tmp:  # a 96-colour palette keeps the documentation PNGs small
        Image.open(buf).convert("RGB").quantize(colors=96).save(tmp, format="PNG", optimize=True)
