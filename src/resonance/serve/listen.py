"""WS /listen: decisions while the audio streams in.

Protocol (documented in docs/serve.md):
- optional first text message, a JSON header: {"format": "s16le" | "f32le", "sample_rate": <the model's sr>}
  (default s16le: 16-bit signed little-endian PCM; f32le: 32-bit float little-endian in [-1, 1]); mono only.
- then binary messages of raw PCM, any size (a sample split across two messages is fine);
- a text message {"type": "end"} asks for a final decision on what is buffered; the server answers it and closes.
- the server sends one JSON message per decision worth telling: `result_row`'s fields (the same as POST
  /identify) plus event ("match": a song is named that differs from the last one named; "final": the answer to
  "end"), t_s (s of stream received at the decision), time_to_decision_s (s since the stream started, or since
  the last decision that still named the previous song), buffer_start_s (where in the stream the decided audio
  starts; the song position at t_s is offset_s + t_s - buffer_start_s), model_version, index_build_id and
  latency_ms.
- bad input gets {"error": ..., "detail": ...} and the socket is closed (code 1003 or 1007).

Every `listen.decide_every_s` seconds of audio the server decides on the most recent `listen.max_buffer_s`
seconds: window embeddings are computed once per window and kept (a window's samples never change), the usable
flags and the decision are recomputed on the buffer, so a decision equals `EmbeddingMethod.recognize` of the
buffer. When the served model is swapped mid-stream, the buffer is re-embedded with the new one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from resonance.config.serve import ListenParams
from resonance.serve.holder import Served

FORMATS = {"s16le": ("<i2", 32768.0), "f32le": ("<f4", 1.0)}


class StreamError(Exception):
    """Bad stream input: `error` code, `detail` sentence and the WebSocket close code."""

    def __init__(self, error: str, detail: str, code: int = 1007) -> None:
        super().__init__(detail)
        self.error, self.detail, self.code = error, detail, code


class StreamDecider:
    """The state of one stream: the buffer (mono float32 at the model's sr), its window embeddings, and what was
    said last. `current` returns the Served triple to decide with (the holder's, read at every decision)."""

    def __init__(self, current: Callable[[], Served], p: ListenParams) -> None:
        self.current, self.p = current, p
        self.served = current()
        e = self.served.method.embedder
        self.sr, self.fmt = e.sr, "s16le"
        self.audio = np.zeros(0, dtype=np.float32)
        self.queries = np.zeros((0, e.dim), dtype=np.float32)
        self.received = 0  # samples received in all
        self.start = 0  # stream sample at which the buffer starts
        self.since_decision = 0
        self.named: str | None = None
        self.last_support_s = 0.0
        self._agreement: tuple[str, float, int] | None = None  # (guessed track, alignment s, decisions in a row)
        self._rest = b""

    def control(self, text: str) -> bool:
        """Apply a text message: True for {"type": "end"}, else it is the header (StreamError for a bad one)."""
        try:
            head = json.loads(text)
        except ValueError:
            raise StreamError("bad_header", "the text message is not JSON", 1003) from None
        if not isinstance(head, dict):
            raise StreamError("bad_header", "the header must be a JSON object", 1003)
        if head.get("type") == "end":
            return True
        unknown = sorted(set(head) - {"format", "sample_rate"})
        if unknown:
            raise StreamError("bad_header", f"unknown header key(s) {unknown}; known: format, sample_rate", 1003)
        fmt, rate = head.get("format", self.fmt), head.get("sample_rate", self.sr)
        if not isinstance(fmt, str) or fmt not in FORMATS:
            raise StreamError("bad_format", f"format {fmt!r}; known: {', '.join(FORMATS)}", 1003)
        if rate != self.sr:
            raise StreamError("bad_sample_rate", f"sample_rate {rate!r}: stream mono PCM at {self.sr} Hz "
                                                 f"(resample on the client)", 1003)
        if self.received or self._rest:
            raise StreamError("late_header", "the header must come before the audio", 1003)
        self.fmt = fmt
        return False

    def samples(self, data: bytes) -> np.ndarray:
        """PCM bytes -> float32 samples (a trailing partial sample waits for the next message)."""
        dtype, scale = FORMATS[self.fmt]
        data = self._rest + data
        width = np.dtype(dtype).itemsize
        cut = len(data) - len(data) % width
        self._rest = data[cut:]
        x = np.frombuffer(data[:cut], dtype=dtype).astype(np.float32)
        if scale != 1.0:
            x /= scale
        if not np.all(np.isfinite(x)):
            raise StreamError("non_finite_samples", "the stream has NaN or infinite samples")
        return x

    def feed(self, x: np.ndarray) -> list[dict[str, Any]]:
        """Append samples; a decision every decide_every_s of audio (however the client cut its messages).
        Returns the messages to send."""
        out, every = [], int(round(self.p.decide_every_s * self.sr))
        while x.size:
            take = min(x.size, every - self.since_decision)
            self._append(x[:take])
            x = x[take:]
            if self.since_decision >= every:
                self.since_decision = 0
                message = self.decide(final=False)
                if message is not None:
                    out.append(message)
        return out

    def _append(self, x: np.ndarray) -> None:
        self.audio = np.concatenate([self.audio, x])
        self.received += x.size
        self.since_decision += x.size
        hop = self._hop()
        excess = self.audio.size - int(round(self.p.max_buffer_s * self.sr))
        if excess > 0:
            drop = -(-excess // hop)  # whole hops, so the kept windows stay on the grid
            self.audio = self.audio[drop * hop:]
            self.queries = self.queries[drop:]
            self.start += drop * hop

    def _agree(self, found: Any) -> bool:
        """Count this decision's best guess against the previous ones: True once `agree_decisions` decisions in
        a row guessed the same song at the same alignment (song position minus stream time, within
        agree_tol_s), although none of them needs to clear the threshold (an unknown song's guesses wander)."""
        best = getattr(found.result, "best", None)
        if best is None or found.guess is None or self.p.agree_decisions == 0:
            self._agreement = None
            return False
        align = best.offset_s - self.start / self.sr
        last = self._agreement
        if last is not None and last[0] == found.guess.track_id and abs(last[1] - align) <= self.p.agree_tol_s:
            self._agreement = (last[0], align, last[2] + 1)
        else:
            self._agreement = (found.guess.track_id, align, 1)
        return self._agreement[2] >= self.p.agree_decisions

    def _hop(self) -> int:
        return int(round(self.served.method.config.query_hop_s * self.sr))

    def decide(self, final: bool) -> dict[str, Any] | None:
        """Decide on the buffer; the message to send (None when there is nothing new to say)."""
        from resonance.index.stage import result_row

        t0 = time.perf_counter()
        served = self.current()
        if served is not self.served:  # hot swap: the cached windows belong to the old model
            self.served, self.queries = served, np.zeros((0, served.method.embedder.dim), dtype=np.float32)
        method = served.method
        e, hop = method.embedder, self._hop()
        win = e.model.window
        n = 0 if self.audio.size < win else 1 + (self.audio.size - win) // hop
        have = self.queries.shape[0]
        if n > have:
            segment = self.audio[have * hop:(n - 1) * hop + win]
            self.queries = np.concatenate([self.queries, e.embed(segment, method.config.query_hop_s)[: n - have]])
        usable = method.usable(self.audio, method.config.query_hop_s)
        length_s = self.audio.size / self.sr
        found = (method.decide(method.evidence(self.queries[:n], usable[:n]), n, length_s) if n
                 else method.decide(method.evidence(self.queries[:0], usable[:0]), 0, length_s))
        t_s = self.received / self.sr
        track = found.track.track_id if found.accepted and found.track else None
        agreed = self._agree(found)
        if track is None and agreed:
            track = found.guess.track_id
        if track is not None and track == self.named:
            self.last_support_s = t_s
        if not final and (track is None or track == self.named):
            return None
        row = result_row(found, length_s)
        if track is not None and not found.accepted:  # named by agreement: the guess is the answer
            row.update(track_id=track, title=found.guess.title, offset_s=row["best_guess"]["offset_s"],
                       accepted=True, reason=None)
        message = {"event": "final" if final else "match", **row,
                   "decided_by": None if track is None else ("threshold" if found.accepted else "agreement"),
                   "t_s": round(t_s, 3),
                   "time_to_decision_s": round(t_s - self.last_support_s, 3),
                   "buffer_start_s": round(self.start / self.sr, 3), "model_version": served.ref.version,
                   "index_build_id": served.index_build_id,
                   "latency_ms": round((time.perf_counter() - t0) * 1000.0, 1)}
        if track is not None:
            self.named, self.last_support_s = track, t_s
        return message


async def session(ws: Any, current: Callable[[], Served], p: ListenParams, limiter: Any) -> None:
    """Serve one accepted WebSocket (see the module docstring); `limiter` caps concurrent decisions."""
    from starlette.concurrency import run_in_threadpool
    from starlette.websockets import WebSocketDisconnect

    decider = StreamDecider(current, p)

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        async with limiter:
            return await run_in_threadpool(fn, *args)

    try:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            if msg.get("bytes") is not None:
                for out in await run(lambda b: decider.feed(decider.samples(b)), msg["bytes"]):
                    await ws.send_json(out)
                continue
            if decider.control(msg.get("text") or ""):
                await ws.send_json(await run(decider.decide, True))
                await ws.close(1000)
                return
    except StreamError as exc:
        await ws.send_json({"error": exc.error, "detail": exc.detail})
        await ws.close(exc.code)
    except WebSocketDisconnect:
        return
    except Exception as exc:  # noqa: BLE001 - logged; the client still gets a JSON error, the server goes on
        from resonance.serve.errors import log

        log.exception("unexpected error in a /listen stream")
        await ws.send_json({"error": "internal", "detail": f"unexpected {type(exc).__name__}; the server log "
                                                           f"has the details"})
        await ws.close(1011)
