"""Field tests: the default field set built from (stand-ins of) the measured responses through the real DVC stage,
its evaluation per venue and device next to the simulated figures, and a bad field CSV (unknown track id,
missing file, missing column) named by row."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_support import IR_FILES, IR_PKG
from resonance.field.build import FieldError
from resonance.field.evaluate import read_csv

# The fixture project is built once through the real pipeline: a few minutes on an idle 2-core machine, up to
# an hour when other jobs hold both cores (its build counts against the first test that needs it).
pytestmark = pytest.mark.timeout(5400)

def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_field_set_is_built_from_the_measured_responses(mlops_project: dict) -> None:
    from resonance.audio import decode
    from resonance.catalog.manifest import load_manifest

    field = mlops_project["dir"] / "data" / "field"
    header = json.loads((field / "field.json").read_text())
    assert "stands in for real field recordings" in header["note"]
    assert {r["package"] for r in header["responses"]} == {IR_PKG}
    assert {r["member"] for r in header["responses"]} == set(IR_FILES)
    rows = _rows(field / "field.csv")
    assert list(rows[0]) == ["file", "track_id", "venue", "device", "offset_s", "snr_db", "source"]
    cells = {(r["venue"], r["device"]) for r in rows}
    assert cells == {(v, d) for v in ("greathall", "street") for d in ("phone", "recorder")}
    unseen = {t.track_id for t in load_manifest(mlops_project["dir"] / "data/catalog") if t.split == "unseen"}
    for r in rows:
        assert (r["track_id"] in unseen) if r["source"] == "catalog" else r["track_id"] == ""
        audio = decode(field / r["file"], 16000)
        assert audio.size == pytest.approx(3.0 * 16000, abs=2000) and r["file"].endswith(".ogg")
    assert sum(r["source"] == "outside" for r in rows) == 4  # one per venue x device


def test_field_evaluation_per_venue_and_device_beside_the_simulated_figures(mlops_project: dict) -> None:
    from mlflow.tracking import MlflowClient

    proj = mlops_project["dir"]
    metrics = json.loads((proj / "data" / "evaluate_field" / "metrics.json").read_text())
    assert metrics["all"]["n"] == 12 and metrics["all"]["n_in"] == 8 and metrics["all"]["n_out"] == 4
    assert set(metrics["venue"]) == {"greathall", "street"} and set(metrics["device"]) == {"phone", "recorder"}
    assert sum(g["n"] for g in metrics["venue_device"].values()) == 12
    clips = metrics["clips"]  # recount every group from the per-clip answers (not a range check: that always holds)
    groups = [("all", metrics["all"], clips)]
    groups += [(v, g, [c for c in clips if c["venue"] == v]) for v, g in metrics["venue"].items()]
    groups += [(d, g, [c for c in clips if c["device"] == d]) for d, g in metrics["device"].items()]
    for name, g, mine in groups:
        inside, out = [c for c in mine if c["truth"] is not None], [c for c in mine if c["truth"] is None]
        right = sum(c["accepted"] and c["predicted"] == c["truth"] for c in inside)
        assert (g["n_in"], g["n_out"]) == (len(inside), len(out)), name
        assert g["top1"] == round(right / len(inside), 4) and g["far"] == round(
            sum(c["accepted"] for c in out) / len(out), 4), name
    headline = json.loads((proj / "metrics" / "field.json").read_text())
    assert headline["field_top1"] == metrics["all"]["top1"] and "field_far_device_phone" in headline
    assert "stands in for real field clips" in (proj / "data" / "evaluate_field" / "report.md").read_text()
    runs = MlflowClient(mlops_project["uri"]).search_runs(
        [e.experiment_id for e in MlflowClient(mlops_project["uri"]).search_experiments()
         if e.name == "evaluate"])
    kinds = {r.data.params.get("kind", "simulated"): r for r in runs if r.data.params.get("method") == "embedding"}
    assert {"field", "simulated"} <= set(kinds)  # the field run sits beside the simulated evaluation
    assert kinds["field"].data.metrics["field/top1/all"] == metrics["all"]["top1"]


def _write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns or ["file", "track_id", "venue", "device"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_bad_field_csv_is_a_clear_error_naming_the_row(mlops_project: dict, tmp_path: Path) -> None:
    field = mlops_project["dir"] / "data" / "field"
    good = _rows(field / "field.csv")[0]
    known = {good["track_id"]}
    clip = str((field / good["file"]).resolve())
    ok = {"file": clip, "track_id": good["track_id"], "venue": "club", "device": "phone"}
    assert read_csv(_write_csv(tmp_path / "ok.csv", [ok]), known)[0].track_id == good["track_id"]
    unknown = _write_csv(tmp_path / "unknown.csv", [ok, {**ok, "track_id": "no-such-song"}])
    with pytest.raises(FieldError, match=r"row 2 .*track_id 'no-such-song' is not in the index"):
        read_csv(unknown, known)
    missing = _write_csv(tmp_path / "missing.csv", [{**ok, "file": "clips/gone.ogg"}, ok])
    with pytest.raises(FieldError, match=r"row 1 \(clips/gone.ogg\): file not found"):
        read_csv(missing, known)
    with pytest.raises(FieldError, match=r"missing column\(s\) \['venue'\]"):
        read_csv(_write_csv(tmp_path / "cols.csv", [{"file": clip, "track_id": "", "device": "x"}],
                            ["file", "track_id", "device"]), known)
    # the same through the CLI against the deployed index: exit 2, one line naming the row, no traceback
    proc = subprocess.run([sys.executable, "-m", "resonance", "field", "evaluate", str(unknown), "--out",
                           str(tmp_path / "out")], cwd=mlops_project["dir"], capture_output=True, text=True)
    assert proc.returncode == 2 and "row 2" in proc.stderr and "no-such-song" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()
