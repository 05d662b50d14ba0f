"""The room bank: for each room class (club ... festival), RIR pairs from simulated venues, with their RT60s."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from resonance.config import BanksParams
from resonance.simulate.room import RoomSpec, measure_rt60, render_rirs, sample_room


def build_rooms(params: BanksParams, sr: int, progress: bool = True) -> tuple[dict[str, list[np.ndarray]], list[dict]]:
    """Render `rooms_per_class` rooms per class. Returns ({class: [(2, n_taps) float32]}, one info row per room).

    Each class draws from its own generator seeded by (seed, class index), so adding a class moves no room.
    """
    from tqdm import tqdm

    rirs: dict[str, list[np.ndarray]] = {}
    rows: list[dict] = []
    total = params.rooms_per_class * len(params.rooms)
    bar = tqdm(total=total, desc="banks: rooms", unit="room", disable=not progress, dynamic_ncols=True)
    for k, (name, r) in enumerate(params.rooms.items()):
        rng = np.random.default_rng([params.seed, 1, k])
        rirs[name] = []
        for i in range(params.rooms_per_class):
            spec = sample_room(rng, tuple(r.length_m), tuple(r.width_m), tuple(r.height_m), tuple(r.rt60_s),
                               tuple(r.distance_m), open_air_prob=r.open_air_prob)
            pair = render_rirs(spec, sr, max_order_cap=params.max_order_cap)
            rirs[name].append(pair)
            rows.append(room_row(name, i, spec, pair, sr))
            bar.update(1)
    bar.close()
    return rirs, rows


def room_row(name: str, index: int, spec: RoomSpec, pair: np.ndarray, sr: int) -> dict:
    """What the bank records about one room: its drawn spec and the RT60 measured from its RIRs."""
    measured = float(np.mean([measure_rt60(pair[c], sr) for c in range(pair.shape[0])]))
    return {"class": name, "index": index, "rt60_target_s": spec.rt60_s, "rt60_measured_s": round(measured, 3),
            "n_taps": int(pair.shape[1]), "spec": asdict(spec)}
