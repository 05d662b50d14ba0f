"""`resonance listen` and `resonance identify --setlist`: streams and whole concerts (standard library only at
import time, like cli.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _recognizer(args: argparse.Namespace) -> tuple[Any, Any]:
    """(EmbeddingParams, EmbeddingMethod) for --model/--index/--calibration (defaults: the embedding section)."""
    from resonance.config import EmbeddingParams, load_section
    from resonance.index.stage import load_recognizer

    params = load_section(args.params, "embedding", EmbeddingParams)
    method = load_recognizer(args.model or params.model, Path(args.index or params.index),
                             Path(args.calibration or params.calibration), params)
    return params, method


def _listen(args: argparse.Namespace) -> int:
    import dataclasses

    from resonance.config import ServeParams, load_section
    from resonance.errors import ResonanceError
    from resonance.serve.holder import load_served
    from resonance.serve.listen import StreamDecider
    from resonance.stream.listen import ffmpeg_command, listen, pcm_chunks

    if (args.raw is None) != (args.rate is None):
        raise ResonanceError("--raw and --rate go together (raw PCM has no header to say its rate)")
    if args.raw is not None and args.file != "-":
        raise ResonanceError("--raw reads stdin: give `-` as FILE")
    if args.mic is None and args.file is None:
        raise ResonanceError("give a FILE, `-` for stdin, or --mic DEVICE")
    from resonance.config import EmbeddingParams

    params = load_section(args.params, "embedding", EmbeddingParams)
    serve = load_section(args.params, "serve", ServeParams)
    serve = dataclasses.replace(serve, model=args.model or params.model, index=args.index or params.index,
                                calibration=args.calibration or params.calibration)
    served = load_served(serve, params)
    decider = StreamDecider(lambda: served, serve.listen)
    cmd = ffmpeg_command(args.file or "", decider.sr, args.realtime, args.raw, args.rate, args.mic)
    label = f"capture device {args.mic}" if args.mic else ("stdin" if args.file == "-" else args.file)
    for message in listen(decider, pcm_chunks(cmd, decider.sr, from_stdin=args.file == "-", label=label)):
        print(json.dumps(message), flush=True)
    return 0


def _describe_setlist(result: dict[str, Any]) -> str:
    def clock(t: float) -> str:
        return f"{int(t // 60)}:{t % 60:04.1f}"

    lines = [f"{result['file']}: {len(result['songs'])} song(s) in {clock(result['duration_s'])}"]
    for i, s in enumerate(result["songs"], 1):
        lines.append(f"  {i:2d}. {clock(s['start_s'])} - {clock(s['end_s'])}  {s['title']} [{s['track_id']}] from "
                     f"{clock(s['song_offset_s'])} in the song, confidence {s['confidence']:.2f}")
    return "\n".join(lines)


def setlist_files(args: argparse.Namespace) -> int:
    """`identify --setlist FILE...`: the songs of each recording (exit 1 if a file could not be read)."""
    from resonance.audio import AudioError, decode
    from resonance.config import load_section
    from resonance.config.stream import SetlistParams
    from resonance.stream.setlist import setlist

    p = load_section(args.params, "setlist", SetlistParams)
    _, method = _recognizer(args)
    failed = 0
    for path in args.files:
        try:
            audio = decode(path, method.embedder.sr, timeout_s=600.0)
        except AudioError as exc:
            failed += 1
            print(json.dumps({"file": path, "error": str(exc)}) if args.json else f"{path}: error: {exc}")
            continue
        songs = [s.to_dict() for s in setlist(method, audio, method.embedder.sr, p)]
        result = {"file": path, "duration_s": round(audio.size / method.embedder.sr, 2), "songs": songs}
        print(json.dumps(result) if args.json else _describe_setlist(result), flush=True)
    return 1 if failed else 0


def add_verbs(sub: argparse._SubParsersAction) -> None:
    """Add `listen` to the `resonance` subparsers."""
    p = sub.add_parser("listen", help="decide while audio streams in (file, stdin, microphone): one JSON line "
                       "per song named, and a final one")
    p.add_argument("file", nargs="?", metavar="FILE|-", help="an audio file (any format ffmpeg reads) or - for "
                   "stdin (any container; raw PCM with --raw and --rate)")
    p.add_argument("--realtime", action="store_true", help="play a file at its own speed (as a live source)")
    p.add_argument("--raw", default=None, metavar="FMT", help="stdin is headerless PCM of this ffmpeg format "
                   "(s16le, f32le, ...), mono")
    p.add_argument("--rate", type=int, default=None, help="the raw PCM's sample rate (Hz)")
    p.add_argument("--mic", default=None, metavar="FMT:DEVICE", help="capture with ffmpeg instead, e.g. "
                   "alsa:default or pulse:default")
    p.add_argument("--model", default=None, help="model (default: embedding.model)")
    p.add_argument("--index", default=None, help="index folder (default: embedding.index)")
    p.add_argument("--calibration", default=None, help="calibration folder (default: embedding.calibration)")
    p.set_defaults(func=_listen)
