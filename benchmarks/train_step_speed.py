"""Is a training step bound by the model or by the data? Times both halves of a default-profile step on the real
catalog and banks, then runs real Lightning steps with the configured DataLoader and measures how long each
step waits for its batch (run it on an otherwise idle machine).

Run: .venv/bin/python benchmarks/train_step_speed.py [--params params.yaml] [--batches 3] [--steps 24]
       [--workers W --threads T ...]   (extra configurations for the fit part)
Prints: pairs/s one worker renders on one core; pairs/s of the model step (log-mel + encoder forward + backward
+ AdamW) on one thread and on all; then for each (workers, threads): steps/s of a real fit and the share of step
time spent waiting on the DataLoader (the first block of the epoch excluded: workers start then).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from resonance.banks.stage import load_banks
from resonance.config import SimulateParams, load_section, load_train
from resonance.train.data import SegmentSource, render_block
from resonance.train.module import ContrastiveModule, PairDataModule
from resonance.train.stage import catalog_tracks


def data_rate(params, sim, banks, tracks) -> float:
    torch.set_num_threads(1)
    source = SegmentSource(tracks, params.data, sim, banks, round(params.window_s * banks.sr))
    t0 = time.perf_counter()
    render_block(source, params.seed, 0, 0, params.batch_size)
    return source.k * params.batch_size / (time.perf_counter() - t0)


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


def fit_rate(params, sim, banks, tracks, steps: int) -> tuple[float, float]:
    """(steps/s, share of step time waiting for the batch) of a real Lightning fit, first block excluded."""
    import lightning as L

    class Clock(L.Callback):
        def __init__(self) -> None:
            self.ends: list[float] = []
            self.waits: list[float] = []

        def on_train_batch_start(self, *args) -> None:
            if self.ends:
                self.waits.append(time.perf_counter() - self.ends[-1])

        def on_train_batch_end(self, *args) -> None:
            self.ends.append(time.perf_counter())

    torch.set_num_threads(params.trainer.threads)
    data = PairDataModule(params, sim, banks, tracks, valset=None)
    clock = Clock()
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=steps, limit_val_batches=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[clock])
    trainer.fit(ContrastiveModule(params), train_dataloaders=data.train_dataloader())
    skip = params.data.windows_per_segment
    span = clock.ends[-1] - clock.ends[skip - 1]
    return (len(clock.ends) - skip) / span, sum(clock.waits[skip - 1:]) / span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--workers", type=int, nargs="*", default=[], help="extra fit configurations: workers")
    parser.add_argument("--threads", type=int, nargs="*", default=[], help="... and model threads (same count)")
    args = parser.parse_args()
    params = load_train(args.params)
    sim = load_section(args.params, "simulate", SimulateParams)
    banks = load_banks(Path("data/banks"))
    tracks = catalog_tracks(Path("data/catalog"), "train")
    module_log = ContrastiveModule.log
    ContrastiveModule.log = lambda *a, **k: None  # outside a Trainer
    rows = [("data: pairs/s per worker (1 core)", f"{data_rate(params, sim, banks, tracks):.1f}"),
            ("model step: pairs/s (1 thread)", f"{model_rate(params, 1, args.batches):.1f}"),
            ("model step: pairs/s (2 threads)", f"{model_rate(params, 2, args.batches):.1f}")]
    ContrastiveModule.log = module_log
    configs = [(params.data.workers, params.trainer.threads), *zip(args.workers, args.threads)]
    for workers, threads in configs:
        p = dataclasses.replace(params, data=dataclasses.replace(params.data, workers=workers),
                                trainer=dataclasses.replace(params.trainer, threads=threads))
        steps_s, wait = fit_rate(p, sim, banks, tracks, args.steps)
        rows.append((f"fit, {workers} worker(s), model on {threads} thread(s)",
                     f"{steps_s * params.batch_size:.1f} pairs/s, {wait:.0%} of it waiting on data"))
    print(f"default profile: {params.encoder}, batch {params.batch_size} pairs, {params.data.windows_per_segment} "
          f"windows per rendered segment, clean anchor {params.data.clean_anchor_prob:.0%}\n")
    print("| what | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
