"""Slow tier (`make test-slow`): the benchmark scripts' own self-checks. Every script under benchmarks/ answers
--help; those with a cheap mode run it on the fixture catalog and banks (or an untrained model) and must print the
table they promise. Nothing here times anything: the tables' numbers are not checked, their presence is.

Not run in a tiny mode: serve_load.py (needs a deployed model, index and calibration; the service itself is
tested in test_serve.py), tune_decision.py, open_set_audit.py, setlist.py, faiss_scale.py, index_types.py,
hybrid.py, reference_hop.py and profile_on_test.py (need a trained model, its index and the query sets; their
parts are tested in test_stream.py and test_index.py; profile_on_test.py's paired table here, on recorded results),
results_report.py (run on a fixture evaluation in test_banks_queries.py).
ablation.py trains for hours; here it only rebuilds its table from rows on record.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from resonance.config import load_train

from conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py"))


def _run(*args: str, cwd: Path = ROOT, timeout: float = 1500) -> str:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _table_rows(text: str) -> list[list[str]]:
    """The body rows of the markdown tables in `text` (header and |---| lines left out), cells stripped."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return [r for i, r in enumerate(rows) if not set("".join(r)) <= set("-: ")
            and not (i + 1 < len(rows) and set("".join(rows[i + 1])) <= set("-: "))]


