"""`resonance listen`: decisions while audio streams in, from a file, stdin or a microphone, one JSON line each.

The audio is decoded by ffmpeg into 16-bit mono PCM at the model's rate and read incrementally; the decisions
are WS /listen's (`resonance.serve.listen.StreamDecider`: every `serve.listen.decide_every_s` seconds on the last
`serve.listen.max_buffer_s`), so a file played through `listen` and the same audio streamed to the service give
the same lines. `--realtime` plays a file at its own speed (ffmpeg `-re`), as a live source would arrive.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

CHUNK_S = 0.25  # seconds of audio read at a time


def ffmpeg_command(source: str, sr: int, realtime: bool, raw_format: str | None, raw_rate: int | None,
                   mic: str | None) -> list[str]:
    """The ffmpeg command that turns `source` ("-" = stdin; any container, or raw PCM with raw_format and
    raw_rate; or a capture device `mic` such as "alsa:default" / "pulse:default") into s16le mono at `sr` on
    stdout."""
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error"]
    if realtime:
        cmd.append("-re")
    if mic is not None:
        fmt, _, device = mic.partition(":")
        cmd += ["-f", fmt, "-i", device or "default"]
    elif source == "-":
        if raw_format is not None:
            cmd += ["-f", raw_format, "-ar", str(raw_rate), "-ac", "1"]
        cmd += ["-i", "pipe:0"]
    else:
        cmd += ["-nostdin", "-i", source]
    return cmd + ["-vn", "-f", "s16le", "-acodec", "pcm_s16le", "-ac", "1", "-ar", str(sr), "pipe:1"]


def pcm_chunks(cmd: list[str], sr: int, from_stdin: bool, label: str | None = None) -> Iterator[bytes]:
    """Run ffmpeg and yield its PCM output about CHUNK_S seconds at a time; AudioError with ffmpeg's message when
    the input cannot be decoded (nothing at all, or ffmpeg failing); `label` names the input in it."""
    from resonance.audio import AudioError

    try:
        proc = subprocess.Popen(cmd, stdin=sys.stdin.buffer if from_stdin else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise AudioError("ffmpeg is not installed (scripts/setup.sh installs it)") from None
    assert proc.stdout is not None and proc.stderr is not None
    size, total = int(CHUNK_S * sr) * 2, 0
    try:
        while True:
            data = proc.stdout.read(size)
            if not data:
                break
            total += len(data)
            yield data
    finally:
        if proc.poll() is None:
            proc.kill()
        err = proc.stderr.read().decode(errors="replace").strip()
        code = proc.wait()
    if code != 0 or total == 0:
        last = err.splitlines()[-1] if err else "no audio in the input"
        raise AudioError(f"{label or cmd[cmd.index('-i') + 1]}: cannot decode ({last})")


def listen(decider: Any, chunks: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    """The messages of a StreamDecider fed with `chunks` of s16le PCM, and its final decision at the end."""
    for data in chunks:
        yield from decider.feed(decider.samples(data))
    yield decider.decide(final=True)
