"""Extracting music from real .deb files (plain members and zip/pk3 containers) and apt failures."""

import io
import shutil
import zipfile
from pathlib import Path

import pytest

from resonance.catalog.debs import (
    CatalogError,
    download_deb,
    extract_deb,
    fetch_package,
)

from conftest import DEP5, build_deb


def test_extracts_members_inside_a_zip_container(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("music/a.ogg", b"A" * 10)
        zf.writestr("music/b.ogg", b"B" * 10)
        zf.writestr("maps/c.ogg", b"C")
    deb = build_deb(tmp_path, "pk3-fixture", {"usr/share/x/0music.pk3": buf.getvalue()}, DEP5)
    pkg = extract_deb(deb, "pk3-fixture", "usr/share/x/0music.pk3", r"^music/.*\.ogg$", tmp_path / "out")
    assert [m.source_path for m in pkg.members] == ["usr/share/x/0music.pk3!music/a.ogg",
                                                    "usr/share/x/0music.pk3!music/b.ogg"]
    assert pkg.path(pkg.members[1]).read_bytes() == b"B" * 10
    assert pkg.version == "1.0-1" and "GPL-2+" in pkg.copyright


def test_cache_hit_ignores_a_changed_pattern(tmp_path: Path) -> None:
    debs = tmp_path / "cache" / "debs"
    debs.mkdir(parents=True)
    build_deb(debs, "plain-fixture", {"usr/share/m/a.ogg": b"a", "usr/share/m/b.mp3": b"b"}, DEP5)
    first = fetch_package("plain-fixture", None, r"\.ogg$", tmp_path / "cache", keep_debs=True)
    assert [m.source_path for m in first.members] == ["usr/share/m/a.ogg"]
    second = fetch_package("plain-fixture", None, r"\.(ogg|mp3)$", tmp_path / "cache", keep_debs=True)
    assert len(second.members) == 2


def test_corrupt_deb_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken_1.0_all.deb"
    bad.write_bytes(b"!<arch>\nthis is not a deb")
    with pytest.raises(CatalogError, match="not a readable .deb"):
        extract_deb(bad, "broken", None, ".", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get (Debian-family machine)")
def test_unknown_package_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as err:
        download_deb("resonance-no-such-package-xyz", tmp_path)
    msg = str(err.value)
    assert "apt-get update" in msg and "\n" not in msg


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get (Debian-family machine)")
def test_unreachable_archive_names_the_fix(tmp_path: Path, monkeypatch) -> None:
    conf = tmp_path / "apt.conf"  # a proxy on a closed local port: the archive is unreachable
    conf.write_text('Acquire::http::Proxy "http://127.0.0.1:9/";\nAcquire::Retries "0";\n')
    monkeypatch.setenv("APT_CONFIG", str(conf))
    with pytest.raises(CatalogError) as err:
        download_deb("tecnoballz-data", tmp_path / "debs")
    msg = str(err.value)
    assert "cannot download 'tecnoballz-data'" in msg and "check the network" in msg and "\n" not in msg
