"""params.yaml -> frozen dataclasses: the one place where configuration becomes objects.

Every stage reads its own section (`catalog`, `validate`, ...). No defaults hide in code: a missing key,
an unknown key or a value of the wrong type is a `ParamsError` naming the key and the fix.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ParamsError(ValueError):
    """params.yaml is missing, malformed, or a value does not fit its key."""


@dataclass(frozen=True)
class Source:
    """Where one Debian package keeps its music.

    `container` is a zip/pk3 member of the .deb holding the audio (None: files sit in the .deb itself);
    `pattern` is a regex on the member path (relative, no leading './').
    """

    container: str | None
    pattern: str


@dataclass(frozen=True)
class Profile:
    """A named subset of the sources: which packages, and at most how many tracks (None: all)."""

    packages: list[str]
    max_tracks: int | None


@dataclass(frozen=True)
class CatalogParams:
    """The `catalog` section: how real music becomes the reference catalog."""

    seed: int
    sample_rate: int
    min_duration_s: float
    max_duration_s: float
    silence_db: float
    splits: dict[str, float]
    near_duplicate_ber: float
    fingerprint_length_s: int
    decode_timeout_s: float
    workers: int
    keep_debs: bool
    profile: str
    profiles: dict[str, Profile]
    sources: dict[str, Source]

    def __post_init__(self) -> None:
        if set(self.splits) != {"train", "val", "unseen"}:
            raise ParamsError(f"catalog.splits: need exactly train, val, unseen; got {sorted(self.splits)}")
        if any(v < 0 for v in self.splits.values()) or abs(sum(self.splits.values()) - 1.0) > 1e-6:
            raise ParamsError(f"catalog.splits: fractions must be >= 0 and sum to 1, got {self.splits}")
        if self.sample_rate not in (8000, 16000):
            raise ParamsError(f"catalog.sample_rate: 8000 or 16000 Hz, got {self.sample_rate}")
        if not 0 < self.min_duration_s < self.max_duration_s:
            raise ParamsError("catalog: need 0 < min_duration_s < max_duration_s")
        if self.workers < 1:
            raise ParamsError(f"catalog.workers: at least 1, got {self.workers}")

    def selected(self, profile: str | None = None) -> tuple[Profile, dict[str, Source]]:
        """The active profile and its sources, in the profile's package order."""
        name = profile or self.profile
        if name not in self.profiles:
            raise ParamsError(f"catalog.profile: unknown profile {name!r}; known: {sorted(self.profiles)}")
        prof = self.profiles[name]
        unknown = [p for p in prof.packages if p not in self.sources]
        if unknown:
            raise ParamsError(f"catalog.profiles.{name}: packages without a catalog.sources entry: {unknown}")
        return prof, {p: self.sources[p] for p in prof.packages}


@dataclass(frozen=True)
class ValidateParams:
    """The `validate` section: what a healthy catalog looks like (Great Expectations thresholds)."""

    known_licenses: list[str]
    splits: list[str]
    duration_s: list[float]
    sample_rates: list[int]
    rms_dbfs: list[float]
    frame_ms: float
    silence_threshold_db: float
    max_silence_fraction: float
    max_clipping_fraction: float
    clip_level: float
    min_split_tracks: int


def load_params(path: str | Path) -> dict[str, Any]:
    """Read params.yaml as a dict (YAML errors become ParamsError)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: no such params file (run from the project root or pass --params)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of stage sections at the top level")
    return data


def load_section(path: str | Path, name: str, cls: type[T]) -> T:
    """Build the dataclass `cls` from section `name` of the params file at `path`."""
    data = load_params(path)
    if name not in data:
        raise ParamsError(f"{path}: no `{name}:` section")
    return build(cls, data[name], name)


def build(cls: type[T], data: Any, where: str) -> T:
    """Turn a plain mapping into dataclass `cls`, checking keys and value types recursively."""
    if not isinstance(data, dict):
        raise ParamsError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    missing = [n for n in names if n not in data]
    extra = [k for k in data if k not in names]
    if missing:
        raise ParamsError(f"{where}: missing key(s) {missing}")
    if extra:
        raise ParamsError(f"{where}: unknown key(s) {extra}; known: {names}")
    return cls(**{n: _coerce(hints[n], data[n], f"{where}.{n}") for n in names})


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, where)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ParamsError(f"{where}: expected a list, got {value!r}")
        return [_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _coerce(args[1], v, f"{where}.{k}") for k, v in value.items()}
    return _scalar(tp, value, where)


def _scalar(tp: Any, value: Any, where: str) -> Any:
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{where}: expected a string, got {value!r}")
        return value
    raise ParamsError(f"{where}: unsupported parameter type {tp}")  # pragma: no cover - programming error


def check_regex(pattern: str, where: str) -> re.Pattern[str]:
    """Compile a regex from params, naming the key when it is malformed."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ParamsError(f"{where}: bad regex {pattern!r}: {exc}") from None
