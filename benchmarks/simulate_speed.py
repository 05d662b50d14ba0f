"""How fast the concert chain runs, per stage and per preset, in x real time on one core (target: >= 50x).

Run: .venv/bin/python benchmarks/simulate_speed.py [--banks data/banks] [--catalog data/catalog] [--seconds 30]
Uses the built banks and a real catalog track (`make run` builds both); prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the chain runs inside one DataLoader worker

import numpy as np  # noqa: E402

from resonance.banks.stage import load_banks  # noqa: E402
from resonance.catalog.manifest import load_manifest  # noqa: E402
from resonance.config import SimulateParams, load_section  # noqa: E402
from resonance.simulate.chain import apply_condition, crowd_at, sample_preset  # noqa: E402
from resonance.simulate.mix import mix_at_snr  # noqa: E402
from resonance.simulate.pa import apply_compressor, apply_eq, apply_limiter  # noqa: E402
from resonance.simulate.phone import apply_phone  # noqa: E402
from resonance.simulate.room import apply_room  # noqa: E402


def speed(fn, seconds: float, repeats: int = 3) -> float:
    """Best-of-`repeats` x real time of fn() on `seconds` of audio."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return seconds / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--banks", default="data/banks")
    parser.add_argument("--catalog", default="data/catalog")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    import soundfile as sf

    sim = load_section(args.params, "simulate", SimulateParams)
    banks = load_banks(args.banks)
    track = max(load_manifest(args.catalog)[:50], key=lambda t: t.duration_s)
    music, sr = sf.read(f"{args.catalog}/{track.audio_path}", frames=int(args.seconds * banks.sr), dtype="float32")
    secs = music.size / sr
    print(f"{secs:.0f} s of `{track.track_id}` at {sr} Hz, one thread, best of 3\n")
    print("| preset | EQ | compressor | limiter | room | crowd | mix | phone | whole chain |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, preset in sim.presets.items():
        c = sample_preset(np.random.default_rng(0), name, preset, sim, banks)
        rirs = banks.rirs[c.room_class][c.room_index] if c.room_class else None
        crowd = crowd_at(c, banks, music, rirs)
        cols = [speed(lambda: apply_eq(music, sr, c.eq), secs),
                speed(lambda: apply_compressor(music, sr, c.compressor), secs),
                speed(lambda: apply_limiter(music, sr, c.ceiling_db, c.lookahead_ms, c.limiter_release_ms), secs),
                speed(lambda: apply_room(music, rirs), secs) if rirs is not None else float("nan"),
                speed(lambda: crowd_at(c, banks, music, rirs), secs),
                speed(lambda: mix_at_snr(music, crowd, c.snr_db or 0.0), secs),
                speed(lambda: apply_phone(music, sr, c.phone), secs),
                speed(lambda: apply_condition(music, c, banks), secs)]
        print(f"| {name} | " + " | ".join("-" if np.isnan(v) else f"{v:,.0f}x" for v in cols) + " |")


if __name__ == "__main__":
    main()
