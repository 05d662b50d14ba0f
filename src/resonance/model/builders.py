"""Config names -> objects: the one place that knows which encoder and loss names exist.

Configs arrive as plain mappings (a params.yaml section) and become the frozen dataclasses through
`resonance.config.build`, so a missing key, an unknown key or a wrongly typed value is a `ParamsError` (a
ValueError) naming it; an unknown encoder or loss name is a `ParamsError` listing the known names.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from resonance.config import ParamsError, build
from resonance.model.encoders import NafpConfig, NafpEncoder, PatchTransformerEncoder, TransformerConfig
from resonance.model.frontend import FrontendConfig, LogMel
from resonance.model.losses import nt_xent, supcon, triplet_hard

ENCODERS: dict[str, tuple[type, type[nn.Module]]] = {
    "nafp": (NafpConfig, NafpEncoder),
    "transformer": (TransformerConfig, PatchTransformerEncoder),
}

# name -> (function, the keyword arguments build_loss must be given). Call signatures of the built losses:
#   nt_xent(z1, z2)  supcon(z, labels)  triplet(z, labels); all on (batch, dim) unit vectors, returning a scalar.
LOSSES: dict[str, tuple[Callable[..., torch.Tensor], tuple[str, ...]]] = {
    "nt_xent": (nt_xent, ("temperature",)),
    "supcon": (supcon, ("temperature",)),
    "triplet": (triplet_hard, ("margin",)),
}


def _unknown(kind: str, name: str, known: Mapping[str, Any]) -> ParamsError:
    return ParamsError(f"unknown {kind} {name!r}; known: {sorted(known)}")


def _as_config(cls: type, cfg: Any, where: str) -> Any:
    """A dataclass instance of `cls` from an instance or a mapping; __post_init__ ValueErrors become ParamsError."""
    if isinstance(cfg, cls):
        return cfg
    try:
        return build(cls, dict(cfg) if isinstance(cfg, Mapping) else cfg, where)
    except ParamsError:
        raise
    except ValueError as exc:
        raise ParamsError(f"{where}: {exc}") from None


def build_frontend(cfg: FrontendConfig | Mapping[str, Any]) -> LogMel:
    """The LogMel frontend from a FrontendConfig or its mapping (keys exactly those of FrontendConfig)."""
    return LogMel(_as_config(FrontendConfig, cfg, "frontend"))


def build_encoder(name: str, cfg_dict: Mapping[str, Any]) -> nn.Module:
    """Encoder `name` ("nafp" | "transformer") from its config mapping (keys exactly those of NafpConfig or
    TransformerConfig). Returns a module mapping (batch, n_mels, n_frames) log-mel -> (batch, dim) unit vectors."""
    if name not in ENCODERS:
        raise _unknown("encoder", name, ENCODERS)
    cfg_cls, module_cls = ENCODERS[name]
    return module_cls(_as_config(cfg_cls, cfg_dict, f"encoder.{name}"))


def build_loss(name: str, **kwargs: float) -> Callable[..., torch.Tensor]:
    """Loss `name` ("nt_xent" | "supcon" | "triplet") with its hyper-parameters bound; see LOSSES for the call
    signature. The keyword arguments must be exactly the loss's (temperature > 0, or margin >= 0)."""
    if name not in LOSSES:
        raise _unknown("loss", name, LOSSES)
    fn, keys = LOSSES[name]
    if set(kwargs) != set(keys):
        raise ParamsError(f"loss {name!r}: expected keyword(s) {list(keys)}, got {sorted(kwargs)}")
    for key, value in kwargs.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"loss {name!r}: {key} must be a number, got {value!r}")
        if (key == "temperature" and value <= 0) or (key == "margin" and value < 0):
            raise ParamsError(f"loss {name!r}: {key}={value} out of range (temperature > 0, margin >= 0)")
    return functools.partial(fn, **{k: float(v) for k, v in kwargs.items()})


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of `module` (buffers such as the mel filterbank are not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
