"""Training with DataLoader workers, twice with the same seed: once in a plain real Lightning fit, once inside a
real Prefect flow run (prefect_test_harness). Both use the project's `fast` profile with `train.data.workers: 1`
(the forkserver path the default profile takes), log to one throwaway MLflow sqlite store, and must end with
bit-identical weights. The registered `mlflow.pytorch` model itself (not only the model.pt bundle logged beside
it) must load and embed like model.pt.

Also: the concert chain renders the same bits in another interpreter (another hash seed, other global RNG state).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from resonance.cli import main
from resonance.model.embedder import Embedder, load_model
from resonance.train.stage import catalog_tracks

from conftest import ROOT

pytestmark = pytest.mark.timeout(1800)  # two fast trainings on a shared 2-core machine


def _train_args(params: Path, built: dict, out: Path) -> list[str]:
    root = built["root"]
    return ["-q", "--params", str(params), "train", "--profile", "fast", "--catalog", str(root / "catalog"),
            "--banks", str(root / "banks"), "--out", str(out)]


@pytest.fixture(scope="module")
def runs(built: dict, prefect_harness, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two fast-profile trainings with one DataLoader worker: `plain` (the CLI in this process) and `flow` (the
    same inside a Prefect flow run), same params, same seed, one MLflow store."""
    from multiprocessing import forkserver

    from prefect import flow, task

    root = tmp_path_factory.mktemp("determinism")
    params = yaml.safe_load(built["params"].read_text())
    fast = params["train"]["profiles"]["fast"]
    data = fast.setdefault("data", {})
    data["workers"] = 1
    k = data.get("windows_per_segment", params["train"]["data"]["windows_per_segment"])
    # Shrunk to two epochs of two blocks (validation, checkpoint choice and the epoch reseed all run), and a time
    # guard that never binds: `max_time` stops at a wall-clock moment, which no seed can make reproducible.
    fast.update(steps_per_epoch=2 * k, max_epochs=2, max_time_min=120.0)
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "mlruns").mkdir()
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri

    @task
    def train_task(out: str) -> int:
        return main(_train_args(path, built, Path(out)))

    @flow(name="train-with-workers")
    def train_flow(out: str) -> int:
        return train_task(out)

    try:
        plain = main(_train_args(path, built, root / "plain"))
        forkserver_pid = forkserver._forkserver._forkserver_pid  # set once a worker was started from it
        state = train_flow(str(root / "flow"), return_state=True)
        yield {"root": root, "uri": uri, "params": path, "built": built, "plain": plain,
               "flow_state": state, "forkserver_pid": forkserver_pid}
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old


def _summary(runs: dict, name: str) -> dict:
    return json.loads((runs["root"] / name / "train.json").read_text())


def test_a_fit_with_dataloader_workers_trains(runs: dict) -> None:
    assert runs["plain"] == 0
    assert runs["forkserver_pid"] is not None, "no DataLoader worker was started from the forkserver"
    summary = _summary(runs, "plain")
    from resonance.config import load_train

    fast = load_train(runs["params"], "fast")
    assert fast.data.workers == 1
    assert summary["steps"] == fast.steps_per_epoch * fast.max_epochs  # every step got its batch from the worker
    assert summary["stopped_by"] == "max_epochs" and len(summary["history"]) == fast.max_epochs
    import mlflow

    client = mlflow.MlflowClient(runs["uri"])
    run = client.get_run(summary["mlflow_run_id"])
    assert run.data.params["data.workers"] == "1" and run.data.params["profile"] == "fast"


def test_a_fit_with_dataloader_workers_inside_a_prefect_flow_run(runs: dict) -> None:
    state = runs["flow_state"]
    assert state.is_completed(), state
    assert state.result() == 0
    assert (runs["root"] / "flow" / "model.pt").is_file()
    assert _summary(runs, "flow")["steps"] == _summary(runs, "plain")["steps"]


