"""A whole concert recording -> the list of songs played, with start and end times (`identify --setlist`).

1. The recording is embedded once (windows every `embedding.query_hop_s`), and each usable window's neighbours
   and background are looked up once (`EmbeddingMethod.evidence`).
2. Every `step_s` seconds the usual decision (sequence search + calibrated open-set threshold) is made on the
   last `buffer_s` seconds, exactly as `resonance identify` would decide a clip of that length (a `Step`).
3. Decisions that name the same song at the same alignment (song position minus recording time, within
   `align_tol_s`) are one performance; accepted decisions open one, and decisions whose best guess is that song
   at that alignment (accepted or not) keep it going across up to `max_gap_s` of others. A performance needs
   `min_accepted` accepted decisions: a single false accept in an unknown song (1% per decision by calibration)
   does not become a song, two aligned ones by chance are far rarer.
4. Its start and end come from the windows themselves: each window's similarity to the reference window aligned
   with it (background-normalised), smoothed over `smooth_s`, must stay above `level` x the performance's median.
   Performances that overlap are cut in the middle of the overlap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from resonance.config.stream import SetlistParams
from resonance.index.method import EmbeddingMethod, Evidence
from resonance.index.sequence import Background, aligned_similarity


@dataclass(frozen=True)
class Step:
    """One decision, made at t_s on the last buffer_s seconds, whose usable (not silent) windows span
    start_s..t_s seconds of the recording; `track` the best guess's position in the index (None: nothing to
    judge); `align_s` the guess's song position minus recording time (s); accepted and confidence as `identify`
    reports them."""

    t_s: float
    start_s: float
    track: int | None
    align_s: float
    accepted: bool
    confidence: float


@dataclass
class _Run:
    track: int
    align_s: float
    steps: list[Step] = field(default_factory=list)

    @property
    def accepted(self) -> list[Step]:
        return [s for s in self.steps if s.accepted]


@dataclass(frozen=True)
class Performance:
    """One song of the setlist: start_s, end_s (s in the recording); song_offset_s: where in the song start_s
    is; confidence: the highest calibrated confidence of its accepted decisions; decisions: how many named it
    (accepted of them: `accepted`)."""

    track_id: str
    title: str
    start_s: float
    end_s: float
    song_offset_s: float
    confidence: float
    decisions: int
    accepted: int

    def to_dict(self) -> dict[str, object]:
        return {"track_id": self.track_id, "title": self.title, "start_s": round(self.start_s, 2),
                "end_s": round(self.end_s, 2), "song_offset_s": round(max(0.0, self.song_offset_s), 2),
                "confidence": round(self.confidence, 4), "decisions": self.decisions, "accepted": self.accepted}


def recording_evidence(method: EmbeddingMethod, audio: np.ndarray) -> Evidence:
    """Embed mono float32 `audio` (n_samples,) at the model's sr once: the Evidence of all its windows."""
    hop = method.config.query_hop_s
    return method.evidence(method.embedder.embed(audio, hop), method.usable(audio, hop))


def _slice(ev: Evidence, a: int, b: int) -> Evidence:
    """The Evidence of windows [a, b) as if they were a query of their own."""
    lo, hi = np.searchsorted(ev.window_idx, [a, b])
    bg = ev.background
    return Evidence(b - a, ev.window_idx[lo:hi] - a, ev.queries[lo:hi],
                    None if ev.scores is None else ev.scores[lo:hi], None if ev.rows is None else ev.rows[lo:hi],
                    None if bg is None else Background(bg.mu[lo:hi], bg.sigma[lo:hi]))


def decide_steps(method: EmbeddingMethod, ev: Evidence, duration_s: float, p: SetlistParams) -> list[Step]:
    """One Step every p.step_s seconds (the last also at the end of the recording) on the last p.buffer_s s."""
    hop, win_s = method.config.query_hop_s, method.embedder.window_s
    times = list(np.arange(p.step_s, duration_s + 1e-9, p.step_s))
    if not times or duration_s - times[-1] > 1e-6:
        times.append(duration_s)
    out = []
    for t in times:
        a = int(np.ceil(max(0.0, t - p.buffer_s) / hop - 1e-6))
        b = min(ev.n_windows, int(np.floor((t - win_s) / hop + 1e-6)) + 1)
        if b - a < 1:
            continue
        found = method.decide(_slice(ev, a, b), b - a, min(t, p.buffer_s))
        best = getattr(found.result, "best", None)
        if best is None:
            out.append(Step(float(t), a * hop, None, 0.0, False, 0.0))
            continue
        lo, hi = np.searchsorted(ev.window_idx, [a, b])  # the evidence: its usable windows only
        first, last = ev.window_idx[lo] * hop, min(float(t), ev.window_idx[hi - 1] * hop + win_s)
        out.append(Step(last, first, int(best.track), float(best.offset_s) - a * hop, bool(found.accepted),
                        float(found.confidence)))
    return out


