"""`resonance index build|add` and `resonance identify`: build the reference index, add files to it, name songs.

`identify` answers with the model, the index and the model's calibration (`resonance calibrate`): one JSON object
per file (see `identify_files` for the fields and `docs/identify.md` for what confidence means).

Every write goes through `EmbeddingIndex.save` (whole folder, swapped in atomically) under an exclusive lock
file beside the index (`.NAME.lock`), so two writers never lose each other's tracks. Audio files of any format
are decoded with ffmpeg to mono float32 at the model's sample rate.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from resonance.audio import AudioError
from resonance.config.embedding import EmbeddingParams
from resonance.errors import ResonanceError
from resonance.index.method import EmbeddingMethod, Match
from resonance.index.store import EmbeddingIndex

SILENCE_DBFS = -60.0  # a file whose whole-file RMS is below this is silent (nothing to index)


class IndexInputError(ResonanceError):
    """Bad input to `index add` (mismatched ids/titles, duplicate ids) or a catalog the model cannot index."""


@contextlib.contextmanager
def _write_lock(index_dir: Path) -> Iterator[None]:
    """An exclusive advisory lock for writers of `index_dir` (readers never wait: they see whole saves)."""
    import fcntl

    index_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(index_dir.parent / f".{index_dir.name}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _method(model_source: str | Path, params: EmbeddingParams) -> EmbeddingMethod:
    """The model loaded into an EmbeddingMethod configured by `params` (no index, no calibration yet)."""
    from resonance.model.embedder import Embedder, load_model

    return EmbeddingMethod(Embedder(load_model(model_source), batch=params.batch), params)


def _folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 1e6


def build_from_catalog(model_source: str | Path, catalog_dir: Path, out_dir: Path, progress: bool,
                       params: EmbeddingParams) -> dict[str, Any]:
    """Embed every catalog track (at embedding.reference_hop_s, silent windows masked) into a new index at `out_dir`,
    replacing any old one. Returns a summary: tracks, windows, masked (silent windows left out), hours (of
    reference audio), mb (index on disk), seconds, out.
    """
    from resonance.audio import read_audio
    from resonance.catalog.manifest import load_manifest
    from resonance.progress import progress as progress_bar

    t0 = time.perf_counter()
    tracks = load_manifest(catalog_dir)
    method = _method(model_source, params)
    rates = {t.sample_rate for t in tracks} - {method.embedder.sr}
    if rates:
        raise IndexInputError(f"{catalog_dir}: tracks at {sorted(rates)} Hz, the model works at "
                              f"{method.embedder.sr} Hz: rebuild the catalog or train at that rate")
    index = method.new_index()
    method._index = index
    seconds = 0.0
    bar = progress_bar(tracks, desc="index build", unit="track", disable=not progress)
    for t in bar:
        audio = read_audio(catalog_dir / t.audio_path, t.sample_rate)[0]
        method.add(t.track_id, audio, title=t.title, source="catalog")
        seconds += audio.size / t.sample_rate
        bar.set_postfix(windows=index.n_windows, refresh=False)
    with _write_lock(out_dir):
        index.save(out_dir)
    slots = sum(t.n_slots for t in index.tracks)
    return {"tracks": len(index.tracks), "windows": index.n_windows, "masked": slots - index.n_windows,
            "hours": seconds / 3600, "mb": _folder_mb(out_dir), "seconds": time.perf_counter() - t0,
            "out": str(out_dir)}


def describe_build(summary: dict[str, Any]) -> str:
    """One line for the terminal."""
    return (f"index build: {summary['tracks']} tracks, {summary['windows']:,} windows ({summary['masked']:,} silent "
            f"ones masked), {summary['hours']:.1f} h of audio, {summary['mb']:.1f} MB, {summary['seconds']:.0f} s "
            f"-> {summary['out']}")


def _read_reference(path: Path, sr: int, window: int) -> np.ndarray:
    """A file to index as mono float32 (n_samples,) at `sr`; AudioError naming it when unusable."""
    from resonance.audio import decode

    try:
        audio = decode(path, sr)
    except AudioError as exc:
        message = str(exc)
        raise AudioError(message if message.startswith(str(path)) else f"{path}: {message}") from None
    if audio.size < window:
        raise AudioError(f"{path}: {audio.size / sr:.2f} s of audio, shorter than one {window / sr:g} s window")
    rms_db = 10 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-20)
    if rms_db < SILENCE_DBFS:
        raise AudioError(f"{path}: silent (RMS {rms_db:.0f} dBFS < {SILENCE_DBFS:g}): nothing to index")
    return audio


def _title(path: Path) -> str:
    from resonance.audio import probe_tags

    return probe_tags(path).get("title") or path.stem


def add_files(paths: Sequence[str | Path], ids: Sequence[str | None] | None, titles: Sequence[str | None] | None,
              model_source: str | Path, index_dir: Path, params: EmbeddingParams) -> dict[str, Any]:
    """Index audio files (any format ffmpeg reads) into `index_dir`, creating the index if there is none.

    Track id: `ids[i]` or the file stem; title: `titles[i]`, the file's title tag, or the stem. An id already
    indexed is replaced. Every file is read and checked first: one unreadable, too short (< 1 window) or silent
    file raises AudioError naming it, and nothing is written. Returns added, replaced, tracks, windows, index.
    """
    paths = [Path(p) for p in paths]
    ids = list(ids) if ids is not None else [None] * len(paths)
    titles = list(titles) if titles is not None else [None] * len(paths)
    if len(ids) != len(paths) or len(titles) != len(paths):
        raise IndexInputError(f"index add: {len(paths)} file(s) but {len(ids)} id(s) and {len(titles)} title(s)")
    track_ids = [i or p.stem for i, p in zip(ids, paths)]
    dupes = sorted({t for t in track_ids if track_ids.count(t) > 1})
    if dupes:
        raise IndexInputError(f"index add: track id(s) {dupes} given to more than one file (pass distinct --id)")
    method = _method(model_source, params)
    sr, window = method.embedder.sr, method.embedder.model.window
    audio = [_read_reference(p, sr, window) for p in paths]  # all checked before anything is written
    for path, a in zip(paths, audio):
        if not method.usable(a, method.config.reference_hop_s or method.embedder.hop_s).any():
            raise AudioError(f"{path}: no window of it is loud enough to index (all silent or near-silent)")
    names = [t or _title(p) for t, p in zip(titles, paths)]
    with _write_lock(index_dir):
        if (index_dir / "index.json").is_file():
            method._index = EmbeddingIndex.load(index_dir, method.model_sha256)
        else:
            method._index = method.new_index()
        replaced = [t for t in track_ids if method.index.position(t) is not None]
        for track_id, a, title, path in zip(track_ids, audio, names, paths):
            method.add(track_id, a, title=title, source=str(path.resolve()))
        method.index.save(index_dir)
    return {"added": track_ids, "replaced": replaced, "tracks": len(method.index.tracks),
            "windows": method.index.n_windows, "index": str(index_dir)}


def load_recognizer(model_source: str | Path, index_dir: Path, calibration_dir: Path,
                    params: EmbeddingParams) -> EmbeddingMethod:
    """The model, its index and its calibration, loaded once (ModelError / EmbeddingIndexError /
    CalibrationError when one is missing or does not belong to the model)."""
    from resonance.index.calibration import load_calibration

    index_dir, calibration_dir = Path(index_dir), Path(calibration_dir)
    if not (index_dir / "index.json").is_file():
        EmbeddingIndex.load(index_dir)  # raises the clear "no index here" error before the slow model load
    load_calibration(calibration_dir)  # likewise: a missing or corrupt calibration is said before loading
    method = _method(model_source, params)
    method.calibration = load_calibration(calibration_dir, method.model_sha256)
    method._index = EmbeddingIndex.load(index_dir, method.model_sha256)
    return method


def identify_files(paths: Sequence[str | Path], model_source: str | Path, index_dir: Path, calibration_dir: Path,
                   params: EmbeddingParams) -> Iterator[dict[str, Any]]:
    """Load the model, index and calibration now (errors raise here), then yield one result per file, in order:
    {file, track_id and title (the answer; None: no match), accepted, confidence (calibrated probability in
    [0, 1] that best_guess is right), offset_s (s, where the clip starts in the song), reason (None for an
    answer, else too_short | silent | no_candidate | below_threshold), best_guess {track_id, title, offset_s} (also
    when not accepted; None when nothing could be judged), runner_up {track_id, title} (the best other song),
    score and threshold (the decision score and this clip length's calibrated threshold), duration_s, latency_ms
    (embedding + search + decision, not decoding)}, or {file, error} for a file that cannot be decoded."""
    method = load_recognizer(model_source, index_dir, calibration_dir, params)
    return _identify_each(method, [Path(p) for p in paths])


def result_row(found: Match, duration_s: float) -> dict[str, Any]:
    """The JSON fields of one recognition (see `identify_files`)."""
    def r4(x: float | None) -> float | None:
        return None if x is None or not np.isfinite(x) else round(float(x), 4)

    guess, runner = found.guess, found.runner_up
    return {"track_id": found.track.track_id if found.track else None,
            "title": found.track.title if found.track else None, "accepted": found.accepted,
            "confidence": round(found.confidence, 4),
            "offset_s": round(found.offset_s, 2) if found.track and found.offset_s is not None else None,
            "reason": found.reason,
            "best_guess": None if guess is None else {"track_id": guess.track_id, "title": guess.title,
                                                      "offset_s": round(found.offset_s or 0.0, 2)},
            "runner_up": None if runner is None else {"track_id": runner.track_id, "title": runner.title},
            "score": r4(found.score), "threshold": r4(found.threshold), "duration_s": round(duration_s, 3)}


def _identify_each(method: EmbeddingMethod, paths: list[Path]) -> Iterator[dict[str, Any]]:
    from resonance.audio import decode

    sr = method.embedder.sr
    for path in paths:
        try:
            audio = decode(path, sr)
        except AudioError as exc:
            yield {"file": str(path), "error": str(exc)}
            continue
        start = time.perf_counter()
        found = method.recognize(audio, sr)
        latency_ms = (time.perf_counter() - start) * 1000.0
        yield {"file": str(path), **result_row(found, audio.size / sr), "latency_ms": round(latency_ms, 1)}


def describe_add(summary: dict[str, Any]) -> str:
    """One line for the terminal."""
    added, replaced = summary["added"], summary["replaced"]
    return (f"index add: {len(added)} track(s) indexed ({len(replaced)} replaced): {', '.join(added)}; the index "
            f"holds {summary['tracks']} tracks, {summary['windows']:,} windows -> {summary['index']}")


def describe_result(result: dict[str, Any]) -> str:
    """One readable line for one `identify_files` result."""
    if "error" in result:
        return f"{result['file']}: error: {result['error']}"
    if result["track_id"] is None:
        why = {"too_short": "shorter than one window", "silent": "silent", "no_candidate": "nothing similar",
               "below_threshold": "not sure enough"}.get(result["reason"] or "", result["reason"])
        guess = result["best_guess"]
        maybe = f"; best guess {guess['title']} [{guess['track_id']}]" if guess else ""
        return (f"{result['file']}: no match ({why}, confidence {result['confidence']:.2f}{maybe}; "
                f"{result['latency_ms']:.0f} ms)")
    minutes, seconds = divmod(result["offset_s"], 60.0)
    return (f"{result['file']}: {result['title']} [{result['track_id']}] at {int(minutes)}:{seconds:04.1f}, "
            f"confidence {result['confidence']:.2f} ({result['latency_ms']:.0f} ms)")
