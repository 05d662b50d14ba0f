"""`resonance index build|add|remove|info`: the reference index of the embedding model (standard library only at
import time, like cli.py)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _embedding_params(args: argparse.Namespace):  # -> EmbeddingParams
    from resonance.config import EmbeddingParams, load_section

    return load_section(args.params, "embedding", EmbeddingParams)


def _index_build(args: argparse.Namespace) -> int:
    from resonance.index.stage import build_from_catalog, describe_build

    params = _embedding_params(args)
    summary = build_from_catalog(args.model or params.model, Path(args.catalog), Path(args.out or params.index),
                                 progress=not args.quiet, params=params)
    print(describe_build(summary))
    return 0


def _index_add(args: argparse.Namespace) -> int:
    from resonance.errors import ResonanceError
    from resonance.index.stage import add_files, describe_add

    if (args.id or args.title) and len(args.files) != 1:
        raise ResonanceError(f"--id and --title name one track: give exactly one FILE with them "
                             f"(got {len(args.files)})")
    params = _embedding_params(args)
    summary = add_files(args.files, [args.id] if args.id else None, [args.title] if args.title else None,
                        args.model or params.model, Path(args.index or params.index), params)
    print(describe_add(summary))
    return 0


def _index_remove(args: argparse.Namespace) -> int:
    from resonance.index.admin import remove_tracks

    summary = remove_tracks(args.track_ids, Path(args.index or _embedding_params(args).index))
    print(f"index remove: {len(summary['removed'])} track(s) removed: {', '.join(summary['removed'])}; the index "
          f"holds {summary['tracks']} tracks, {summary['windows']:,} windows -> {summary['index']}")
    return 0


def _index_info(args: argparse.Namespace) -> int:
    import json

    from resonance.index.admin import describe_info, index_info

    info = index_info(Path(args.index or _embedding_params(args).index))
    if not args.tracks:
        info.pop("track_list")
    print(json.dumps(info) if args.json else describe_info(info, args.tracks))
    return 0


def add_verbs(sub: argparse._SubParsersAction) -> None:
    """Add `index` and its actions to the `resonance` subparsers."""
    p = sub.add_parser("index", help="the FAISS reference index of the embedding model (see `index build|add|"
                       "remove|info`)")
    idx = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = idx.add_parser("build", help="embed every catalog track into a new index (replaces the old one)")
    p.add_argument("--model", default=None, help="model folder, model.pt or models:/NAME@ALIAS (default: "
                   "embedding.model)")
    p.add_argument("--catalog", default="data/catalog", help="catalog folder (default: data/catalog)")
    p.add_argument("--out", default=None, help="index folder (default: embedding.index)")
    p.set_defaults(func=_index_build)
    p = idx.add_parser("add", help="add audio files (any format) to the index; an existing track id is replaced")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files to index")
    p.add_argument("--id", default=None, help="track id (one FILE only; default: the file name without suffix)")
    p.add_argument("--title", default=None, help="title (one FILE only; default: the file's title tag or name)")
    p.add_argument("--model", default=None, help="model (default: embedding.model)")
    p.add_argument("--index", default=None, help="index folder, created if missing (default: embedding.index)")
    p.set_defaults(func=_index_add)
    p = idx.add_parser("remove", help="take tracks and their windows out of the index")
    p.add_argument("track_ids", nargs="+", metavar="TRACK_ID", help="track ids (see `index info --tracks`)")
    p.add_argument("--index", default=None, help="index folder (default: embedding.index)")
    p.set_defaults(func=_index_remove)
    p = idx.add_parser("info", help="what the index holds: tracks, windows, bytes, type, model, build id")
    p.add_argument("--index", default=None, help="index folder (default: embedding.index)")
    p.add_argument("--tracks", action="store_true", help="also list every track")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=_index_info)
