"""Is a training step bound by the model or by the data? Times both halves of a training step on the real catalog
and banks, then runs real Lightning steps with the configured DataLoader and measures how long each step waits for
its batch (run it on an otherwise idle machine: it prints the load average it started under).

Run: .venv/bin/python benchmarks/train_step_speed.py [--params params.yaml] [--profile default]
       [--catalog data/catalog] [--banks data/banks] [--blocks 2] [--batches 3] [--steps 24] [--repeats 3]
       [--workers W --threads T ...]   (extra configurations for the fit part)
Prints, each as min / median / max over --repeats repeats (every repeat after a warm-up):
  - data: pairs/s one worker renders on one torch thread, over --blocks whole blocks per repeat (each block is
    `batch_size` stretches of `windows_per_segment` pairs; every repeat renders other blocks);
  - model step: pairs/s of log-mel + encoder forward + backward + AdamW, on one thread and on every core, after
    two untimed warm-up steps (forward and backward: allocations, autograd graph, optimizer state); and on one
    thread with the forward pass under bfloat16 autocast (Lightning's `bf16-mixed`);
  - for each (workers, threads): pairs/s of a real fit over --steps steps and the share of step time spent waiting
    on the DataLoader (the first block of the epoch excluded: workers start then).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from resonance.banks.stage import load_banks
from resonance.config import SimulateParams, load_section, load_train
from resonance.train.data import SegmentSource, render_block
from resonance.train.module import ContrastiveModule, PairDataModule
from resonance.train.stage import catalog_tracks

WARMUP_STEPS = 2


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    """'min / median / max' of `values`."""
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def data_rates(params, sim, banks, tracks, blocks: int, repeats: int) -> list[float]:
    """Pairs/s of rendering `blocks` whole blocks on one torch thread, once per repeat (other blocks each time),
    after one untimed warm-up block."""
    torch.set_num_threads(1)
    source = SegmentSource(tracks, params.data, sim, banks, round(params.window_s * banks.sr))
    render_block(source, params.seed, 0, 0, params.batch_size)  # warm-up: file handles, filter caches
    rates = []
    for r in range(repeats):
        t0 = time.perf_counter()
        for b in range(blocks):
            render_block(source, params.seed, 0, 1 + r * blocks + b, params.batch_size)
        rates.append(blocks * source.k * params.batch_size / (time.perf_counter() - t0))
    return rates


def model_rates(params, threads: int, batches: int, repeats: int, bf16: bool = False) -> list[float]:
    """Pairs/s of `batches` full training steps (forward, backward, AdamW) on `threads` threads, once per repeat,
    after WARMUP_STEPS untimed full steps; with `bf16` the forward pass runs under bfloat16 autocast (what
    Lightning's `bf16-mixed` precision does on a CPU)."""
    import contextlib

    torch.set_num_threads(threads)
    module = ContrastiveModule(params)
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    window = round(params.window_s * params.frontend["sr"])
    a, b = (torch.from_numpy((0.1 * rng.standard_normal((params.batch_size, window))).astype(np.float32))
            for _ in range(2))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss = module.training_step((a, b), 0)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(WARMUP_STEPS):
        step()
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(batches):
            step()
        rates.append(batches * params.batch_size / (time.perf_counter() - t0))
    return rates


def fit_rate(params, sim, banks, tracks, steps: int) -> tuple[float, float]:
    """(pairs/s, share of step time waiting for the batch) of a real Lightning fit, first block excluded."""
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

    skip = params.data.windows_per_segment
    if steps <= skip:
        raise SystemExit(f"train_step_speed: --steps must exceed one block ({skip} steps)")
    torch.set_num_threads(params.trainer.threads)
    data = PairDataModule(params, sim, banks, tracks, valset=None)
    clock = Clock()
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=steps, limit_val_batches=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[clock])
    trainer.fit(ContrastiveModule(params), train_dataloaders=data.train_dataloader())
    span = clock.ends[-1] - clock.ends[skip - 1]
    return (len(clock.ends) - skip) * params.batch_size / span, sum(clock.waits[skip - 1:]) / span


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--profile", default=None, help="train profile (default: train.profile of the params)")
    parser.add_argument("--catalog", default="data/catalog")
    parser.add_argument("--banks", default="data/banks")
    parser.add_argument("--blocks", type=int, default=2, help="blocks rendered per repeat (data rate)")
    parser.add_argument("--batches", type=int, default=3, help="timed model steps per repeat")
    parser.add_argument("--steps", type=int, default=24, help="steps of each real fit")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="*", default=[], help="extra fit configurations: workers")
    parser.add_argument("--threads", type=int, nargs="*", default=[], help="... and model threads (same count)")
    args = parser.parse_args(argv)
    params = load_train(args.params, args.profile)
    sim = load_section(args.params, "simulate", SimulateParams)
    banks = load_banks(Path(args.banks))
    tracks = catalog_tracks(Path(args.catalog), "train")
    cores, load = os.cpu_count() or 1, os.getloadavg()[0]
    module_log = ContrastiveModule.log
    ContrastiveModule.log = lambda *a, **k: None  # outside a Trainer
    rows = [("data: pairs/s per worker (1 torch thread)",
             spread(data_rates(params, sim, banks, tracks, args.blocks, args.repeats))),
            ("model step: pairs/s (1 thread)", spread(model_rates(params, 1, args.batches, args.repeats))),
            ("model step, bf16 autocast: pairs/s (1 thread)",
             spread(model_rates(params, 1, args.batches, args.repeats, bf16=True)))]
    if cores > 1:
        rows.append((f"model step: pairs/s ({cores} threads)",
                     spread(model_rates(params, cores, args.batches, args.repeats))))
    ContrastiveModule.log = module_log
    configs = [(params.data.workers, params.trainer.threads), *zip(args.workers, args.threads)]
    for workers, threads in configs:
        p = dataclasses.replace(params, data=dataclasses.replace(params.data, workers=workers),
                                trainer=dataclasses.replace(params.trainer, threads=threads))
        fits = [fit_rate(p, sim, banks, tracks, args.steps) for _ in range(args.repeats)]
        rows.append((f"fit, {workers} worker(s), model on {threads} thread(s): pairs/s",
                     spread([f[0] for f in fits])))
        rows.append((f"fit, {workers} worker(s), model on {threads} thread(s): share waiting on data",
                     spread([f[1] for f in fits], "{:.0%}")))
    print(f"profile `{params.profile}`: {params.encoder}, batch {params.batch_size} pairs, "
          f"{params.data.windows_per_segment} windows per rendered segment, clean anchor "
          f"{params.data.clean_anchor_prob:.0%}; {len(tracks)} train tracks; {cores} CPU cores, load average "
          f"{load:.2f} at start; min / median / max of {args.repeats} repeats\n")
    print("| what | min / median / max |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
