"""Dataclasses of the MLOps sections of params.yaml: `promote` (the promotion gate), `deploy` (the champion's
release for the service), `monitor` (drift monitoring of field recordings), `field` (the field-test set) and
`flows` (schedules, retries, run profiles). Loaded with `resonance.config.load_section`; no defaults in code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from resonance.config.loader import ParamsError


@dataclass(frozen=True)
class PromoteParams:
    """The gate between `challenger` and `champion` (resonance.registry.gate), both measured on the same catalog
    and query set. headline: a key of the evaluation headline (metrics/evaluate_embedding.json) that must improve
    by at least `margin` (absolute, 0.01 = one point); cell_tolerance: no grid cell (hit rate pooled over query
    lengths) may lose more than this; open_set: the open-set headline key, which may lose at most
    `open_set_tolerance`; reevaluate_champion: when the champion was measured on other data (catalog or queries
    changed), evaluate it on the current data first (else the gate holds)."""

    headline: str
    margin: float
    cell_tolerance: float
    open_set: str
    open_set_tolerance: float
    reevaluate_champion: bool

    def __post_init__(self) -> None:
        if self.margin < 0 or self.cell_tolerance < 0 or self.open_set_tolerance < 0:
            raise ParamsError("promote: margin, cell_tolerance and open_set_tolerance must be >= 0")
        if not self.headline or not self.open_set:
            raise ParamsError("promote: headline and open_set must name evaluation headline keys")


@dataclass(frozen=True)
class DeployParams:
    """Where the champion's release lives: `dir`/current = {model.pt, index/, calibration/, release.json}, swapped
    in atomically (the previous one is kept as `dir`/previous); catalog and val_queries: what its index is built
    from and its calibration fitted on."""

    dir: str
    catalog: str
    val_queries: str


@dataclass(frozen=True)
class MonitorParams:
    """Drift monitoring (resonance.monitor). dir: holds inbox/, processing/, archive/, rejected/, reports/,
    reference/; min_age_s: a file is taken from the inbox only once unmodified this long (still being copied
    otherwise); duration_s, sample_rate_hz: accepted ranges; max_channels; silence_dbfs: a clip whose RMS is below
    this is silent (rejected); frame_s: analysis frames; clip_level: |x| at or above this is clipped;
    reference_queries: the query set whose clips are the reference distribution; reference_clips: at most this
    many of them (a seeded draw by reference_seed); features: the columns compared by Evidently; drift_share:
    dataset drift when at least this share of them drift; stattest_threshold: per-feature test threshold
    (p-value for tests, distance for distances); min_clips: fewer valid new clips wait in the inbox;
    retrain_on_drift: the monitor flow starts `retrain` when drift is found; mlflow_experiment."""

    dir: str
    min_age_s: float
    duration_s: list[float]
    sample_rate_hz: list[int]
    max_channels: int
    silence_dbfs: float
    frame_s: float
    clip_level: float
    reference_queries: str
    reference_clips: int
    reference_seed: int
    features: list[str]
    drift_share: float
    stattest_threshold: float
    min_clips: int
    retrain_on_drift: bool
    mlflow_experiment: str

    def __post_init__(self) -> None:
        checks = [(len(self.duration_s) == 2 and 0 < self.duration_s[0] < self.duration_s[1],
                   "duration_s must be [lo, hi] with 0 < lo < hi"),
                  (len(self.sample_rate_hz) == 2 and 0 < self.sample_rate_hz[0] <= self.sample_rate_hz[1],
                   "sample_rate_hz must be [lo, hi]"),
                  (self.max_channels >= 1 and self.frame_s > 0 and 0 < self.clip_level <= 1,
                   "need max_channels >= 1, frame_s > 0, 0 < clip_level <= 1"),
                  (self.reference_clips >= 2 and self.min_clips >= 2, "reference_clips and min_clips must be >= 2"),
                  (0 < self.drift_share <= 1 and self.stattest_threshold > 0,
                   "need 0 < drift_share <= 1 and stattest_threshold > 0"),
                  (bool(self.features), "features must not be empty")]
        for ok, message in checks:
            if not ok:
                raise ParamsError(f"monitor: {message}")
        unknown = sorted(set(self.features) - set(FEATURES))
        if unknown:
            raise ParamsError(f"monitor.features: unknown feature(s) {unknown}; known: {list(FEATURES)}")


FEATURES = ("duration_s", "sample_rate_hz", "channels", "rms_dbfs", "loudness_dbfs", "peak_dbfs",
            "clipping_fraction", "silence_fraction", "snr_est_db", "spectral_centroid_hz", "spectral_bandwidth_hz",
            "rt60_est_s", "confidence", "margin", "accepted")


@dataclass(frozen=True)
class FieldDevice:
    """A recording device of the field set: `response` a regex naming a measured response among the fetched
    files (null: flat), `drive_db` gain before the converter, `clip_level` its full scale (hard clipping)."""

    response: str | None
    drive_db: float
    clip_level: float


@dataclass(frozen=True)
class FieldParams:
    """The field-test set (resonance.field), built outside the simulator from real measured responses.
    packages: Debian packages holding them (package -> {container, pattern}), fetched with apt-get download;
    pa: regex of the PA speaker-cabinet response; venues: venue -> regex of its room response (a stereo pair
    or L/R files are averaged to the phone's one channel); devices: device -> FieldDevice; split: the catalog
    split the songs come from; excerpts: in-catalog clips per (venue, device); outside_excerpts: out-of-catalog
    clips per (venue, device) (false accepts); clip_s: clip length; preroll_s: music before it (reverb tails);
    snr_db: crowd SNR range (uniform); seed; audio_format: container written (ogg, flac, wav)."""

    packages: dict[str, Any]
    pa: str
    venues: dict[str, str]
    devices: dict[str, FieldDevice]
    split: str
    excerpts: int
    outside_excerpts: int
    clip_s: float
    preroll_s: float
    snr_db: list[float]
    seed: int
    audio_format: str

    def __post_init__(self) -> None:
        checks = [(bool(self.packages) and bool(self.venues) and bool(self.devices),
                   "packages, venues and devices must not be empty"),
                  (self.excerpts >= 1 and self.outside_excerpts >= 0, "need excerpts >= 1, outside_excerpts >= 0"),
                  (self.clip_s >= 1.0 and self.preroll_s >= 0, "need clip_s >= 1 and preroll_s >= 0"),
                  (len(self.snr_db) == 2 and self.snr_db[0] <= self.snr_db[1], "snr_db must be [lo, hi]"),
                  (self.audio_format in ("ogg", "flac", "wav"), "audio_format must be ogg, flac or wav")]
        for ok, message in checks:
            if not ok:
                raise ParamsError(f"field: {message}")
        for name, spec in self.packages.items():
            if not isinstance(spec, dict) or set(spec) != {"container", "pattern"}:
                raise ParamsError(f"field.packages.{name}: expected {{container, pattern}}, got {spec!r}")


@dataclass(frozen=True)
class FlowsParams:
    """Prefect flows. stages, cron: `resonance-pipeline` (flows/pipeline.py); retrain_cron, monitor_cron:
    the schedules `flows/serve.py` serves; retries, retry_delay_s: for the steps that can fail for passing
    reasons (downloads, the MLflow store); retrain_targets: the DVC stages the retrain flow reproduces, with all
    they depend on (empty: every stage); profiles: run profiles (`make run PROFILE=NAME`), each a mapping of
    dotted params keys to values applied to a copy of params.yaml in runs/NAME/."""

    stages: list[str]
    cron: str
    retrain_cron: str
    monitor_cron: str
    retries: int
    retry_delay_s: float
    retrain_targets: list[str]
    profiles: dict[str, Any]

    def __post_init__(self) -> None:
        if self.retries < 0 or self.retry_delay_s < 0:
            raise ParamsError("flows: retries and retry_delay_s must be >= 0")
        for name, overrides in self.profiles.items():
            if not isinstance(overrides, dict) or not all(isinstance(k, str) and k for k in overrides):
                raise ParamsError(f"flows.profiles.{name}: expected a mapping of dotted params keys to values")
