"""Audio uploads: read the body under a size limit, take the file out of a multipart form, and check the content
by decoding it (never by its name or declared type), all in memory: no temp file, no subprocess.

A mono PCM WAV or FLAC at the model's rate is read by libsndfile (nothing to convert: PCM / 2^(bits-1) as
float32, what ffmpeg gives too; ~0.2 ms for 5 s, 10x faster than PyAV). Anything else is decoded in this process
by PyAV: the first audio stream, mixed to mono and resampled to the model's rate as float32 by libswresample,
the resampler of the ffmpeg CLI, which is what `resonance.audio.decode` (`resonance identify`) runs. Measured
against it on a 5 s chirp with harmonics and noise: the same length, bit-exact samples for 44.1 kHz stereo WAV,
48 kHz stereo FLAC and MP3, within 3e-7 (float rounding) for Vorbis, AAC and Opus; the tests allow 1e-4 and
4 samples (the `av` wheel bundles its own FFmpeg, 8.1 for av 18.1, which need not be the system's ffmpeg).
A 5 s 44.1 kHz stereo WAV decodes in ~4 ms and a 5 s MP3 in ~8 ms (median), against ~80 ms for an ffmpeg run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
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
    """The samples (n_samples,) float32 of a mono PCM WAV or FLAC upload already at `sr` Hz, read by libsndfile, or
    None for anything else (PyAV then decodes it). Nothing is resampled nor mixed, so these are exactly the
    samples ffmpeg gives (PCM / 2^(bits-1) as float32); libsndfile is also ~10x faster than PyAV on them."""
    import io

    import soundfile as sf

    if data[:4] not in (b"RIFF", b"RIFX", b"fLaC"):
        return None  # not worth asking libsndfile (it would parse an MP3 or OGG header, noisily, for nothing)
    try:
        with sf.SoundFile(io.BytesIO(data)) as fh:
            if (fh.format not in ("WAV", "FLAC") or fh.channels != 1 or fh.samplerate != sr
                    or not fh.subtype.startswith("PCM_") or fh.subtype == "PCM_U8"):
                return None
            audio = fh.read(min(fh.frames, int(round((p.max_duration_s + 1.0) * sr))), dtype="float32")
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError):
        return None  # not a file libsndfile reads whole: PyAV decides (and names the problem)
    return check_samples(np.ascontiguousarray(audio, dtype=np.float32), sr, p)


def _reason(exc: BaseException) -> str:
    """FFmpeg's own words for a PyAV error, without the errno and the '<none>' file name."""
    return str(getattr(exc, "strerror", None) or exc or type(exc).__name__)


def _open_options(data: bytes) -> dict[str, str]:
    """FFmpeg's demuxer options for the upload: a WAV's PCM is taken as its header says. By default FFmpeg reads
    up to 2500 packets (5 MB) of it to check it is not MP3 or S/PDIF in disguise, which costs ~4 ms per second of
    44.1 kHz stereo (20 ms of a 5 s clip, more than all of its decoding)."""
    is_wav = data[:4] in (b"RIFF", b"RIFX", b"RF64") and data[8:12] == b"WAVE"
    return {"max_probe_packets": "1"} if is_wav else {}


def decode_av(data: bytes, sr: int, p: ServeParams) -> np.ndarray:
    """Mono float32 (n_samples,) at `sr` Hz of the upload's bytes, decoded in memory by PyAV as
    `resonance.audio.decode` decodes a file (first audio stream, libswresample's default mixing and resampling),
    but at most max_duration_s + 1 s of output. Work is bounded by size (the body limit), by that output length,
    and in time: past serve.decode_timeout_s (checked after every packet; opening and probing the container is
    bounded by the body size alone) decoding stops. ApiError 415 when FFmpeg cannot read it or it has no audio
    stream, 422 when its format (the stream's own rate and channel count, before resampling) is refused, when it
    holds no, non-finite, or too many seconds of samples, or when it takes too long. A packet that does not
    decode is skipped, as the ffmpeg CLI does, and a truncated file gives the audio before the cut."""
    import io
    import time

    try:
        import av
    except ImportError as exc:
        raise RuntimeError(f"PyAV is not importable ({exc}): run `make setup`") from None  # a broken install: 500
    deadline = time.monotonic() + p.decode_timeout_s
    limit = int(round((p.max_duration_s + 1.0) * sr))
    chunks: list[np.ndarray] = []
    n_out, skipped = 0, None

    def take(frames: list[Any]) -> None:
        nonlocal n_out
        for out in frames:
            chunks.append(out.to_ndarray().reshape(-1))
            n_out += out.samples

    try:
        with av.open(io.BytesIO(data), mode="r", options=_open_options(data), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise ApiError(415, "not_audio", "the upload has no audio stream (an image, a text, a video "
                                                 "without sound?): send an audio recording")
            stream = container.streams.audio[0]
            ctx = stream.codec_context
            if ctx.sample_rate > 0 and ctx.channels > 0:  # the header's word first: refuse before any decoding
                check_format(StreamFormat(ctx.sample_rate, ctx.channels), p)
            resampler, key, seen_frame = None, None, False
            packets = container.demux(stream)
            while n_out < limit:
                if time.monotonic() > deadline:
                    raise ApiError(422, "decode_timeout", f"decoding the upload took over "
                                                          f"{p.decode_timeout_s:g} s (serve.decode_timeout_s)")
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.error.FFmpegError as exc:  # a cut or corrupt container: its end (as the CLI does)
                    skipped = skipped or exc
                    break
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as exc:  # one bad packet: skipped (as the CLI does)
                    skipped = skipped or exc
                    continue
                for frame in frames:
                    seen_frame = True
                    if (frame.format.name, frame.layout.name, frame.sample_rate) != key:  # first, or it changed
                        check_format(StreamFormat(frame.sample_rate, frame.layout.nb_channels), p)
                        if resampler is not None:
                            take(resampler.resample(None))
                        key = (frame.format.name, frame.layout.name, frame.sample_rate)
                        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
                    take(resampler.resample(frame))
            if resampler is not None and n_out < limit:
                take(resampler.resample(None))  # the resampler's delay line: the last few ms
    except av.error.FFmpegError as exc:
        raise ApiError(415, "undecodable", f"not an audio file FFmpeg can read (corrupt or unknown format): "
                                           f"{_reason(exc)}") from None
    except (ValueError, TypeError, OSError, EOFError) as exc:  # anything else PyAV raises on odd input
        raise ApiError(415, "undecodable", f"the upload could not be decoded: {_reason(exc)}") from None
    if not seen_frame and (skipped is not None or not (ctx.sample_rate > 0 and ctx.channels > 0)):
        raise ApiError(415, "undecodable", "FFmpeg found no decodable audio frame in the upload"
                                           + (f": {_reason(skipped)}" if skipped is not None else ""))
    audio = np.concatenate(chunks)[:limit] if chunks else np.zeros(0, dtype=np.float32)
    return check_samples(np.ascontiguousarray(audio, dtype=np.float32), sr, p)


def decode_upload(data: bytes, sr: int, p: ServeParams) -> np.ndarray:
    """The upload's samples (n_samples,) float32 at `sr` Hz: libsndfile for a mono PCM WAV/FLAC at `sr`
    (`decode_in_memory`), PyAV for anything else (`decode_av`); both in memory."""
    fast = decode_in_memory(data, sr, p)
    return fast if fast is not None else decode_av(data, sr, p)
