"""POST /identify/embeddings: the on-device hand-off (no audio leaves the phone).

The device runs the model's ONNX export on 1 s windows cut every `query_hop_s` seconds of its clip (window i
starts at i * query_hop_s), computes each window's usable flag (`resonance.index.usable`), and sends the unit
embeddings (m, dim) with the flags and the clip's duration. The server checks the payload, then runs the same
decision as the audio path (`EmbeddingMethod.evidence` + `decide`), so the answer equals `POST /identify` of the
same clip up to the ONNX-vs-torch difference of the embeddings. GET /version lists what the device needs
(sr, window_s, query_hop_s, dim, the usable rule, the model's sha256).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from resonance.config.serve import ServeParams
from resonance.index.method import EmbeddingMethod, Match
from resonance.serve.errors import ApiError


class EmbeddingsRequest(BaseModel):
    """The JSON body of POST /identify/embeddings."""

    model_config = ConfigDict(extra="forbid")

    embeddings: list[list[float]] = Field(description="(m, dim) unit-norm window embeddings from the model's ONNX "
                                                      "export; window i starts at i * query_hop_s s of the clip")
    usable: list[bool] | None = Field(None, description="(m,) per-window usable flags (the silence rule of "
                                                        "/version device.usable); omitted: every window counts")
    duration_s: float | None = Field(None, description="the clip's length (s); omitted: the windows' span, "
                                                       "window_s + (m - 1) * query_hop_s")
    hop_s: float | None = Field(None, description="the hop the windows were cut at; must be the model's "
                                                  "query_hop_s when given")
    model_sha256: str | None = Field(None, description="the sha256 of the model that made the embeddings (/version "
                                                       "model.sha256); a mismatch is 409, not a wrong answer")


def parse(body: bytes) -> EmbeddingsRequest:
    """The request from its JSON body; ApiError 400 for empty or non-JSON bodies, 422 for the wrong shape."""
    if not body.strip():
        raise ApiError(400, "empty_body", "the request body is empty: send a JSON object with `embeddings`")
    try:
        return EmbeddingsRequest.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0].get("type") == "json_invalid":
            raise ApiError(400, "invalid_json", f"the body is not valid JSON: {errors[0].get('msg')}") from None
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in errors[:5]]
        raise ApiError(422, "invalid_payload", "; ".join(problems)) from None


def windows_for(n_samples: int, window: int, sr: int, hop_s: float) -> int:
    """Query windows in a clip of n_samples (the count `EmbeddingMethod.recognize_prefixes` uses)."""
    if n_samples < window:
        return 0
    return 1 + int(round((n_samples - window) / sr * 1e6)) // int(round(hop_s * 1e6))


def check(req: EmbeddingsRequest, method: EmbeddingMethod, p: ServeParams) -> tuple[np.ndarray, np.ndarray, float]:
    """(queries (m, dim) float32, usable (m,) bool, length_s) of a request; ApiError 422 (409 for another model)
    when the payload does not fit the served model or the limits."""
    e, hop_s = method.embedder, method.config.query_hop_s
    if req.model_sha256 is not None and req.model_sha256 != method.model_sha256:
        raise ApiError(409, "model_mismatch", f"the embeddings come from model {req.model_sha256[:12]}..., the "
                                              f"service runs {method.model_sha256[:12]}...: fetch the current "
                                              f"model (GET /version) or send audio")
    if req.hop_s is not None and not abs(req.hop_s - hop_s) <= 1e-9:  # NaN is wrong too
        raise ApiError(422, "wrong_hop", f"windows cut every {req.hop_s:g} s; the model's query hop is {hop_s:g} s")
    m = len(req.embeddings)
    if m > p.max_windows:
        raise ApiError(422, "too_many_windows", f"{m} windows, at most {p.max_windows} (serve.max_windows)")
    bad = [i for i, row in enumerate(req.embeddings) if len(row) != e.dim]
    if bad:
        raise ApiError(422, "wrong_dim", f"window {bad[0]} has {len(req.embeddings[bad[0]])} values; the model's "
                                         f"embeddings have dim {e.dim}")
    queries = np.asarray(req.embeddings, dtype=np.float64).reshape(m, e.dim)
    if not np.all(np.isfinite(queries)):
        raise ApiError(422, "non_finite", "the embeddings hold NaN or infinite values")
    norms = np.linalg.norm(queries, axis=1)
    off = np.flatnonzero(np.abs(norms - 1.0) > p.norm_tolerance)
    if off.size:
        raise ApiError(422, "not_unit_norm", f"window {int(off[0])} has L2 norm {norms[off[0]]:.4f}; embeddings are "
                                             f"unit vectors (tolerance {p.norm_tolerance:g})")
    usable = np.ones(m, dtype=bool) if req.usable is None else np.asarray(req.usable, dtype=bool)
    if usable.shape != (m,):
        raise ApiError(422, "usable_mismatch", f"{usable.size} usable flags for {m} windows")
    if req.duration_s is None:
        length_s = e.window_s + (m - 1) * hop_s if m else 0.0
    else:
        length_s = float(req.duration_s)
        if not np.isfinite(length_s) or length_s < 0:
            raise ApiError(422, "bad_duration", f"duration_s must be a finite number >= 0, got {req.duration_s}")
        if length_s > p.max_duration_s:
            raise ApiError(422, "too_long", f"a {length_s:g} s clip; at most {p.max_duration_s:g} s "
                                            f"(serve.max_duration_s)")
        expected = windows_for(int(round(length_s * e.sr)), e.model.window, e.sr, hop_s)
        if expected != m:
            raise ApiError(422, "duration_mismatch", f"a {length_s:g} s clip has {expected} windows at the "
                                                     f"{hop_s:g} s hop, the request has {m}")
    if length_s > p.max_duration_s:
        raise ApiError(422, "too_long", f"a {length_s:g} s clip; at most {p.max_duration_s:g} s "
                                        f"(serve.max_duration_s)")
    return queries.astype(np.float32), usable, length_s


def decide(method: EmbeddingMethod, queries: np.ndarray, usable: np.ndarray, length_s: float) -> Match:
    """The decision on device-made windows: the same path as `EmbeddingMethod.recognize` after embedding."""
    return method.decide(method.evidence(queries, usable), int(queries.shape[0]), length_s)
