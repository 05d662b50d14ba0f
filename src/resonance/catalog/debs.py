"""Debian packages as a music source: download a .deb (cached), pull matching audio out of it, no install.

Cache layout under `cache_dir`:
    debs/PKG_VERSION_all.deb          downloads (dropped after extraction unless keep_debs)
    sources/PKG/source.json           completion marker: version, copyright text, extracted members
    sources/PKG/files/NNNN_NAME       the extracted audio members
A package whose source.json matches the requested container+pattern is never downloaded again.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import tarfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from resonance.errors import ResonanceError
from resonance.io import write_json

SOURCE_FORMAT = 1


class CatalogError(ResonanceError, RuntimeError):
    """A problem that stops the catalog build (one line, naming the fix)."""


@dataclass(frozen=True)
class Member:
    """One extracted audio file: where it came from inside the package, and where it is now."""

    source_path: str  # member path in the .deb (container members: "CONTAINER!inner/path")
    file: str  # path relative to the package's cache folder


@dataclass(frozen=True)
class ExtractedPackage:
    """A package's audio members and copyright text, as extracted into the cache."""

    package: str
    version: str
    container: str | None
    pattern: str
    copyright: str
    members: list[Member]
    root: Path

    def path(self, member: Member) -> Path:
        return self.root / member.file


def fetch_package(package: str, container: str | None, pattern: str, cache_dir: Path,
                  keep_debs: bool = False) -> ExtractedPackage:
    """Extracted audio of `package`, from the cache if present, else downloading its .deb with apt-get."""
    root = cache_dir / "sources" / package
    cached = _load_cached(root, container, pattern)
    if cached is not None:
        return cached
    deb = find_deb(package, cache_dir / "debs") or download_deb(package, cache_dir / "debs")
    extracted = extract_deb(deb, package, container, pattern, root)
    if not keep_debs:
        deb.unlink(missing_ok=True)
    return extracted


def find_deb(package: str, debs_dir: Path) -> Path | None:
    """A .deb for `package` already in `debs_dir` (newest name first), or None."""
    hits = sorted(debs_dir.glob(f"{package}_*.deb"), reverse=True)
    return hits[0] if hits else None


def download_deb(package: str, debs_dir: Path, timeout_s: float = 1800.0) -> Path:
    """`apt-get download PACKAGE` into `debs_dir` (no root needed once apt lists exist)."""
    if shutil.which("apt-get") is None:
        raise CatalogError("apt-get not found: the catalog needs a Debian-family machine with apt")
    debs_dir.mkdir(parents=True, exist_ok=True)
    partial = debs_dir / "partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        proc = subprocess.run(["apt-get", "download", "-q", package], cwd=partial, capture_output=True,
                              text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise CatalogError(f"apt-get download {package} timed out after {timeout_s:.0f} s: "
                           "check the network, then re-run (finished packages stay cached)") from None
    debs = list(partial.glob("*.deb"))
    if proc.returncode != 0 or not debs:
        raise CatalogError(_explain_apt_failure(package, proc.stderr))
    target = debs_dir / debs[0].name
    debs[0].replace(target)
    shutil.rmtree(partial, ignore_errors=True)
    return target


def _explain_apt_failure(package: str, stderr: str) -> str:
    err = " ".join(line for line in stderr.splitlines() if line.startswith("E:")) or stderr.strip()
    if "Unable to locate package" in err or "has no installation candidate" in err or "No packages found" in err:
        return (f"package {package!r} is not in the apt lists: run `apt-get update` as root "
                f"(or `make setup`), or drop it from params.yaml catalog.profiles")
    if any(s in err for s in ("Failed to fetch", "Could not resolve", "Temporary failure", "Connection")):
        return (f"cannot download {package!r} from the Debian archive ({err[:160]}): check the network or "
                "apt proxy and re-run; packages already fetched stay cached in the cache folder")
    return f"apt-get download {package} failed: {err[:300]}"


