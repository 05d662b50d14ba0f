"""Streaming and setlists, measured: time to a correct decision while test clips stream in, and setlist accuracy
on generated concerts (`setlist.concerts` in params.yaml).

Run: .venv/bin/python benchmarks/setlist.py [--split unseen|val] [--concerts N] [--clips N] [--out FILE]

1. Streaming: --clips in-catalog 10 s test queries at 0 dB crowd with hall or arena reverb (no clipping) played
   back to back, each followed by --gap-s of the venue's crowd alone, through `resonance listen`'s decisions
   (`StreamDecider`: every serve.listen.decide_every_s on the last serve.listen.max_buffer_s). Per clip: the
   time from its start to the first decision naming it, and whether another song was named first.
2. The same concerts streamed whole through `listen`: per known song, the time from its start to the first
   decision naming it; songs named that were not playing (false names per hour).
3. Setlists: the generated concerts (5-8 songs, one of them unknown, crowd and talk between songs, one venue
   condition each) through `identify --setlist`: songs found, boundaries within 5 s, unknown songs named,
   wrong songs listed, concerts exactly right. Intervals: 95% bootstrap over concerts (a concert's songs share a
   venue, so they are not independent).

The known songs come from --split (default setlist.concerts.split, the test songs: never trained on); the
setlist settings were chosen on --split val concerts. Prints markdown tables and writes them to --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from resonance.audio import read_audio
from resonance.banks.stage import load_banks
from resonance.config import EmbeddingParams, ServeParams, SimulateParams, load_section
from resonance.config.stream import SetlistParams
from resonance.evaluate.queries import load_queries
from resonance.io import write_report
from resonance.serve.holder import load_served
from resonance.serve.listen import StreamDecider
from resonance.stream.concerts import write_concerts
from resonance.stream.score import score_setlist
from resonance.stream.setlist import setlist


def stream_clips(decider: StreamDecider, clips: list[tuple[np.ndarray, str]], gap: np.ndarray,
                 sr: int) -> list[dict]:
    """Play (audio, true track) clips back to back, each followed by `gap`; per clip: first_correct_s (None:
    never named while it or its gap played), wrong_first (another song named first)."""
    out = []
    for audio, truth in clips:
        start, named = decider.received / sr, []
        for part in (audio, gap):
            for message in decider.feed(part):
                named.append((message["t_s"] - start, message["track_id"]))
        correct = [t for t, track in named if track == truth]
        first_correct = correct[0] if correct else None
        out.append({"first_correct_s": first_correct, "in_clip": first_correct is not None
                    and first_correct <= audio.size / sr + 1e-6,
                    "wrong_first": bool(named) and named[0][1] != truth})
    return out


def stream_concerts(served, serve: ServeParams, concerts: list, folder: Path, sr: int) -> list[str]:
    """`listen` over each whole concert: per known song the time from its start to the first decision naming it
    (while it plays, or within one buffer after), and every named song that was not playing (false names)."""
    times, missed, false, hours = [], 0, 0, 0.0
    buffer_s = serve.listen.max_buffer_s
    for concert in concerts:
        decider = StreamDecider(lambda: served, serve.listen)
        named = decider.feed(read_audio(folder / f"{concert.name}.flac", sr)[0])
        hours += concert.duration_s / 3600
        for song in concert.songs:
            if song.track_id is None:
                continue
            hits = [m["t_s"] for m in named if m["track_id"] == song.track_id
                    and song.start_s <= m["t_s"] <= song.end_s + buffer_s]
            if hits:
                times.append(hits[0] - song.start_s)
            else:
                missed += 1
        for m in named:
            playing = {s.track_id for s in concert.songs if s.start_s <= m["t_s"] <= s.end_s + buffer_s}
            false += m["track_id"] not in playing
    t = np.array(times)
    n = len(times) + missed
    return ["## Streaming whole concerts through `listen` (the setlist concerts below, every venue)", "",
            "| known songs | named while playing | median time from the song's start | p90 | false names |",
            "|---|---|---|---|---|",
            f"| {n} | {len(times) / max(n, 1):.1%} | {np.median(t) if t.size else float('nan'):.1f} s | "
            f"{np.percentile(t, 90) if t.size else float('nan'):.1f} s | {false} ({false / hours:.1f} per hour) |",
            ""]


def bootstrap(values: list[tuple[float, float]], seed: int, n: int = 2000) -> tuple[float, float]:
    """95% interval of sum(num) / sum(den) over clusters [(num, den)] resampled with replacement."""
    rng = np.random.default_rng(seed)
    arr = np.array(values, dtype=np.float64)
    picks = rng.integers(0, len(arr), size=(n, len(arr)))
    rates = arr[picks, 0].sum(axis=1) / np.maximum(arr[picks, 1].sum(axis=1), 1)
    return float(np.percentile(rates, 2.5)), float(np.percentile(rates, 97.5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--split", default=None, help="catalog split of the known songs (default: setlist.concerts)")
    ap.add_argument("--concerts", type=int, default=None, help="how many (default: setlist.concerts.n)")
    ap.add_argument("--clips", type=int, default=150, help="test clips streamed (0: skip the streaming part)")
    ap.add_argument("--gap-s", type=float, default=4.0, help="crowd alone after each streamed clip (s)")
    ap.add_argument("--queries", default="data/queries/test")
    ap.add_argument("--folder", default=None, help="where the concerts are rendered (default: data/setlist/SPLIT)")
    ap.add_argument("--out", default="benchmarks/setlist.md")
    args = ap.parse_args()

    p = load_section(args.params, "setlist", SetlistParams)
    c = dataclasses.replace(p.concerts, split=args.split or p.concerts.split, n=args.concerts or p.concerts.n)
    emb = load_section(args.params, "embedding", EmbeddingParams)
    serve = dataclasses.replace(load_section(args.params, "serve", ServeParams), model=emb.model, index=emb.index,
                                calibration=emb.calibration)
    served = load_served(serve, emb)
    method, sr = served.method, served.method.embedder.sr
    banks = load_banks("data/banks")
    lines = ["# Streaming and setlists (`python benchmarks/setlist.py`)", "",
             f"Model `{emb.model}` ({method.model_sha256[:12]}), index `{emb.index}` ({len(method.index.tracks)} "
             f"tracks), decisions every {serve.listen.decide_every_s:g} s on the last "
             f"{serve.listen.max_buffer_s:g} s (streaming) and every {p.step_s:g} s on the last {p.buffer_s:g} s "
             f"(setlists).", ""]

    if args.clips:
        qs = [q for q in load_queries(args.queries) if q.in_catalog and q.length_s == 10.0 and q.snr_db == 0.0
              and q.reverb in ("hall", "arena") and not q.clipping]
        qs = sorted(qs, key=lambda q: (q.excerpt, q.reverb))[::2][: args.clips]
        clips = [(read_audio(Path(args.queries) / q.audio_path, sr)[0], q.track_id) for q in qs]
        bed = banks.beds[0][: int(args.gap_s * sr)]
        level = np.sqrt(np.mean(np.concatenate([a for a, _ in clips]) ** 2)) / np.sqrt(np.mean(bed ** 2)) / 1.41
        t0 = time.perf_counter()
        res = stream_clips(StreamDecider(lambda: served, serve.listen), clips, (bed * level).astype(np.float32), sr)
        secs = time.perf_counter() - t0
        times = np.array([r["first_correct_s"] for r in res if r["in_clip"]])
        lines += ["## Streaming: 10 s test clips at 0 dB crowd with hall or arena reverb, back to back", "",
                  "| clips | named correctly while playing | median time to the correct decision | p90 | "
                  "another song named first | compute |", "|---|---|---|---|---|---|",
                  f"| {len(res)} | {np.mean([r['in_clip'] for r in res]):.1%} | "
                  f"{np.median(times) if times.size else float('nan'):.1f} s | "
                  f"{np.percentile(times, 90) if times.size else float('nan'):.1f} s | "
                  f"{np.mean([r['wrong_first'] for r in res]):.1%} | "
                  f"{secs / (len(res) * (10 + args.gap_s)):.3f} s per s of audio |", "",
                  "Time to decision counts from the clip's start; a decision needs new audio "
                  f"({serve.listen.decide_every_s:g} s), so the first possible one is at that time.", ""]

    folder = Path(args.folder or f"data/setlist/{c.split}")
    sim = load_section(args.params, "simulate", SimulateParams)
    concerts = write_concerts(c, sim, banks, Path("data/catalog"), Path("data/outside"), folder)
    rows, t0, audio_s = [], time.perf_counter(), 0.0
    for concert in concerts:
        audio = read_audio(folder / f"{concert.name}.flac", sr)[0]
        audio_s += audio.size / sr
        rows.append((concert, score_setlist(concert, setlist(method, audio, sr, p))))
    secs = time.perf_counter() - t0
    lines += stream_concerts(served, serve, concerts, folder, sr)
    lines += [f"## Setlists: {len(concerts)} generated concerts (songs from split `{c.split}`, one unknown song "
              f"each)", "", "| venue | concerts | songs | found | boundaries within 5 s | unknown songs named | "
              "wrong songs listed | concerts exactly right |", "|---|---|---|---|---|---|---|---|"]
    groups = [(f"{snr:+g} dB", [r for r in rows if r[0].snr_db == snr]) for snr in c.snr_db]
    for name, group in groups + [("all", rows)]:
        if not group:
            continue
        s = [x for _, x in group]
        known, found = sum(x.known for x in s), sum(x.found for x in s)
        lo, hi = bootstrap([(x.found, x.known) for x in s], c.seed)
        blo, bhi = bootstrap([(x.bounded, x.found) for x in s], c.seed)
        lines.append(f"| {name} | {len(s)} | {known} | {found / known:.1%} [{lo:.0%}, {hi:.0%}] | "
                     f"{sum(x.bounded for x in s) / max(found, 1):.1%} [{blo:.0%}, {bhi:.0%}] of found | "
                     f"{sum(x.unknown_named for x in s)} of {sum(x.unknown for x in s)} | {sum(x.wrong for x in s)} | "
                     f"{sum(x.exact for x in s)} |")
    lines += ["", f"Setlist compute: {secs / audio_s:.3f} s per s of audio ({audio_s / 60:.0f} min of concerts in "
              f"{secs:.0f} s). Concert audio and truth: `{folder}/`."]
    write_report(Path(args.out), lines)


if __name__ == "__main__":
    main()
