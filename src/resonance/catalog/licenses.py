"""A track's license from its package's debian/copyright file.

Machine-readable (DEP-5) files: the license of the last `Files:` stanza whose pattern matches the track's
path (DEP-5's own rule), falling back to the `Files: *` stanza. Free-form files: the license named in the
text, recognised by the usual wording. Returns "unknown" when nothing is recognised.
"""

from __future__ import annotations

import fnmatch
import re

_FREEFORM = [  # (regex on the free-form text, short license name), most specific first
    (r"GNU (Lesser|Library) General Public License.{0,200}?version 2\.1", "LGPL-2.1+"),
    (r"GNU (Lesser|Library) General Public License", "LGPL"),
    (r"GNU General Public License.{0,200}?version 3.{0,80}?(any later|later version)", "GPL-3+"),
    (r"GNU General Public License.{0,200}?version 2.{0,80}?(any later|later version)", "GPL-2+"),
    (r"GNU General Public License.{0,200}?version 3", "GPL-3"),
    (r"GNU General Public License.{0,200}?version 2", "GPL-2"),
    (r"GNU General Public License", "GPL"),
    (r"Creative Commons Attribution[- ]Share[- ]?Alike", "CC-BY-SA"),
    (r"Creative Commons Attribution", "CC-BY"),
    (r"CREATIVE COMMONS PUBLIC LICENSE.*License Elements.*ShareAlike", "CC-BY-SA"),  # the legal code itself
    (r"CREATIVE COMMONS PUBLIC LICENSE", "CC-BY"),
    (r"Permission to use, copy, modify, and/or distribute this software", "ISC"),
    (r"Permission is hereby granted, free of charge", "Expat"),
    (r"Artistic License", "Artistic"),
    (r"public domain", "public-domain"),
]


def license_for(copyright_text: str, source_path: str) -> str:
    """Short license name (e.g. "GPL-2+", "CC-BY-SA-3.0") for a track at `source_path` in the package."""
    stanzas = parse_dep5(copyright_text)
    if stanzas:
        found = None
        for patterns, lic in stanzas:
            if any(_path_matches(source_path, p) for p in patterns):
                found = lic
        if found:
            return found
    flat = re.sub(r"\s+", " ", copyright_text)
    for regex, name in _FREEFORM:
        if re.search(regex, flat, flags=re.IGNORECASE):
            return name
    return "unknown"


def parse_dep5(text: str) -> list[tuple[list[str], str]]:
    """[(file patterns, license short name)] for each `Files:` stanza; [] if not a DEP-5 file."""
    if not re.search(r"^Format:.*(copyright-format|dep5|DEP-5)", text, flags=re.MULTILINE | re.IGNORECASE):
        return []
    out = []
    for block in re.split(r"\n\s*\n", text):
        fields = _fields(block)
        if "files" in fields and fields.get("license"):
            out.append((fields["files"].split(), fields["license"].splitlines()[0].strip()))
    return out


def _fields(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
    return fields


def _path_matches(source_path: str, pattern: str) -> bool:
    """DEP-5 patterns name source-tree paths; an installed path matches if one of its tails does."""
    if pattern == "*":
        return True
    parts = source_path.replace("!", "/").split("/")
    tails = ["/".join(parts[i:]) for i in range(len(parts))]
    return any(fnmatch.fnmatchcase(tail, pattern) or fnmatch.fnmatchcase(tail, pattern.rstrip("/") + "/*")
               for tail in tails)