def extract_deb(deb: Path, package: str, container: str | None, pattern: str, root: Path) -> ExtractedPackage:
    """Extract members matching `pattern` (inside `container` if given) and the copyright file."""
    regex = re.compile(pattern)
    version = _deb_version(deb)
    tmp_root = root.with_name(f".tmp-{root.name}")
    shutil.rmtree(tmp_root, ignore_errors=True)
    (tmp_root / "files").mkdir(parents=True)
    members: list[Member] = []
    copyright_text = ""
    with _fsys_tar(deb) as tar:
        for info in tar:
            name = info.name.removeprefix("./")
            if name == f"usr/share/doc/{package}/copyright" and info.isfile():
                copyright_text = _read(tar, info).decode("utf-8", errors="replace")
            elif container is not None and name == container and info.isfile():
                members += _extract_zip(_read(tar, info), container, regex, tmp_root, len(members))
            elif container is None and info.isfile() and regex.search(name):
                members.append(_save(tmp_root, len(members), name, _read(tar, info)))
    result = ExtractedPackage(package, version, container, pattern, copyright_text, members, root)
    meta = {k: v for k, v in asdict(result).items() if k != "root"} | {"format": SOURCE_FORMAT}
    write_json(tmp_root / "source.json", meta)
    shutil.rmtree(root, ignore_errors=True)
    tmp_root.replace(root)
    return result


def _extract_zip(blob: bytes, container: str, regex: re.Pattern[str], root: Path, start: int) -> list[Member]:
    out: list[Member] = []
    try:
        zf = zipfile.ZipFile(io.BytesIO(blob))
    except zipfile.BadZipFile as exc:
        raise CatalogError(f"{container}: not a readable zip/pk3 container: {exc}") from None
    for name in sorted(zf.namelist()):
        if not name.endswith("/") and regex.search(name):
            out.append(_save(root, start + len(out), f"{container}!{name}", zf.read(name)))
    return out


def _save(root: Path, index: int, source_path: str, data: bytes) -> Member:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", source_path.rsplit("/", 1)[-1])[-80:]
    rel = f"files/{index:04d}_{base}"
    (root / rel).write_bytes(data)
    return Member(source_path=source_path, file=rel)


def _read(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    fh = tar.extractfile(info)
    return fh.read() if fh is not None else b""


class _fsys_tar:
    """Context manager: the .deb's data archive as a streaming tarfile (via `dpkg-deb --fsys-tarfile`)."""

    def __init__(self, deb: Path):
        self.deb = deb

    def __enter__(self) -> tarfile.TarFile:
        if shutil.which("dpkg-deb") is None:
            raise CatalogError("dpkg-deb not found: install Debian's `dpkg` package")
        self.proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(self.deb)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.tar = tarfile.open(fileobj=self.proc.stdout, mode="r|*")
        return self.tar

    def __exit__(self, *exc: object) -> None:
        self.tar.close()
        assert self.proc.stdout is not None
        self.proc.stdout.read()
        err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
        if self.proc.wait() != 0 and exc[0] is None:
            raise CatalogError(f"{self.deb.name}: not a readable .deb: {err.strip()[:200]}")


def _deb_version(deb: Path) -> str:
    proc = subprocess.run(["dpkg-deb", "--field", str(deb), "Version"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise CatalogError(f"{deb.name}: not a readable .deb: {proc.stderr.strip()[:200]}")
    return proc.stdout.strip()


def _load_cached(root: Path, container: str | None, pattern: str) -> ExtractedPackage | None:
    marker = root / "source.json"
    if not marker.is_file():
        return None
    meta = json.loads(marker.read_text())
    if meta.get("format") != SOURCE_FORMAT or meta.get("container") != container or meta.get("pattern") != pattern:
        return None
    members = [Member(**m) for m in meta["members"]]
    if not all((root / m.file).is_file() for m in members):
        return None
    return ExtractedPackage(meta["package"], meta["version"], container, pattern, meta["copyright"], members, root)
