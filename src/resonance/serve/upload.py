"""Audio uploads: read the body under a size limit, take the file out of a multipart form, and check the content
by decoding it with ffmpeg (never by its name or declared type).

A mono PCM WAV or FLAC at the model's rate is decoded in memory (libsndfile); anything else goes to ffmpeg in a
private temp folder (mode 0700, `tempfile.mkdtemp`) that is removed before the answer is sent. Decoding mirrors `resonance.audio.decode` (mono float32 at the model's rate,
ffmpeg's default resampler) with `-t` bounding the work, so an accepted upload gives exactly the samples
`resonance identify` would decode from the same file.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resonance.config.serve import ServeParams
from resonance.serve.errors import ApiError

DRAIN_FACTOR = 4  # an oversized body is read and dropped up to this many times the limit, so the client sees 413
RAW_TYPES = ("application/octet-stream", "audio/", "video/")  # besides multipart/form-data (and no type at all)


@dataclass(frozen=True)
class Upload:
    """An uploaded file: its bytes, and the file name the client gave (None for a raw body); the name is only
    reported back, never used to decide what the content is."""

    data: bytes
    filename: str | None


async def read_body(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    """The whole request body from its chunks; ApiError 413 past `limit` bytes (the rest is drained first, up to
    DRAIN_FACTOR x limit, so that the client reads the answer instead of a reset connection)."""
    too_big = ApiError(413, "too_large", f"the request body is larger than the {limit:,}-byte limit "
                                         f"(serve.max_upload_bytes): send a shorter clip")
    if declared is not None and declared.strip().isdigit() and int(declared) > DRAIN_FACTOR * limit:
        raise too_big
    body, seen = bytearray(), 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen <= limit:
            body += chunk
        elif seen > DRAIN_FACTOR * limit:
            break
    if seen > limit:
        raise too_big
    return bytes(body)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


async def take_upload(headers: Any, body: bytes, limit: int) -> Upload:
    """The audio file of a request: the one file of a multipart/form-data body (field `file`, or the only file),
    or the raw body (application/octet-stream, audio/*, video/* or no content type). ApiError 415 for any other
    content type, 400 for an empty body or a form without a file."""
    kind = media_type(headers.get("content-type"))
    if kind == "multipart/form-data":
        upload = await _from_form(headers, body, limit)
    elif kind == "" or kind.startswith(RAW_TYPES):
        upload = Upload(body, None)
    else:
        raise ApiError(415, "unsupported_media_type", f"content type {kind!r} is not an audio upload: send the file "
                                                      f"as multipart/form-data (field `file`) or as the raw body "
                                                      f"(application/octet-stream or audio/*)")
    if not upload.data:
        raise ApiError(400, "empty_body", "the upload is empty (0 bytes): send an audio file")
    return upload


async def _from_form(headers: Any, body: bytes, limit: int) -> Upload:
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream() -> AsyncIterator[bytes]:
        yield body

    parser = MultiPartParser(headers, stream(), max_files=1, max_fields=8, max_part_size=limit)
    parser.spool_max_size = limit + 1  # the whole file stays in memory (the body is already under the limit)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ApiError(400, "bad_form", f"malformed multipart/form-data body: {exc.message}") from None
    try:
        files = [(k, v) for k, v in form.multi_items() if isinstance(v, UploadFile)]
        if not files:
            raise ApiError(400, "empty_body", "the form carries no file: send the audio in a field named `file`")
        _, item = next(((k, v) for k, v in files if k == "file"), files[0])
        data = await item.read()
        return Upload(data, item.filename)
    finally:
        await form.close()


@dataclass(frozen=True)
class StreamFormat:
    """The upload's first audio stream as decoded: sample_rate_hz and channels (before resampling and mixing)."""

    sample_rate_hz: int
    channels: int


def _clean(message: str, path: Path) -> str:
    return message.replace(str(path.parent), "").replace("/upload", "upload").strip()


def _wav_format(path: Path) -> StreamFormat | None:
    """Channels and rate from the fmt chunk of the WAV ffmpeg wrote (None when there is none)."""
    import struct

    try:
        data = path.read_bytes()
    except OSError:
        return None
    pos = 12
    while data[:4] == b"RIFF" and pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if cid == b"fmt " and size >= 16:
            _, channels, rate = struct.unpack("<HHI", data[pos + 8:pos + 16])
            return StreamFormat(rate, channels)
        pos += 8 + size + (size & 1)
    return None


def check_format(found: StreamFormat, p: ServeParams) -> None:
    """ApiError 422 when the stream's rate or channel count is outside what the service accepts."""
    if found.channels < 1 or found.channels > p.max_channels:
        raise ApiError(422, "unsupported_channels", f"{found.channels}-channel audio: send mono or up to "
                                                    f"{p.max_channels} channels (serve.max_channels)")
    if not p.min_sample_rate_hz <= found.sample_rate_hz <= p.max_sample_rate_hz:
        raise ApiError(422, "unsupported_sample_rate",
                       f"audio at {found.sample_rate_hz} Hz: send {p.min_sample_rate_hz}-{p.max_sample_rate_hz} Hz "
                       f"(the model listens up to 8 kHz, so below {p.min_sample_rate_hz} Hz half of what it needs "
                       f"is missing)")


def decode_file(path: Path, sr: int, p: ServeParams) -> np.ndarray:
    """Mono float32 (n_samples,) at `sr` of the file at `path`, as `resonance.audio.decode` gives it, but at most
    max_duration_s + 1 s decoded. One ffmpeg run with two outputs: the samples on stdout, and the first frame of
    the stream, untouched, as a WAV beside the file (its header gives the stream's own rate and channels).
    ApiError 415 when ffmpeg cannot read it or it has no audio, 422 when its format is refused or it holds no,
    non-finite, or too many seconds of samples."""
    from resonance.audio import AudioError, require_tool

    try:
        tool = require_tool("ffmpeg")
    except AudioError as exc:
        raise RuntimeError(str(exc)) from None  # a broken install, not a bad request: 500 and logged
    head = path.with_name("head.wav")
    cmd = [tool, "-nostdin", "-v", "error", "-i", str(path),
           "-map", "0:a:0", "-ac", "1", "-ar", str(sr), "-t", f"{p.max_duration_s + 1.0:.3f}", "-f", "f32le", "pipe:1",
           "-map", "0:a:0", "-frames:a", "1", "-c:a", "pcm_f32le", "-f", "wav", str(head)]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=p.decode_timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ApiError(422, "decode_timeout", f"decoding the upload took over {p.decode_timeout_s:g} s") from None
    lines = proc.stderr.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0:
        if any("matches no streams" in line for line in lines):
            raise ApiError(415, "not_audio", "the upload has no audio stream (an image, a text, a video without "
                                             "sound?): send an audio recording")
        reason = next((_clean(line, path) for line in lines if "Invalid data" in line), None)
        raise ApiError(415, "undecodable", "not an audio file ffmpeg can read (corrupt or unknown format): "
                                           + (reason or (_clean(lines[-1], path) if lines else
                                                         f"ffmpeg exit {proc.returncode}")))
    found = _wav_format(head)
    if found is None:
        raise ApiError(415, "undecodable", "ffmpeg found no decodable audio frame in the upload")
    check_format(found, p)
    return check_samples(np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32), sr, p)


def check_samples(audio: np.ndarray, sr: int, p: ServeParams) -> np.ndarray:
    """audio (n_samples,) at sr, or ApiError 422 when it holds no, non-finite, or too many seconds of samples."""
    if audio.size == 0:
        raise ApiError(422, "empty_audio", "the file decodes to 0 samples of audio (0 s long)")
    if not np.all(np.isfinite(audio)):
        raise ApiError(422, "non_finite_samples", "the audio has NaN or infinite samples")
    if audio.size > int(round(p.max_duration_s * sr)):
        raise ApiError(422, "too_long", f"the audio is longer than {p.max_duration_s:g} s (serve.max_duration_s): "
                                        f"send a shorter clip (a few seconds are enough)")
    return audio


def decode_in_memory(data: bytes, sr: int, p: ServeParams) -> np.ndarray | None:
    """The samples of a mono PCM WAV or FLAC upload already at `sr`, decoded in memory by libsndfile (no ffmpeg
    process: it costs about 70 ms to start), or None for anything else (ffmpeg then decodes it). For these files
    ffmpeg does no resampling nor mixing, so both give the same samples (PCM / 2^(bits-1) as float32)."""
    import io

    import soundfile as sf

    try:
        with sf.SoundFile(io.BytesIO(data)) as fh:
            if (fh.format not in ("WAV", "FLAC") or fh.channels != 1 or fh.samplerate != sr
                    or not fh.subtype.startswith("PCM_") or fh.subtype == "PCM_U8"):
                return None
            audio = fh.read(min(fh.frames, int(round((p.max_duration_s + 1.0) * sr))), dtype="float32")
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError):
        return None  # not a file libsndfile reads whole: ffmpeg decides (and names the problem)
    return check_samples(np.ascontiguousarray(audio, dtype=np.float32), sr, p)


def decode_upload(data: bytes, sr: int, p: ServeParams) -> np.ndarray:
    """The upload's samples: in memory for a mono PCM WAV/FLAC at `sr` (`decode_in_memory`), else through ffmpeg:
    write the bytes into a private temp folder, decode them (`decode_file`), and remove the folder."""
    fast = decode_in_memory(data, sr, p)
    if fast is not None:
        return fast
    folder = Path(tempfile.mkdtemp(prefix="resonance-upload-"))
    try:
        path = folder / "upload"  # no suffix: ffmpeg tells the format from the content
        path.write_bytes(data)
        return decode_file(path, sr, p)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
