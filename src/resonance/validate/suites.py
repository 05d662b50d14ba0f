"""Great Expectations 1.x suites for the catalog: one over the manifest, one over per-track audio stats.

`run_suites` returns plain dicts (one per expectation) so the stage can write a report and metrics
without holding GX objects.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from resonance.config import ValidateParams

REQUIRED = ["track_id", "title", "package", "source_path", "license", "duration_s", "sample_rate", "sha256",
            "split"]


def manifest_expectations(p: ValidateParams) -> list[Any]:
    """What every catalog manifest must satisfy (ids, splits, licenses, durations, sample rates)."""
    import great_expectations.expectations as gxe

    known = "^(?:" + "|".join(f"(?:{x})" for x in p.known_licenses) + ")"
    return [
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in REQUIRED],
        gxe.ExpectColumnValuesToBeUnique(column="track_id"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["package", "source_path"]),
        # Same audio never twice (so never in two splits): splits are disjoint by content, not just by id.
        gxe.ExpectColumnValuesToBeUnique(column="sha256"),
        gxe.ExpectColumnValuesToMatchRegex(column="sha256", regex="^[0-9a-f]{64}$"),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=p.splits),
        gxe.ExpectColumnDistinctValuesToContainSet(column="split", value_set=p.splits),
        gxe.ExpectColumnValuesToMatchRegex(column="license", regex=known),
        gxe.ExpectColumnValuesToBeBetween(column="duration_s", min_value=p.duration_s[0], max_value=p.duration_s[1]),
        gxe.ExpectColumnValuesToBeInSet(column="sample_rate", value_set=p.sample_rates),
    ]


def audio_expectations(p: ValidateParams) -> list[Any]:
    """What every decoded track must satisfy (level, silence, clipping, finiteness, integrity)."""
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToBeInSet(column="readable", value_set=[True]),
        gxe.ExpectColumnValuesToBeInSet(column="sha256_match", value_set=[True]),
        gxe.ExpectColumnValuesToBeInSet(column="channels", value_set=[1]),
        gxe.ExpectColumnValuesToBeInSet(column="sample_rate", value_set=p.sample_rates),
        gxe.ExpectColumnValuesToBeBetween(column="nonfinite", min_value=0, max_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="rms_dbfs", min_value=p.rms_dbfs[0], max_value=p.rms_dbfs[1]),
        gxe.ExpectColumnValuesToBeBetween(column="silence_fraction", min_value=0, max_value=p.max_silence_fraction),
        gxe.ExpectColumnValuesToBeBetween(column="clipping_fraction", min_value=0, max_value=p.max_clipping_fraction),
    ]


def split_count_expectations(p: ValidateParams) -> list[Any]:
    """Every split holds at least `min_split_tracks` tracks (checked on the per-split counts table)."""
    import great_expectations.expectations as gxe

    return [gxe.ExpectColumnValuesToBeBetween(column="tracks", min_value=p.min_split_tracks)]


def run_suites(frames: dict[str, tuple[pd.DataFrame, list[Any]]], id_column: str = "track_id") -> list[dict]:
    """Validate each named frame against its expectations in an ephemeral GX context.

    Returns one dict per expectation: suite, expectation, column, kwargs, success, unexpected_count,
    unexpected_percent, examples (up to 10 offending ids or values), observed.
    """
    import great_expectations as gx

    ctx = gx.get_context(mode="ephemeral")
    _quiet(ctx)
    source = ctx.data_sources.add_pandas("resonance")
    rows: list[dict] = []
    for name, (df, expectations) in frames.items():
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(f"{name}-all")
        suite = ctx.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
        vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
        fmt: dict[str, Any] = {"result_format": "COMPLETE"}
        if id_column in df.columns:
            fmt["unexpected_index_column_names"] = [id_column]
        result = vd.run(batch_parameters={"dataframe": df}, result_format=fmt)
        rows += [_row(name, r, id_column) for r in result.results]
    return rows


def _row(suite: str, r: Any, id_column: str) -> dict:
    cfg = r.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id", "column")}
    res = r.result or {}
    index = res.get("unexpected_index_list") or []
    examples = [i.get(id_column) if isinstance(i, dict) else i for i in index][:10] or \
        (res.get("partial_unexpected_list") or [])[:10]
    return {
        "suite": suite,
        "expectation": cfg.type,
        "column": cfg.kwargs.get("column", ",".join(cfg.kwargs.get("column_list", []) or [])),
        "kwargs": {k: _plain(v) for k, v in kwargs.items()},
        "success": bool(r.success),
        "unexpected_count": int(res.get("unexpected_count") or 0),
        "unexpected_percent": float(res.get("unexpected_percent") or 0.0),
        "examples": [_plain(e) for e in examples],
        "observed": _plain(res.get("observed_value")),
        "error": str(r.exception_info.get("exception_message") or "") if not r.success and
        r.exception_info.get("raised_exception") else "",
    }


def _plain(v: Any) -> Any:
    """numpy scalars and other odd values -> JSON-friendly."""
    if hasattr(v, "item") and callable(v.item):
        return v.item()
    if isinstance(v, (list, tuple, set)):
        return [_plain(x) for x in v]
    if isinstance(v, re.Pattern):
        return v.pattern
    return v if isinstance(v, (str, int, float, bool, type(None), dict)) else str(v)


def _quiet(ctx: Any) -> None:
    """Turn off GX's per-metric progress bars (the stage shows its own)."""
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # noqa: BLE001 - cosmetic only; older/newer GX may move this
        pass
