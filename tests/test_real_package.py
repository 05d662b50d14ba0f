"""One real Debian music package end to end: apt-get download, extraction, tracker-module decoding, license.

Uses the network to Debian's archive (a 1.5 MB package); skipped where apt cannot see the package.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from resonance.catalog.manifest import load_manifest
from resonance.catalog.stage import run
from resonance.config import CatalogParams, ValidateParams, load_section
from resonance.validate.stage import run as validate

from conftest import ROOT

PACKAGE = "tecnoballz-data"  # 15 MOD tracker tunes by one composer, GPL-3+


def _apt_knows(package: str) -> bool:
    if shutil.which("apt-cache") is None:
        return False
    proc = subprocess.run(["apt-cache", "show", package], capture_output=True, text=True)
    return proc.returncode == 0 and "Package:" in proc.stdout


@pytest.mark.network
@pytest.mark.skipif(not _apt_knows(PACKAGE), reason=f"apt lists do not know {PACKAGE} (run `apt-get update`)")
def test_real_package_becomes_a_valid_catalog(tmp_path: Path) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["catalog"]["profiles"]["one"] = {"max_tracks": 4, "packages": [PACKAGE]}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    cat = load_section(path, "catalog", CatalogParams)
    header = run(cat, tmp_path / "catalog", tmp_path / "cache", profile="one", progress=False)
    tracks = load_manifest(tmp_path / "catalog")
    assert header["tracks"] == len(tracks) == 4
    assert all(t.package == PACKAGE and t.license.startswith("GPL") and t.duration_s >= 45 for t in tracks)
    assert all(t.source_path.endswith(".mod") for t in tracks)
    summary = validate(load_section(path, "validate", ValidateParams), tmp_path / "catalog", tmp_path / "v",
                       tmp_path / "m.json", progress=False)
    assert summary["tracks"] == 4
    failed = [r for r in json.loads((tmp_path / "v" / "results.json").read_text()) if not r["success"]]
    # With only four tracks a split may be empty; everything else about real audio must pass.
    assert all(r["suite"] == "split_counts" or r["expectation"] == "expect_column_distinct_values_to_contain_set"
               for r in failed), failed
