"""params.yaml -> dataclasses: the real file loads; malformed params fail with the key named."""

from pathlib import Path

import pytest
import yaml

from resonance.config import CatalogParams, ParamsError, ValidateParams, load_section

from conftest import ROOT, shrunk_params


def test_real_params_load() -> None:
    cat = load_section(ROOT / "params.yaml", "catalog", CatalogParams)
    val = load_section(ROOT / "params.yaml", "validate", ValidateParams)
    prof, sources = cat.selected()
    assert prof.packages and set(prof.packages) == set(sources)
    assert len(prof.packages) >= 10
    assert val.sample_rates == [cat.sample_rate]


def _write(tmp_path: Path, params: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.parametrize("mutate, words", [
    (lambda c: c.pop("seed"), "missing key(s) ['seed']"),
    (lambda c: c.update(sedd=1), "unknown key(s) ['sedd']"),
    (lambda c: c.update(min_duration_s="long"), "catalog.min_duration_s: expected a number"),
    (lambda c: c.update(workers=1.5), "catalog.workers: expected an integer"),
    (lambda c: c.update(splits={"train": 0.9, "val": 0.2, "unseen": 0.1}), "sum to 1"),
    (lambda c: c.update(sample_rate=44100), "catalog.sample_rate"),
    (lambda c: c["sources"].update(x={"container": None}), "catalog.sources.x: missing key(s) ['pattern']"),
])
def test_malformed_catalog_params_name_the_key(tmp_path: Path, mutate, words: str) -> None:
    params = shrunk_params()
    mutate(params["catalog"])
    with pytest.raises(ParamsError, match=None) as err:
        load_section(_write(tmp_path, params), "catalog", CatalogParams)
    assert words in str(err.value)


def test_unknown_profile_and_package(tmp_path: Path) -> None:
    params = shrunk_params()
    params["catalog"]["profiles"]["bad"] = {"max_tracks": None, "packages": ["no-such-pkg"]}
    cat = load_section(_write(tmp_path, params), "catalog", CatalogParams)
    with pytest.raises(ParamsError, match="unknown profile 'nope'"):
        cat.selected("nope")
    with pytest.raises(ParamsError, match="no-such-pkg"):
        cat.selected("bad")


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("catalog: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_section(bad, "catalog", CatalogParams)
    with pytest.raises(ParamsError, match="no such params file"):
        load_section(tmp_path / "missing.yaml", "catalog", CatalogParams)
    bad.write_text("other: {}\n")
    with pytest.raises(ParamsError, match="no `catalog:` section"):
        load_section(bad, "catalog", CatalogParams)


@pytest.mark.parametrize("index_type, ivfpq, words", [
    ("ivf", {"nlist": 8, "nprobe": 2, "m": 8, "nbits": 8}, "index_type must be flat, hnsw or ivfpq"),
    ("ivfpq", {"nlist": 8, "nprobe": 2, "m": 8}, "ivfpq needs nlist, nprobe, m and nbits"),
    ("ivfpq", {"nlist": 8, "nprobe": 0, "m": 8, "nbits": 8}, "ivfpq needs"),
    ("ivfpq", {"nlist": 8, "nprobe": 2, "m": 8, "nbits": 20}, "nbits (1..16)"),
])
def test_malformed_index_type_params_name_the_key(tmp_path: Path, index_type: str, ivfpq: dict, words: str) -> None:
    from resonance.config import EmbeddingParams

    params = shrunk_params()
    params["embedding"].update(index_type=index_type, ivfpq=ivfpq)
    with pytest.raises(ParamsError) as err:
        load_section(_write(tmp_path, params), "embedding", EmbeddingParams)
    assert words in str(err.value) and "embedding" in str(err.value)