def test_every_benchmark_script_is_checked_here() -> None:
    assert len(SCRIPTS) >= 10 and {"train_step_speed.py", "simulate_speed.py", "cli_startup.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_benchmark_answers_help(script: str) -> None:
    out = _run(str(ROOT / "benchmarks" / script), "--help", timeout=300)
    assert out.startswith("usage:") and "--" in out


def test_cli_startup_prints_its_table() -> None:
    rows = _table_rows(_run(str(ROOT / "benchmarks" / "cli_startup.py"), "--runs", "1"))
    assert [r[0] for r in rows] == ["resonance --help", "resonance catalog --help", "python -c pass (floor)"]
    assert all(float(r[1]) > 0 for r in rows)


def test_simulate_speed_on_the_fixture_banks(built: dict) -> None:
    root = built["root"]
    out = _run(str(ROOT / "benchmarks" / "simulate_speed.py"), "--banks", str(root / "banks"), "--catalog",
               str(root / "catalog"), "--params", str(built["params"]), "--seconds", "4")
    rows = _table_rows(out)
    import yaml

    presets = yaml.safe_load(built["params"].read_text())["simulate"]["presets"]
    assert [r[0] for r in rows] == list(presets) and all(r[-1].endswith("x") for r in rows)


def test_catalog_report_on_the_fixture_catalog(built: dict, tmp_path: Path) -> None:
    out = _run(str(ROOT / "benchmarks" / "catalog_report.py"), "--catalog", str(built["root"] / "catalog"),
               "--out", str(tmp_path / "catalog.md"))
    assert "resonance-fixture-music" in out and "splits: train 2, val 1, unseen 1" in out
    assert (tmp_path / "catalog.png").read_bytes()[:4] == b"\x89PNG"
    assert "do not edit by hand" in (tmp_path / "catalog.md").read_text()


def test_ablation_rebuilds_its_table_from_the_rows_on_record(tmp_path: Path) -> None:
    """No training here: rows recorded by earlier runs (train.json, scores.json, decisions.json) become the table."""
    import json

    summary = {"steps": 504, "fit_s": 540.0, "best_val_window_recall": 0.498, "best_val_top1": 0.41,
               "best_val_gap": -0.02}
    for name in ("default", "narrow_frontend"):
        (tmp_path / "e1" / name / "model").mkdir(parents=True)
        (tmp_path / "e1" / name / "model" / "train.json").write_text(json.dumps(summary))
    row = {f"{k}_{L}": 0.5 for k in ("top1", "r0", "far1") for L in (3, 5, 10)}
    (tmp_path / "decisions.json").write_text(json.dumps({"model_sha256": "ab" * 32, "score": "blend",
                                                         "rows": {"shipped": row, "vote": row}}))
    out = tmp_path / "ablation.md"
    _run(str(ROOT / "benchmarks" / "ablation.py"), "--only", "--work", str(tmp_path), "--out", str(out))
    text = out.read_text()
    assert "## Training changes: 1 epoch(s) each" in text and "## Decision changes" in text
    assert "Training changes: the default length" not in text  # no full-length row on record
    assert "ablation_curves.png" not in text and not (tmp_path / "ablation_curves.png").exists()
    rows = {r[0]: r for r in _table_rows(text)}
    assert set(rows) == {"default", "narrow_frontend", "shipped", "vote"}
    assert rows["default"][2:5] == ["504", "9.0", "49.8%"] and rows["shipped"][2] == "50.0%"
    assert "the `blend` open-set score" in rows["shipped"][1]

    # two full-length rows with their learning histories: a row each, and their curves on one plot
    for name, steps in (("default", 2016), ("long", 8064)):
        history = [{"step": s, "top1": 0.1 * i, "window_recall": 0.1 * i + 0.05} for i, s in
                   enumerate(range(steps // 4, steps + 1, steps // 4), start=1)]
        (tmp_path / name / "model").mkdir(parents=True)
        (tmp_path / name / "model" / "train.json").write_text(json.dumps(
            {**summary, "steps": steps, "fit_s": steps * 0.8, "history": history}))
    _run(str(ROOT / "benchmarks" / "ablation.py"), "--only", "--work", str(tmp_path), "--out", str(out))
    text = out.read_text()
    assert "## Training changes: the default length" in text and "![learning curves](ablation_curves.png)" in text
    assert (tmp_path / "ablation_curves.png").read_bytes()[:4] == b"\x89PNG"
    rows = {r[0]: r for r in _table_rows(text.split("## Training changes: 1 epoch")[0])}
    assert rows["long"][2:4] == ["8064", "107.5"] and rows["default"][2] == "2016"


def test_profile_on_test_pairs_the_same_queries_of_two_models() -> None:
    """Two evaluations of the same queries: the table holds each model's figure and their paired difference."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import profile_on_test as pot
    from results_report import Runs

    def results(right_5s: int, accept_out: int) -> list[dict]:
        rows = []
        for e in range(20):
            for length in (3, 5, 10):
                right = length != 5 or e < right_5s
                rows.append({"query_id": f"t-{e:03d}-snr+0_hall_clipFalse-len{length}", "excerpt": f"t-{e:03d}",
                             "track_id": f"s{e}", "predicted_track_id": f"s{e}" if right else "other",
                             "length_s": float(length), "snr_db": 0.0, "reverb": "hall", "clipping": False,
                             "in_catalog": True, "accepted": right})
                rows.append({"query_id": f"o-{e:03d}-len{length}", "excerpt": f"o-{e:03d}", "track_id": None,
                             "predicted_track_id": "x", "length_s": float(length), "snr_db": 0.0, "reverb": "hall",
                             "clipping": False, "in_catalog": False, "accepted": e < accept_out})
        return rows

    def metrics(right_5s: int, accept_out: int, gap: float) -> dict:
        return {"results": results(right_5s, accept_out), "catalog_scaling": {"sizes": [
            {"tracks": 50, "hit_rate": 0.9}, {"tracks": 200, "hit_rate": 0.85}, {"tracks": 652, "hit_rate": 0.9 - gap}]}}

    base, other = metrics(10, 1, 0.2), metrics(16, 0, 0.05)
    runs = Runs({"deployed": base, "long": other}, 200, 7, 0.95)
    lines = pot.table("long", runs, ROOT / "missing", ROOT / "missing")
    rows = {r[0]: r for r in _table_rows("\n".join(lines))}
    assert pot.verdicts("long", lines)[0] == (
        "The deployed model meets 2 of these 8 targets, `long` meets 7; it adds: top-1 5 s, 0 dB + reverb; top-1 5 s, "
        "all cells; accepted and right, 5 s (val thresholds); accepted and right, 3 s (val thresholds); 5 s, 0 dB + "
        "reverb: 652 tracks vs 50. Still short with `long`: top-1 5 s minus 3 s (paired excerpts).")
    assert rows["top-1 5 s, 0 dB + reverb"][2:4] == ["50.0% (not met)", "80.0% (met)"]
    assert rows["top-1 5 s, 0 dB + reverb"][4].startswith("+30.0 [+")  # every excerpt moved one way: CI above 0
    assert rows["top-1 5 s, -5 dB"][2] == "no such queries"
    assert rows["top-1 5 s minus 3 s (paired excerpts)"][2:4] == ["-50.0 (not met)", "-20.0 (not met)"]
    assert rows["accepted and right, 5 s (val thresholds)"][2] == "50.0% at 5.0% FA (not met)"
    assert rows["accepted and right, 5 s (val thresholds)"][3] == "80.0% at 0.0% FA (met)"
    assert rows["5 s, 0 dB + reverb: 652 tracks vs 50"][2:4] == ["70.0% vs 90.0%: 20.0 points (not met)",
                                                                "85.0% vs 90.0%: 5.0 points (met)"]


def test_device_embed_on_an_untrained_fast_model(tmp_path: Path) -> None:
    out = _run(str(ROOT / "benchmarks" / "device_embed.py"), "--untrained", "fast", "--repeats", "2", "--out",
               str(tmp_path / "device.md"))
    rows = dict(r[:2] for r in _table_rows(out))
    dim = load_train(ROOT / "params.yaml", "fast").encoders["nafp"]["dim"]
    assert rows["embedding dim"] == str(dim) and "device_embed:" in out.splitlines()[-1]
    written = dict(r[:2] for r in _table_rows((tmp_path / "device.md").read_text()))
    assert written == rows  # the file holds the table that was printed


def test_train_step_speed_on_the_fast_profile(built: dict) -> None:
    root = built["root"]
    fast = load_train(built["params"], "fast")
    out = _run(str(ROOT / "benchmarks" / "train_step_speed.py"), "--params", str(built["params"]), "--profile",
               "fast", "--catalog", str(root / "catalog"), "--banks", str(root / "banks"), "--blocks", "1",
               "--batches", "1", "--steps", str(2 * fast.data.windows_per_segment), "--repeats", "2")
    assert out.startswith("profile `fast`") and "load average" in out
    rows = dict(r[:2] for r in _table_rows(out))
    assert {"data: pairs/s per worker (1 torch thread)", "model step: pairs/s (1 thread)"} <= set(rows)
    for name, value in rows.items():
        parts = [v.strip().rstrip("%") for v in value.split("/")]
        assert len(parts) == 3 and float(parts[0]) <= float(parts[1]) <= float(parts[2]), (name, value)


def test_tune_landmark_on_the_fixture_val_queries(built: dict, tmp_path: Path) -> None:
    from resonance.banks.stage import load_banks
    from resonance.config import QueriesParams, SimulateParams, load_section
    from resonance.queries.stage import run as build_queries

    root = built["root"]
    build_queries(load_section(built["params"], "queries", QueriesParams),
                  load_section(built["params"], "simulate", SimulateParams), load_banks(root / "banks"),
                  root / "catalog", root / "outside", tmp_path / "queries", progress=False)
    out = _run(str(ROOT / "benchmarks" / "tune_landmark.py"), "--params", str(built["params"]), "--catalog",
               str(root / "catalog"), "--queries", str(tmp_path / "queries" / "val"), "--index-tracks", "4",
               "--out", str(tmp_path / "landmark_tuning.md"))
    rows = _table_rows(out)
    assert len(rows) == 10 and "audfprint-style" in {r[0] for r in rows}
    assert "queries of the `val` set (songs of the `val` split)" in out
    assert (tmp_path / "landmark_tuning.md").read_text().startswith("# Landmark tuning on the `val` queries")