def group_steps(steps: list[Step], p: SetlistParams) -> list[_Run]:
    """Steps -> performances (runs of aligned decisions; see the module docstring), the listed ones only."""
    runs: list[_Run] = []
    for s in steps:
        if s.track is None:
            continue
        live = [r for r in runs if r.track == s.track and abs(s.align_s - r.align_s) <= p.align_tol_s
                and s.t_s - r.steps[-1].t_s <= p.max_gap_s + p.step_s]
        if live:
            run = live[-1]
            run.steps.append(s)
            run.align_s = float(np.median([x.align_s for x in (run.accepted or run.steps)]))
        else:
            runs.append(_Run(s.track, s.align_s, [s]))
    return runs


def listed(runs: list[_Run], p: SetlistParams) -> list[_Run]:
    """The runs that are songs: enough accepted decisions, or enough aligned guesses."""
    return [r for r in runs if len(r.accepted) >= p.min_accepted or len(r.steps) >= p.min_decisions]


def _smoothed_z(method: EmbeddingMethod, ev: Evidence, run: _Run, p: SetlistParams) -> np.ndarray:
    """(n_windows,) background-normalised similarity of each window to the reference window aligned with it
    under the run's alignment, smoothed over p.smooth_s (NaN where no usable window is near)."""
    hop = method.config.query_hop_s
    z = np.full(ev.n_windows, np.nan)
    if ev.window_idx.size:
        sims = aligned_similarity(method.index, ev.queries, ev.window_idx, np.array([run.track]),
                                  np.array([int(round(run.align_s / hop))]), hop)[0].astype(np.float64)
        if ev.background is not None:
            sims = (sims - ev.background.mu) / ev.background.sigma
        z[ev.window_idx] = np.where(np.isfinite(sims), sims, 0.0)
    width = max(1, int(round(p.smooth_s / hop)))
    have = np.isfinite(z)
    kernel = np.ones(width)
    total = np.convolve(np.where(have, z, 0.0), kernel, mode="same")
    count = np.convolve(have.astype(np.float64), kernel, mode="same")
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _bounds(method: EmbeddingMethod, ev: Evidence, run: _Run, p: SetlistParams) -> tuple[float, float]:
    """(start_s, end_s) of one performance in the recording: the span of the decisions that named it, widened
    outwards while the windows' smoothed aligned similarity stays >= p.level x its median inside that span
    (dips shorter than smooth_s are bridged): a song recognised late still starts where its windows do."""
    hop, win_s = method.config.query_hop_s, method.embedder.window_s
    start_s, end_s = run.steps[0].start_s, run.steps[-1].t_s
    lo, hi = int(round(start_s / hop)), min(ev.n_windows, int((end_s - win_s) / hop) + 1)
    z = np.nan_to_num(_smoothed_z(method, ev, run, p), nan=-np.inf)
    core = z[lo:hi][np.isfinite(z[lo:hi])]
    if not core.size or np.median(core) <= 0:
        return start_s, end_s
    good = z >= p.level * np.median(core)
    bridge = int(round(p.smooth_s / hop))
    first, last = lo, hi - 1
    for direction, edge in ((-1, lo), (1, hi - 1)):
        j, miss = edge + direction, 0
        while 0 <= j < ev.n_windows and miss <= bridge:
            if good[j]:
                miss = 0
                first, last = min(first, j), max(last, j)
            else:
                miss += 1
            j += direction
    return min(start_s, first * hop), max(end_s, last * hop + win_s)


def setlist(method: EmbeddingMethod, audio: np.ndarray, sr: int, p: SetlistParams) -> list[Performance]:
    """The songs in a concert recording (mono float32 (n_samples,) at `sr`, the model's rate), in order."""
    if sr != method.embedder.sr:
        raise ValueError(f"setlist: audio at {sr} Hz, the model works at {method.embedder.sr} Hz")
    ev = recording_evidence(method, np.asarray(audio, dtype=np.float32))
    runs = listed(group_steps(decide_steps(method, ev, audio.size / sr, p), p), p)
    spans = [_bounds(method, ev, r, p) for r in runs]
    order = sorted(range(len(runs)), key=lambda i: spans[i][0])
    runs, spans = [runs[i] for i in order], [list(spans[i]) for i in order]
    merged: list[tuple[list[_Run], list[float]]] = []
    for run, span in zip(runs, spans):  # one song heard as two alignments (a repeated chorus): one performance
        if merged and merged[-1][0][-1].track == run.track and span[0] - merged[-1][1][1] <= p.max_gap_s:
            merged[-1][0].append(run)
            merged[-1][1][1] = max(merged[-1][1][1], span[1])
        else:
            merged.append(([run], span))
    for i in range(1, len(merged)):  # overlapping neighbours: cut in the middle of the overlap
        a, b = merged[i - 1][1], merged[i][1]
        if b[0] < a[1]:
            a[1] = b[0] = 0.5 * (b[0] + a[1])
    out = []
    for group, (start, end) in merged:
        info = method.index.tracks[group[0].track]
        steps = [s for r in group for s in r.steps]
        out.append(Performance(info.track_id, info.title, float(start), float(end),
                               float(start + group[0].align_s), max((s.confidence for s in steps if s.accepted),
                                                                    default=max(s.confidence for s in steps)),
                               len(steps), sum(s.accepted for s in steps)))
    return out
