"""A crash in the middle of an index save leaves the old index loadable and answering.

A child process saves a new, bigger EmbeddingIndex over a folder holding an old one and is killed (SIGKILL: no
cleanup, no `finally`) at a point it makes observable: while FAISS serializes, halfway through writing a part
file, or with every part written but not yet swapped in. The parent then loads the folder and searches it: the old
index, whole, answering exactly as before. Real FAISS, real files, a real kill.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from resonance.index.store import EmbeddingIndex

DIM, HOP = 16, 0.5
HERE = Path(__file__).resolve().parent


def planted_index(n_tracks: int, seed: int) -> tuple[EmbeddingIndex, np.ndarray]:
    """An index of n_tracks random tracks x 20 unit windows (model "planted"); returns it and the vectors
    (n_tracks, 20, DIM)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n_tracks, 20, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=-1, keepdims=True)
    index = EmbeddingIndex(DIM, 1.0, HOP, "planted")
    for t in range(n_tracks):
        index.add_track(f"s{seed}-t{t}", f"T{t}", vectors[t], HOP, 10.5, "planted")
    return index, vectors


# The child: build the new index, arm the kill point, save. The kill point writes `marker` and sleeps, so the
# parent can kill it exactly there.
CHILD = textwrap.dedent("""
    import os, pathlib, sys, time
    sys.path.insert(0, {here!r})
    from test_crash_safety import planted_index
    folder, marker, point = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]

    def stop_here():
        marker.write_text(point)
        time.sleep(600)

    index, _ = planted_index(12, seed=2)
    if point == "serialize":
        import faiss
        real_serialize = faiss.serialize_index
        faiss.serialize_index = lambda idx: (stop_here(), real_serialize(idx))[1]
    elif point == "write":
        real_write = pathlib.Path.write_bytes
        def half_then_stop(self, data):
            real_write(self, data[: len(data) // 2])
            stop_here()
        pathlib.Path.write_bytes = half_then_stop
    elif point == "before_swap":
        real_fsync = os.fsync
        os.fsync = lambda fd: (real_fsync(fd), stop_here())
    index.save(folder)
    print("saved without being killed")
""")


def _save_and_kill(folder: Path, point: str, tmp_path: Path) -> None:
    marker = tmp_path / f"{point}.reached"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(here=str(HERE)))
    proc = subprocess.Popen([sys.executable, str(script), str(folder), str(marker), point],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    reached = marker.exists()
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert reached, f"the save never reached {point!r}: {out}{err}"
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, out, err)


@pytest.mark.parametrize("point", ["serialize", "write", "before_swap"])
def test_a_save_killed_midway_leaves_the_old_index_answering(point: str, tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    old, old_vectors = planted_index(3, seed=1)
    old.save(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    build_id = EmbeddingIndex.load(folder).build_id

    _save_and_kill(folder, point, tmp_path)

    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before, "the old index folder was touched"
    assert list(tmp_path.glob(".tmp-idx.*")), "no half-written save beside it: the kill did not land mid-save"
    loaded = EmbeddingIndex.load(folder, "planted")
    assert loaded.build_id == build_id and loaded.n_windows == 3 * 20
    assert [t.track_id for t in loaded.tracks] == [f"s1-t{t}" for t in range(3)]
    scores, track, start = loaded.search(old_vectors[1, 5:8], 1)  # windows 5..7 of the second old track
    np.testing.assert_array_equal(track[:, 0], [1, 1, 1])
    np.testing.assert_array_equal(start[:, 0], [2.5, 3.0, 3.5])
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)

    new, new_vectors = planted_index(12, seed=2)  # the next save, with the debris of the killed one still there
    new.save(folder)
    again = EmbeddingIndex.load(folder, "planted")
    assert again.n_windows == 12 * 20 and again.build_id != build_id
    assert again.search(new_vectors[7, :1], 1)[1][0, 0] == 7
