"""What the service recognizes with, and how it changes without dropping a request.

A `Served` bundles one (model, index, calibration) triple with what /version reports about it. The
`RecognizerHolder` keeps exactly one reference to the current `Served`; a request reads that reference once and
works with that triple until it answers, so a swap never changes anything under a request in flight.

The `Watcher` thread polls every `serve.poll_s`: where the model alias points (the MLflow registry), index.json's
build id and calibration.json's checksum. When any of them changed it loads the new triple BESIDE the old one
(`resonance.index.stage.load_recognizer`, which checks that index and calibration belong to the model) and then
replaces the reference in one assignment. A failed load (an index not rebuilt yet for a new model, a corrupt file)
keeps the old triple serving, is logged with its reason, and is retried when one of the three changes again.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resonance.config.embedding import EmbeddingParams
from resonance.config.serve import ServeParams
from resonance.index.method import EmbeddingMethod

log = logging.getLogger("resonance.serve")
ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>.+)$")


@dataclass(frozen=True)
class ModelRef:
    """Where the model comes from right now: `load` is what load_model reads (an alias resolved to its version,
    so a move during the load cannot mix models); kind is registry | local | fallback; fallback_reason says why the
    configured alias was not used."""

    load: str
    kind: str
    uri: str
    name: str | None = None
    alias: str | None = None
    version: str | None = None
    fallback_reason: str | None = None


def _file_stamp(source: str) -> str:
    path = Path(source)
    path = path / "model.pt" if path.is_dir() else path
    try:
        st = path.stat()
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def resolve_model(uri: str, fallback: str | None) -> ModelRef:
    """The model the service should load now (see ModelRef). An alias that does not exist (or a registry that
    cannot be read) falls back to `fallback` when one is configured; otherwise ModelError."""
    from resonance.model.embedder import ModelError

    m = ALIAS_URI.match(uri)
    if m is None:
        return ModelRef(uri, "registry" if uri.startswith(("models:/", "runs:/")) else "local", uri)
    try:
        import mlflow
        from mlflow import MlflowClient

        from resonance.train.stage import tracking_uri

        mlflow.set_tracking_uri(tracking_uri())
        mv = MlflowClient().get_model_version_by_alias(m["name"], m["alias"])
    except Exception as exc:  # noqa: BLE001 - MlflowException, a missing or locked store: all mean "not there"
        reason = f"{uri}: {getattr(exc, 'message', None) or exc}"
        if fallback is None:
            raise ModelError(f"{reason} (and serve.fallback_model is null)") from None
        return ModelRef(fallback, "fallback", uri, m["name"], m["alias"], None, reason)
    return ModelRef(f"models:/{m['name']}/{mv.version}", "registry", uri, m["name"], m["alias"], str(mv.version))


def _calibration_stamp(folder: Path) -> str:
    try:
        return str(json.loads((folder / "calibration.json").read_text()).get("sha256"))
    except (OSError, ValueError, AttributeError):
        return "unreadable"


def _index_stamp(folder: Path) -> str:
    try:
        return str(json.loads((folder / "index.json").read_text()).get("build_id"))
    except (OSError, ValueError, AttributeError):
        return "unreadable"


def fingerprint(ref: ModelRef, index_dir: Path, calibration_dir: Path) -> tuple[str, ...]:
    """What identifies a triple on disk: the model version (or model.pt's size and mtime), the index build id
    and the calibration checksum. The watcher reloads when it changes."""
    model = ref.version if ref.kind == "registry" and ref.version else f"{ref.load}|{_file_stamp(ref.load)}"
    return (ref.kind, model, _index_stamp(index_dir), _calibration_stamp(calibration_dir))


@dataclass(frozen=True)
class Served:
    """One loaded triple and what /version says about it."""

    method: EmbeddingMethod
    ref: ModelRef
    stamp: tuple[str, ...]
    index_build_id: str
    calibration_sha256: str
    loaded_at: float = field(default_factory=time.time)

    def version(self) -> dict[str, Any]:
        """The /version body (model, index, calibration and what an on-device client needs)."""
        import inspect

        from resonance.index.usable import usable_windows

        m, e, c = self.method, self.method.embedder, self.method.config
        frame_s = inspect.signature(usable_windows).parameters["frame_s"].default
        return {"model": {"uri": self.ref.uri, "source": self.ref.kind, "loaded_from": self.ref.load,
                          "name": self.ref.name, "alias": self.ref.alias, "version": self.ref.version,
                          "fallback_reason": self.ref.fallback_reason, "sha256": m.model_sha256},
                "index": {"build_id": self.index_build_id, "tracks": len(m.index.tracks),
                          "windows": m.index.n_windows},
                "calibration": {"sha256": self.calibration_sha256,
                                "lengths_s": [x.length_s for x in m.calibration.lengths] if m.calibration else []},
                "catalog_size": len(m.index.tracks), "loaded_at": self.loaded_at,
                "device": {"sr": e.sr, "window_s": e.window_s, "query_hop_s": c.query_hop_s, "dim": e.dim,
                           "usable": {"silence_dbfs": c.silence_dbfs, "min_active": c.min_active,
                                      "frame_s": frame_s}}}


def load_served(p: ServeParams, params: EmbeddingParams, attempts: int = 3) -> Served:
    """Resolve the model and load the triple (ResonanceError when a part is missing or belongs to another
    model). The fingerprint is read before and after the load: when the index or calibration was rewritten
    meanwhile, the load is repeated, so the reported build id is the one that was loaded."""
    from resonance.errors import ResonanceError
    from resonance.index.stage import load_recognizer

    index_dir, calibration_dir = Path(p.index), Path(p.calibration)
    for _ in range(attempts):
        ref = resolve_model(p.model, p.fallback_model)
        stamp = fingerprint(ref, index_dir, calibration_dir)
        method = load_recognizer(ref.load, index_dir, calibration_dir, params)
        if fingerprint(ref, index_dir, calibration_dir) == stamp:
            break
    else:
        raise ResonanceError(f"{index_dir} / {calibration_dir} kept changing while being loaded; try again")
    if ref.kind == "fallback":
        log.warning("serve: %s; serving the fallback model %s", ref.fallback_reason, ref.load)
    return Served(method, ref, stamp, stamp[2], stamp[3])


class RecognizerHolder:
    """The one reference to the current `Served`; `current` is read once per request."""

    def __init__(self, served: Served) -> None:
        self.current = served
        self.swaps = 0
        self.last_error: str | None = None

    def swap(self, served: Served) -> None:
        self.current = served  # one reference assignment: atomic; requests holding the old one finish on it
        self.swaps += 1
        self.last_error = None


class Watcher:
    """A daemon thread reloading the holder when the alias, the index or the calibration changes."""

    def __init__(self, holder: RecognizerHolder, p: ServeParams, params: EmbeddingParams) -> None:
        self.holder, self.p, self.params = holder, p, params
        self._stop = threading.Event()
        self._failed: tuple[str, ...] | None = None
        self._thread = threading.Thread(target=self._loop, name="resonance-serve-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.p.poll_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watcher must outlive any surprise; the old triple serves
                log.exception("serve: the model watcher hit an unexpected error; still serving the loaded model")

    def check(self) -> bool:
        """One poll: reload and swap when something changed; True when a new triple now serves."""
        from resonance.errors import ResonanceError

        p = self.p
        try:
            ref = resolve_model(p.model, p.fallback_model)
        except ResonanceError as exc:
            self._fail(None, f"cannot resolve {p.model}: {exc}")
            return False
        stamp = fingerprint(ref, Path(p.index), Path(p.calibration))
        if stamp == self.holder.current.stamp or stamp == self._failed:
            return False
        log.warning("serve: change seen (model %s, index %s, calibration %s); loading it beside the current one",
                    ref.version or ref.load, stamp[2], stamp[3][:12])
        try:
            served = load_served(p, self.params)
        except Exception as exc:  # noqa: BLE001 - whatever broke the load, the loaded triple keeps serving
            self._fail(stamp, str(exc) if isinstance(exc, ResonanceError) else f"{type(exc).__name__}: {exc}")
            return False
        self.holder.swap(served)
        self._failed = None
        log.warning("serve: now serving model %s (%s), index %s, %d tracks", served.ref.version or served.ref.load,
                    served.ref.kind, served.index_build_id, len(served.method.index.tracks))
        return True

    def _fail(self, stamp: tuple[str, ...] | None, why: str) -> None:
        self._failed = stamp
        if self.holder.last_error != why:
            log.error("serve: could not load the new model/index/calibration, still serving the loaded one: %s", why)
        self.holder.last_error = why
