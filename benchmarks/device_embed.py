"""What embedding costs on a device: model.onnx's size and onnxruntime time per 1 s window on ONE CPU thread.

Prints a table: model bytes, parameters, ms per window for a single window (batch 1, the streaming case) and for a
5 s query (--query-s; windows every `embedding.query_hop_s`, 17 at 0.25 s, in one batch), ms for the usable
(silence) flags of that query (`embedding.silence_dbfs`, `embedding.min_active`), and the time for the whole query.
The numbers come from onnxruntime on the CPU it runs on (the header line names its cores and load); a phone's CPU
or Neural Engine differs, the shape of the cost (per window, linear in windows) does not.

    .venv/bin/python benchmarks/device_embed.py --out benchmarks/device_embed.md   # data/model/model.onnx
    .venv/bin/python benchmarks/device_embed.py --model path/model.onnx
    .venv/bin/python benchmarks/device_embed.py --untrained default      # the params' architecture, untrained
                                                                         # (same size and compute as trained)
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _client():
    spec = importlib.util.spec_from_file_location("device_client", ROOT / "clients" / "device_client.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def export_untrained(profile: str, params: Path, out: Path) -> Path:
    """model.onnx of an untrained model of the params' `train` architecture (profile `default` = no profile)."""
    import torch

    from resonance.config import load_train
    from resonance.model.embedder import EmbeddingModel
    from resonance.train.export import export_onnx

    p = load_train(params, profile)
    torch.manual_seed(0)
    model = EmbeddingModel(p.frontend, p.encoder, p.encoders[p.encoder], p.window_s, p.hop_s)
    export_onnx(model, out)
    return out


def _ms(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return float(np.median(times)), float(np.percentile(times, 95))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "data" / "model" / "model.onnx"))
    parser.add_argument("--untrained", default=None, metavar="PROFILE",
                        help="export an untrained model of this train profile (`default` or e.g. `fast`) instead")
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--hop-s", type=float, default=None, help="query hop (default: embedding.query_hop_s)")
    parser.add_argument("--query-s", type=float, default=5.0, help="query length timed whole (default 5 s)")
    parser.add_argument("--out", default=None, help="also write the table here (e.g. benchmarks/device_embed.md)")
    args = parser.parse_args(argv)
    dc = _client()
    tmp = tempfile.TemporaryDirectory()
    path = Path(args.model)
    if args.untrained:
        path = export_untrained(args.untrained, Path(args.params), Path(tmp.name) / "model.onnx")
    if not path.is_file():
        print(f"device_embed: {path}: no model.onnx (train one, or pass --untrained default)", file=sys.stderr)
        return 2
    import onnx

    from resonance.config import EmbeddingParams, load_section, load_train
    from resonance.index.usable import usable_windows

    query = load_section(args.params, "embedding", EmbeddingParams)  # what a query does on the server
    hop_s = args.hop_s if args.hop_s is not None else query.query_hop_s
    graph = onnx.load(str(path)).graph
    n_params = sum(int(np.prod(t.dims)) for t in graph.initializer)
    emb = dc.DeviceEmbedder(str(path), threads=1)
    train = load_train(args.params, args.untrained)
    sr = int(train.frontend["sr"])
    window = emb.window or int(round(train.window_s * sr))
    hop = int(round(hop_s * sr))
    rng = np.random.default_rng(0)
    clip = (0.1 * rng.standard_normal(int(round(args.query_s * sr)))).astype(np.float32)
    one = clip[:window]
    m = dc.window_count(clip.size, window, hop)
    single = _ms(lambda: emb.embed(one, window, hop), args.repeats)
    batch = _ms(lambda: emb.embed(clip, window, hop), args.repeats)
    frame_s = inspect.signature(usable_windows).parameters["frame_s"].default  # the server's frame (as /version)
    flags = _ms(lambda: dc.usable_windows(clip, sr, window / sr, hop_s, query.silence_dbfs, query.min_active,
                                          frame_s), args.repeats)
    vectors = emb.embed(clip, window, hop)
    dim = vectors.shape[1]
    body = json.dumps({"embeddings": vectors.tolist(), "usable": [True] * m, "duration_s": clip.size / sr,
                       "hop_s": hop_s, "model_sha256": "0" * 64})
    q = f"{clip.size / sr:g} s query"
    rows = [("model.onnx bytes", f"{path.stat().st_size:,}"), ("parameters", f"{n_params:,}"),
            ("embedding dim", str(dim)), ("window / query hop", f"{window / sr:g} s / {hop_s:g} s"),
            ("1 window (batch 1), ms p50 / p95", f"{single[0]:.2f} / {single[1]:.2f}"),
            (f"{q} ({m} windows, one batch), ms per window", f"{batch[0] / m:.2f}"),
            (f"{q} embeddings, ms p50 / p95", f"{batch[0]:.1f} / {batch[1]:.1f}"),
            (f"{q} usable flags, ms p50", f"{flags[0]:.2f}"),
            (f"POST /identify/embeddings body of a {q}", f"{len(body) / 1000:.1f} kB")]
    lines = ["# On-device embedding cost (`python benchmarks/device_embed.py`)", "",
             f"onnxruntime, 1 thread, `{path.name}`{' (untrained ' + args.untrained + ')' if args.untrained else ''}; "
             f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f} when measured.", "",
             "| measure | value |", "|---|---:|", *(f"| {k} | {v} |" for k, v in rows)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        from resonance.io import atomic_open

        with atomic_open(Path(args.out)) as fh:
            fh.write(text)
    print(f"device_embed: {m} windows in {batch[0]:.1f} ms on one thread ({batch[0] / m:.2f} ms per window)")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
