"""Reading params.yaml: sections become frozen dataclasses, with every key and type checked.

Every stage reads its own section (`catalog`, `validate`, ...). No defaults hide in code: a missing key,
an unknown key or a value of the wrong type is a `ParamsError` naming the key and the fix.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from resonance.errors import ResonanceError

T = TypeVar("T")


class ParamsError(ResonanceError, ValueError):
    """params.yaml is missing, malformed, or a value does not fit its key."""


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
    if tp is Any:  # checked later by its consumer (e.g. an encoder config, built by resonance.model.builders)
        return value
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