def test_two_trainings_with_the_same_seed_give_identical_weights(runs: dict) -> None:
    a, b = (torch.load(runs["root"] / name / "model.pt", weights_only=True) for name in ("plain", "flow"))
    assert a["state_dict"].keys() == b["state_dict"].keys() and len(a["state_dict"]) > 10
    differ = [k for k in a["state_dict"] if not torch.equal(a["state_dict"][k], b["state_dict"][k])]
    assert differ == [], f"weights differ between two same-seed trainings: {differ[:5]}"
    sa, sb = _summary(runs, "plain"), _summary(runs, "flow")
    assert [h["top1"] for h in sa["history"]] == [h["top1"] for h in sb["history"]]
    assert sa["mlflow_run_id"] != sb["mlflow_run_id"]  # two runs, not one logged twice


def _music_windows(built: dict, n: int = 8) -> np.ndarray:
    """(n, 16000) float32: consecutive 1 s windows (0.5 s apart) of a real catalog FLAC."""
    track = catalog_tracks(built["root"] / "catalog", "train")[0]
    audio, sr = sf.read(track.path, dtype="float32")
    return np.stack([audio[i * sr // 2:i * sr // 2 + sr] for i in range(n)])


def test_the_registered_mlflow_pytorch_model_embeds_like_model_pt(runs: dict) -> None:
    import mlflow
    import mlflow.pyfunc
    import mlflow.pytorch

    summary = _summary(runs, "flow")
    version = summary["model_version"]
    uri = f"models:/resonance-embedder/{version}"
    client = mlflow.MlflowClient(runs["uri"])
    assert str(client.get_model_version_by_alias("resonance-embedder", "challenger").version) == str(version)
    x = _music_windows(runs["built"])
    bundle = load_model(runs["root"] / "flow")
    with torch.inference_mode():
        want = bundle(torch.from_numpy(x)).numpy()
    flavour = mlflow.pytorch.load_model(uri)  # the pytorch flavour itself, not the model.pt beside it
    with torch.inference_mode():
        got = flavour(torch.from_numpy(x))
    got = got.detach().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    assert got.shape == want.shape == (8, bundle.dim)
    np.testing.assert_allclose(got, want, atol=1e-5)
    predicted = np.asarray(mlflow.pyfunc.load_model(uri).predict(x))  # what `mlflow models serve` would run
    np.testing.assert_allclose(predicted, want, atol=1e-5)
    track = catalog_tracks(runs["built"]["root"] / "catalog", "train")[0]
    audio, sr = sf.read(track.path, dtype="float32")  # the same stretch the windows were cut from
    windows = Embedder(bundle).embed(audio[:sr * 9 // 2], hop_s=0.5)  # and the Embedder path agrees with both
    assert windows.shape == want.shape
    np.testing.assert_allclose(windows, want, atol=1e-5)


CHAIN = textwrap.dedent("""
    import random, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_simulate_mix import _concert
    from conftest import music_clip
    np.random.seed({noise}); random.seed({noise})  # other global RNG state: must not matter
    music = music_clip(2.0, seed=16, sr=16000)
    crowd = np.random.default_rng(9).standard_normal(16000).astype(np.float32)
    sys.stdout.buffer.write(_concert(21, music, crowd).tobytes())
""")


def test_the_concert_chain_renders_the_same_bits_in_another_process() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_simulate_mix import _concert

    from conftest import music_clip

    music = music_clip(2.0, seed=16, sr=16000)
    crowd = np.random.default_rng(9).standard_normal(16000).astype(np.float32)
    here = _concert(21, music, crowd).tobytes()
    for hash_seed, noise in (("1", 3), ("987", 4)):
        proc = subprocess.run([sys.executable, "-c", CHAIN.format(tests=str(ROOT / "tests"), noise=noise)],
                              capture_output=True, env={**os.environ, "PYTHONHASHSEED": hash_seed,
                                                        "OMP_NUM_THREADS": "1"}, timeout=300)
        assert proc.returncode == 0, proc.stderr.decode()
        assert proc.stdout == here, f"hash seed {hash_seed}: other bits"
