"""Dataclasses of the `serve` section: the HTTP service (`resonance serve`, `resonance.serve`)."""

from __future__ import annotations

from dataclasses import dataclass

from resonance.config.loader import ParamsError


@dataclass(frozen=True)
class ListenParams:
    """WS /listen: decide_every_s: seconds of new audio between two decisions on the buffer; max_buffer_s: the
    buffer keeps the most recent seconds of the stream (a concert is many songs: old audio drops out);
    agree_decisions: a song below the threshold is still named when this many decisions in a row guessed it at
    the same alignment (within agree_tol_s seconds); 0: the threshold alone."""

    decide_every_s: float
    max_buffer_s: float
    agree_decisions: int
    agree_tol_s: float

    def __post_init__(self) -> None:
        if self.agree_decisions < 0 or self.agree_tol_s <= 0:
            raise ParamsError("serve.listen: need agree_decisions >= 0 and agree_tol_s > 0")
        if not 0 < self.decide_every_s <= self.max_buffer_s:
            raise ParamsError("serve.listen: need 0 < decide_every_s <= max_buffer_s")


@dataclass(frozen=True)
class ServeParams:
    """host, port: the bind address (anything but a loopback address needs the API key); api_key_env: the
    environment variable holding the API key (when set, every request but /healthz must carry it in the
    X-API-Key header); model: an MLflow URI (`models:/name@alias`), a model folder or a model.pt path;
    fallback_model: the local model folder loaded when the alias or registered model does not exist (null: no
    fallback, the service refuses to start); index, calibration: the folders built for that model;
    poll_s: seconds between checks for a moved alias or a rebuilt index/calibration (hot swap);
    max_upload_bytes: largest request body (audio upload, embeddings JSON, one WebSocket message);
    max_duration_s: longest audio accepted; min_sample_rate_hz, max_sample_rate_hz, max_channels: what an upload
    may be before it is resampled to the model's rate and mixed to mono; decode_timeout_s: time limit of decoding;
    max_windows: most window embeddings in one /identify/embeddings request; norm_tolerance: how far from 1 a
    window embedding's L2 norm may be; max_concurrent: recognitions computed at once (more requests wait, none
    fail); torch_threads: intra-op threads of the model; listen: the WebSocket stream."""

    host: str
    port: int
    api_key_env: str
    model: str
    fallback_model: str | None
    index: str
    calibration: str
    poll_s: float
    max_upload_bytes: int
    max_duration_s: float
    min_sample_rate_hz: int
    max_sample_rate_hz: int
    max_channels: int
    decode_timeout_s: float
    max_windows: int
    norm_tolerance: float
    max_concurrent: int
    torch_threads: int
    listen: ListenParams

    def __post_init__(self) -> None:
        checks = [(bool(self.host), "host must not be empty"),
                  (0 <= self.port <= 65535, "port must be in 0..65535"),
                  (bool(self.api_key_env), "api_key_env must name an environment variable"),
                  (bool(self.model) and bool(self.index) and bool(self.calibration),
                   "model, index and calibration must not be empty"),
                  (self.poll_s > 0, "poll_s must be > 0"),
                  (self.max_upload_bytes >= 1024, "max_upload_bytes must be >= 1024"),
                  (self.max_duration_s > 0 and self.decode_timeout_s > 0,
                   "max_duration_s and decode_timeout_s must be > 0"),
                  (0 < self.min_sample_rate_hz <= self.max_sample_rate_hz,
                   "need 0 < min_sample_rate_hz <= max_sample_rate_hz"),
                  (self.max_channels >= 1 and self.max_windows >= 1, "max_channels and max_windows must be >= 1"),
                  (0 < self.norm_tolerance < 1, "norm_tolerance must be in (0, 1)"),
                  (self.max_concurrent >= 1 and self.torch_threads >= 1,
                   "max_concurrent and torch_threads must be >= 1")]
        for ok, message in checks:
            if not ok:
                raise ParamsError(f"serve: {message}")
