"""`resonance` command line: one verb per pipeline stage. Reads params, does I/O, calls stage functions.

Only the standard library is imported at module level, so `resonance --help` starts fast; each verb
imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

# Quiet and offline by default; state stays inside the project (setdefault: the caller's env wins).
_ENV_DEFAULTS = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}


def _catalog(args: argparse.Namespace) -> int:
    from resonance.catalog.stage import describe, run
    from resonance.config import CatalogParams, load_section

    params = load_section(args.params, "catalog", CatalogParams)
    landmark = None
    if args.exclude:  # shared audio with the excluded catalog is found with the landmark hashes
        from resonance.landmark.peaks import LandmarkConfig

        landmark = load_section(args.params, "landmark", LandmarkConfig)
    header = run(params, Path(args.out), Path(args.cache), profile=args.profile, limit=args.limit,
                 progress=not args.quiet, exclude=Path(args.exclude) if args.exclude else None, landmark=landmark)
    print(describe(header, Path(args.out)))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from resonance.config import ValidateParams, load_section
    from resonance.validate.stage import describe, run

    params = load_section(args.params, "validate", ValidateParams)
    result = run(params, Path(args.catalog), Path(args.out), Path(args.metrics), progress=not args.quiet)
    print(describe(result))
    return 0 if result["success"] else 1


def _banks(args: argparse.Namespace) -> int:
    from resonance.banks.stage import describe, run
    from resonance.config import BanksParams, CatalogParams, load_section

    sr = load_section(args.params, "catalog", CatalogParams).sample_rate
    params = load_section(args.params, "banks", BanksParams)
    header = run(params, sr, Path(args.out), Path(args.cache), progress=not args.quiet)
    print(describe(header, Path(args.out)))
    return 0


def _queries(args: argparse.Namespace) -> int:
    from resonance.banks.stage import load_banks
    from resonance.config import QueriesParams, SimulateParams, load_section
    from resonance.queries.stage import describe, run

    params = load_section(args.params, "queries", QueriesParams)
    sim = load_section(args.params, "simulate", SimulateParams)
    headers = run(params, sim, load_banks(args.banks), Path(args.catalog), Path(args.outside), Path(args.out),
                  progress=not args.quiet)
    print(describe(headers, Path(args.out)))
    return 0


def _preview(args: argparse.Namespace) -> int:
    from resonance.banks.stage import load_banks
    from resonance.config import SimulateParams, load_section
    from resonance.simulate.preview import render_preview, write_preview

    sim = load_section(args.params, "simulate", SimulateParams)
    banks = load_banks(args.banks)
    clean, stem = _load_clip(args.track, Path(args.catalog), banks.sr, args.offset, args.seconds)
    written = []
    for preset in args.preset or sorted(sim.presets):
        degraded, cond = render_preview(clean, preset, sim, banks, args.seed)
        written += write_preview(clean, degraded, banks.sr, cond, stem, Path(args.out), audio=not args.png_only)
    print(f"simulate preview: wrote {len(written)} files -> {args.out}")
    return 0


def _embedding_params(args: argparse.Namespace):  # -> EmbeddingParams
    from resonance.config import EmbeddingParams, load_section

    return load_section(args.params, "embedding", EmbeddingParams)


def _identify(args: argparse.Namespace) -> int:
    import json

    from resonance.index.stage import describe_result, identify_files

    if args.setlist:
        from resonance.cli_stream import setlist_files

        return setlist_files(args)
    params = _embedding_params(args)
    failed = 0
    results = identify_files(args.files, args.model or params.model, Path(args.index or params.index),
                             Path(args.calibration or params.calibration), params)
    for result in results:
        failed += "error" in result
        print(json.dumps(result) if args.json else describe_result(result), flush=True)
    return 1 if failed else 0


def _calibrate(args: argparse.Namespace) -> int:
    import dataclasses

    from resonance.calibrate.stage import describe, run
    from resonance.config import EvaluateParams, load_section

    params = _embedding_params(args)
    params = dataclasses.replace(params, model=args.model or params.model, index=args.index or params.index)
    out = Path(args.out or params.calibration)
    summary = run(params, load_section(args.params, "evaluate", EvaluateParams), Path(args.catalog),
                  Path(args.queries), out, Path(args.metrics) if args.metrics else None, progress=not args.quiet)
    print(describe(summary, out))
    return 0


def _serve(args: argparse.Namespace) -> int:
    import dataclasses

    from resonance.config import ServeParams, load_section
    from resonance.serve.run import serve

    p = load_section(args.params, "serve", ServeParams)
    over = {k: v for k, v in (("host", args.host), ("port", args.port), ("model", args.model),
                              ("index", args.index), ("calibration", args.calibration)) if v is not None}
    serve(dataclasses.replace(p, **over), _embedding_params(args), "info" if args.verbose else "warning")
    return 0


def _load_clip(track: str, catalog_dir: Path, sr: int, offset_s: float, seconds: float):  # -> (audio, stem)
    """A catalog track id or any audio file, cut to [offset_s, offset_s + seconds]."""
    from resonance.audio import AudioError, decode

    path = Path(track)
    if not path.is_file():
        from resonance.catalog.manifest import load_manifest

        hits = [t for t in load_manifest(catalog_dir) if t.track_id == track]
        if not hits:
            raise AudioError(f"{track}: neither an audio file nor a track id of {catalog_dir}")
        path = catalog_dir / hits[0].audio_path
    audio = decode(path, sr)
    clip = audio[int(offset_s * sr): int((offset_s + seconds) * sr)]
    if clip.size < sr:
        raise AudioError(f"{track}: less than 1 s of audio after --offset {offset_s:g} s")
    return clip, Path(track).stem if path.name == Path(track).name else track


def _at_least_one(value: str) -> int:
    """An argparse type: a whole number >= 1 (else a usage error naming the value)."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {n}")
    return n


