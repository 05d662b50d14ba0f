"""Is a field clip usable? ffprobe says what the file is (before decoding anything huge), ffmpeg decodes it, and a
Great Expectations 1.x suite checks the table of probed and decoded properties: duration, native sample rate and
channels in range, not silent, finite samples. A clip that cannot be probed or decoded, or fails an expectation,
is rejected with the reason."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

from resonance.audio import AudioError, require_tool
from resonance.config.mlops import MonitorParams


def probe(path: Path, timeout_s: float = 30.0) -> dict[str, Any]:
    """{"sample_rate_hz", "channels", "codec", "probed_duration_s" (None if unknown)} of the first audio stream;
    AudioError when ffprobe cannot read the file or it has no audio stream."""
    if not path.is_file() or path.stat().st_size == 0:
        raise AudioError("empty file (0 bytes)" if path.is_file() else "no such file")
    cmd = [require_tool("ffprobe"), "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=sample_rate,channels,codec_name,duration:format=duration", "-of", "json", str(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise AudioError(f"probe timed out after {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise AudioError("not readable audio: " + (lines[-1] if lines else f"ffprobe exit {proc.returncode}"))
    info = json.loads(proc.stdout or "{}")
    streams = info.get("streams") or []
    if not streams:
        raise AudioError("no audio stream in the file")
    stream = streams[0]
    duration = stream.get("duration") or (info.get("format") or {}).get("duration")
    try:
        return {"sample_rate_hz": int(stream.get("sample_rate") or 0), "channels": int(stream.get("channels") or 0),
                "codec": stream.get("codec_name") or "unknown",
                "probed_duration_s": float(duration) if duration not in (None, "N/A") else None}
    except ValueError:
        raise AudioError(f"unreadable stream description: {stream}") from None


def expectations(p: MonitorParams) -> list[Any]:
    """What a usable field clip satisfies (columns of the table `validate_table` checks)."""
    import great_expectations.expectations as gxe

    return [gxe.ExpectColumnValuesToBeBetween(column="duration_s", min_value=p.duration_s[0],
                                              max_value=p.duration_s[1]),
            gxe.ExpectColumnValuesToBeBetween(column="sample_rate_hz", min_value=p.sample_rate_hz[0],
                                              max_value=p.sample_rate_hz[1]),
            gxe.ExpectColumnValuesToBeBetween(column="channels", min_value=1, max_value=p.max_channels),
            gxe.ExpectColumnValuesToBeBetween(column="rms_dbfs", min_value=p.silence_dbfs),
            gxe.ExpectColumnValuesToBeBetween(column="nonfinite", min_value=0, max_value=0)]


def validate_table(table: pd.DataFrame, p: MonitorParams) -> tuple[dict[str, list[str]], list[dict[str, Any]]]:
    """Run the suite on `table` (one row per clip, column `clip` names it) in an ephemeral GX context.

    Returns ({clip: [failed expectation descriptions]}, one summary dict per expectation)."""
    import great_expectations as gx

    from resonance.validate.suites import _quiet

    ctx = gx.get_context(mode="ephemeral")
    _quiet(ctx)
    batch = ctx.data_sources.add_pandas("monitor").add_dataframe_asset("clips") \
        .add_batch_definition_whole_dataframe("clips-all")
    suite = ctx.suites.add(gx.ExpectationSuite(name="field-clips", expectations=expectations(p)))
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name="field-clips", data=batch, suite=suite))
    result = vd.run(batch_parameters={"dataframe": table},
                    result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["clip"]})
    failed: dict[str, list[str]] = {}
    summary = []
    for r in result.results:
        cfg = r.expectation_config
        column = cfg.kwargs.get("column")
        bounds = f"[{cfg.kwargs.get('min_value')}, {cfg.kwargs.get('max_value')}]"
        res = r.result or {}
        for item in res.get("unexpected_index_list") or []:
            clip = item.get("clip") if isinstance(item, dict) else str(item)
            value = table.loc[table["clip"] == clip, column].iloc[0] if column in table else None
            shown = f"{float(value):g}" if value is not None else "missing"
            failed.setdefault(clip, []).append(f"{cfg.type}: {column}={shown} not in {bounds}")
        summary.append({"expectation": cfg.type, "column": column, "bounds": bounds, "success": bool(r.success),
                        "unexpected_count": int(res.get("unexpected_count") or 0)})
    return failed, summary
