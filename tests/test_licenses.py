"""A track's license from debian/copyright: DEP-5 stanzas by path, free-form text by wording."""

from resonance.catalog.licenses import license_for

from conftest import DEP5

FREEFORM = """This package was debianized by someone.
  This program is free software; you can redistribute it and/or modify
  it under the terms of the GNU General Public License as published by
  the Free Software Foundation; either version 2 of the License, or
  (at your option) any later version.
"""


def test_dep5_last_matching_stanza_wins() -> None:
    assert license_for(DEP5, "usr/share/games/fixture/music/song_0.ogg") == "GPL-2+"
    assert license_for(DEP5, "usr/share/games/fixture/music/bonus_theme.ogg") == "CC-BY-SA-3.0"


def test_dep5_pattern_matches_inside_a_container() -> None:
    assert license_for(DEP5, "usr/share/x/0music.pk3!music/bonus_a.ogg") == "CC-BY-SA-3.0"


def test_freeform_gpl_and_unknown() -> None:
    assert license_for(FREEFORM, "a/b.ogg") == "GPL-2+"
    assert license_for("Copyright 2001 nobody, all rights reserved", "a/b.ogg") == "unknown"


def test_creative_commons_legal_code_without_a_name() -> None:
    legal = ("THE WORK IS PROVIDED UNDER THE TERMS OF THIS CREATIVE COMMONS PUBLIC LICENSE ... "
             "License Elements means the following high-level license attributes: Attribution, ShareAlike.")
    assert license_for(legal, "music/a.ogg") == "CC-BY-SA"
