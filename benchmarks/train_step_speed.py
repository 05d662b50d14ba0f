"""Is a training step bound by the model or by the data? Times both halves of a default-profile step on the real
catalog and banks, one core each (run it on an otherwise idle machine).

Run: .venv/bin/python benchmarks/train_step_speed.py [--params params.yaml] [--batches 3]
Prints: pairs/s one DataLoader worker renders (two concert-chain views, or one and the clean window), and
pairs/s the model step (log-mel + encoder forward + backward + AdamW) takes on one thread and on all threads.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from resonance.banks.stage import load_banks
from resonance.config import SimulateParams, load_section, load_train
from resonance.train.data import PairDataset
from resonance.train.module import ContrastiveModule
from resonance.train.stage import catalog_tracks


def data_rate(params, sim, banks, tracks, n: int) -> float:
    torch.set_num_threads(1)
    data = PairDataset(tracks, params.data, sim, banks, round(params.window_s * banks.sr), n, params.seed)
    t0 = time.perf_counter()
    for i in range(n):
        data[i]
    return n / (time.perf_counter() - t0)


def model_rate(params, threads: int, batches: int) -> float:
    torch.set_num_threads(threads)
    module = ContrastiveModule(params)
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    a, b = (torch.from_numpy((0.1 * rng.standard_normal((params.batch_size, 16000))).astype(np.float32))
            for _ in range(2))
    module.training_step((a, b), 0)  # warm-up (allocations)
    t0 = time.perf_counter()
    for _ in range(batches):
        loss = module.training_step((a, b), 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batches * params.batch_size / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--batches", type=int, default=3)
    args = parser.parse_args()
    params = load_train(args.params)
    sim = load_section(args.params, "simulate", SimulateParams)
    banks = load_banks(Path("data/banks"))
    tracks = catalog_tracks(Path("data/catalog"), "train")
    module_log = ContrastiveModule.log
    ContrastiveModule.log = lambda *a, **k: None  # outside a Trainer
    rows = [("data: pairs/s per worker (1 thread)", data_rate(params, sim, banks, tracks, 2 * params.batch_size)),
            ("model: pairs/s (1 thread)", model_rate(params, 1, args.batches)),
            (f"model: pairs/s ({params.trainer.threads} threads)",
             model_rate(params, params.trainer.threads, args.batches))]
    ContrastiveModule.log = module_log
    print(f"default profile: {params.encoder}, batch {params.batch_size} pairs, "
          f"{params.data.workers} workers, clean anchor {params.data.clean_anchor_prob:.0%}\n")
    print("| what | pairs/s |\n|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:.1f} |")


if __name__ == "__main__":
    main()
