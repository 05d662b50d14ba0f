"""The training stage's validation scores of saved models, recomputed in float32: compare checkpoints or training
settings on one footing (a bf16-mixed run's own validation ran under autocast).

Run: .venv/bin/python benchmarks/val_scores.py MODEL [MODEL ...]   (model.pt files or model folders)

The validation set is rebuilt exactly as `resonance train` builds it (params.yaml's `train.val`, `train.seed`,
the catalog's val songs among distractor windows of the train songs), so the figures are the ones train.json
reports: query top-1, window top-1, window recall@10 and the true-vs-10th-impostor gap. Prints a markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--catalog", default="data/catalog")
    ap.add_argument("--banks", default="data/banks")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from resonance.banks.stage import load_banks
    from resonance.config import SimulateParams, load_section
    from resonance.config.train import load_train
    from resonance.model.embedder import load_model
    from resonance.train.module import valset_embeddings
    from resonance.train.stage import catalog_tracks
    from resonance.train.valset import build_valset, retrieval_scores

    torch.set_num_threads(args.threads)
    p = load_train(args.params)
    sim = load_section(args.params, "simulate", SimulateParams)
    catalog = Path(args.catalog)
    valset = build_valset(catalog_tracks(catalog, "val"), p.val, sim, load_banks(Path(args.banks)), p.window_s,
                          p.hop_s, p.data.preroll_s, p.seed, distractor_tracks=catalog_tracks(catalog, "train"))
    print(f"{len(valset.query_track)} val queries among {valset.n_ref:,} reference windows\n")
    print("| model | query top-1 | window top-1 | window recall@10 | gap |\n|---|---|---|---|---|")
    for path in args.models:
        s = retrieval_scores(valset_embeddings(load_model(path), valset), valset)
        print(f"| {path} | {s['top1']:.1%} | {s['window_top1']:.1%} | {s['window_recall']:.1%} | {s['gap']:+.4f} |",
              flush=True)


if __name__ == "__main__":
    main()