def _evaluate(args: argparse.Namespace) -> int:
    from resonance.config import EvaluateParams, load_section
    from resonance.evaluate.stage import describe, run

    params = load_section(args.params, "evaluate", EvaluateParams)
    queries = Path(args.queries or f"data/queries/{params.query_set}")
    out = Path(args.out or f"data/evaluate/{args.method}")
    if args.torch_threads is not None:
        import torch

        torch.set_num_threads(args.torch_threads)
    metrics = run(args.method, Path(args.params), Path(args.catalog), queries, out,
                  Path(args.metrics) if args.metrics else None, progress=not args.quiet)
    print(describe(metrics, out))
    return 0


def _train(args: argparse.Namespace) -> int:
    from resonance.config import SimulateParams, load_section, load_train
    from resonance.train.stage import describe, run

    params = load_train(args.params, args.profile)
    sim = load_section(args.params, "simulate", SimulateParams)
    out = Path(args.out)
    summary = run(params, sim, Path(args.catalog), Path(args.banks), out,
                  Path(args.metrics) if args.metrics else None, progress=not args.quiet)
    print(describe(summary, out))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every verb."""
    parser = argparse.ArgumentParser(prog="resonance", description="Song recognition for live-concert audio.")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every skipped file and decision")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")

    p = sub.add_parser("catalog", help="build the reference catalog from Debian music packages")
    p.add_argument("--out", default="data/catalog", help="catalog folder (default: data/catalog)")
    p.add_argument("--cache", default="data/cache", help="download/extraction cache (default: data/cache)")
    p.add_argument("--profile", default=None, help="catalog profile from params (default: catalog.profile)")
    p.add_argument("--limit", type=int, default=None, help="stop after this many tracks (small catalogs)")
    p.add_argument("--exclude", default=None, help="a built catalog whose songs must not appear in this one")
    p.set_defaults(func=_catalog)

    p = sub.add_parser("validate", help="Great Expectations checks on the catalog manifest and audio")
    p.add_argument("--catalog", default="data/catalog", help="catalog folder (default: data/catalog)")
    p.add_argument("--out", default="data/validate", help="stats and report folder (default: data/validate)")
    p.add_argument("--metrics", default="metrics/validate.json", help="summary JSON tracked by DVC as metrics")
    p.set_defaults(func=_validate)

    p = sub.add_parser("banks", help="room impulse responses and crowd beds for the concert simulator")
    p.add_argument("--out", default="data/banks", help="banks folder (default: data/banks)")
    p.add_argument("--cache", default="data/cache/noise", help="download cache of the crowd/speech packages")
    p.set_defaults(func=_banks)

    p = sub.add_parser("queries", help="evaluation query sets: excerpts x concert conditions, with ground truth")
    p.add_argument("--catalog", default="data/catalog")
    p.add_argument("--outside", default="data/outside", help="never-indexed music (out-of-catalog queries)")
    p.add_argument("--banks", default="data/banks")
    p.add_argument("--out", default="data/queries", help="one folder per query set (default: data/queries)")
    p.set_defaults(func=_queries)

    p = sub.add_parser("evaluate", help="benchmark a recognition method on a query set (hit rates, open set, speed)")
    p.add_argument("--method", required=True, choices=["landmark", "chromaprint", "embedding", "hybrid"])
    p.add_argument("--catalog", default="data/catalog", help="the reference catalog the method indexes")
    p.add_argument("--queries", default=None, help="query set folder (default: data/queries/<evaluate.query_set>)")
    p.add_argument("--out", default=None, help="report folder (default: data/evaluate/<method>)")
    p.add_argument("--metrics", default=None, help="also write the headline metrics JSON here (for DVC)")
    p.add_argument("--torch-threads", type=_at_least_one, default=None,
                   help="torch intra-op threads for every identify call, the timed ones too (default: one per core; "
                        "the evaluate_embedding stage passes serve.torch_threads, as the service runs a request)")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("train", help="train the contrastive embedding model (Lightning; logged to MLflow)")
    p.add_argument("--profile", default=None, help="train profile from params (default: train.profile; `fast`)")
    p.add_argument("--catalog", default="data/catalog")
    p.add_argument("--banks", default="data/banks")
    p.add_argument("--out", default="data/model", help="model folder (default: data/model)")
    p.add_argument("--metrics", default=None, help="also write the headline metrics JSON here (for DVC)")
    p.set_defaults(func=_train)

    p = sub.add_parser("simulate", help="the concert simulator (see `simulate preview`)")
    sim = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sim.add_parser("preview", help="clean and degraded WAVs plus a spectrogram PNG for a track")
    p.add_argument("track", help="a catalog track id, or the path of any audio file")
    p.add_argument("--preset", action="append", help="preset name (repeatable; default: every preset)")
    p.add_argument("--offset", type=float, default=30.0, help="start of the clip in the track, s (default 30)")
    p.add_argument("--seconds", type=float, default=12.0, help="clip length, s (default 12)")
    p.add_argument("--seed", type=int, default=0, help="which draw of the preset's ranges (default 0)")
    p.add_argument("--catalog", default="data/catalog")
    p.add_argument("--banks", default="data/banks")
    p.add_argument("--out", default="data/preview", help="output folder (default: data/preview)")
    p.add_argument("--png-only", action="store_true", help="only the spectrogram PNG and condition JSON")
    p.set_defaults(func=_preview)

    from resonance import cli_index, cli_stream  # standard library only at import time

    cli_index.add_verbs(sub)
    p = sub.add_parser("identify", help="name the song in audio files (exit 1 if a file could not be read)")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (any format ffmpeg reads)")
    p.add_argument("--json", action="store_true", help="one JSON object per line per file")
    p.add_argument("--setlist", action="store_true", help="each FILE is a whole concert: list its songs with "
                   "start and end times (setlist params)")
    p.add_argument("--model", default=None, help="model (default: embedding.model)")
    p.add_argument("--index", default=None, help="index folder (default: embedding.index)")
    p.add_argument("--calibration", default=None, help="calibration folder (default: embedding.calibration)")
    p.set_defaults(func=_identify)

    p = sub.add_parser("calibrate", help="fit the open-set thresholds and confidence on the val queries")
    p.add_argument("--model", default=None, help="model (default: embedding.model)")
    p.add_argument("--index", default=None, help="the index it is calibrated against (default: embedding.index)")
    p.add_argument("--catalog", default="data/catalog", help="catalog (its train split gives the cohort)")
    p.add_argument("--queries", default="data/queries/val", help="the val query set (never the test set)")
    p.add_argument("--out", default=None, help="calibration folder (default: embedding.calibration)")
    p.add_argument("--metrics", default=None, help="also write the summary JSON here (for DVC)")
    p.set_defaults(func=_calibrate)

    p = sub.add_parser("serve", help="the HTTP service: /identify, /identify/embeddings, WS /listen, /version")
    p.add_argument("--host", default=None, help="bind address (default: serve.host, 127.0.0.1; any other needs "
                   "the API key env var serve.api_key_env)")
    p.add_argument("--port", type=int, default=None, help="port (default: serve.port)")
    p.add_argument("--model", default=None, help="models:/NAME@ALIAS, a model folder or model.pt (default: "
                   "serve.model)")
    p.add_argument("--index", default=None, help="index folder built for that model (default: serve.index)")
    p.add_argument("--calibration", default=None, help="its calibration folder (default: serve.calibration)")
    p.set_defaults(func=_serve)
    cli_stream.add_verbs(sub)

    from resonance.cli_mlops import add_verbs  # register, promote, deploy, monitor, field (standard library only)

    add_verbs(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `resonance` console script; returns the exit code."""
    for key, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    from resonance.kernels import pin_blas_kernels  # before numpy loads: same kernels, same bytes

    pin_blas_kernels()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(message)s")
    return _run(args.func, args)


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Known failures become one clear line on stderr and exit code 2, never a traceback."""
    from resonance.errors import ResonanceError

    try:
        return func(args)
    except ResonanceError as exc:
        print(f"resonance {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"resonance {args.verb}: interrupted (outputs are written atomically; nothing half-written)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
