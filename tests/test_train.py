"""`resonance train` end to end on the fixture catalog and banks with the `fast` profile: a real Lightning run,
a real MLflow sqlite store (registry + alias), a real ONNX export run in onnxruntime."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from resonance.banks.stage import load_banks
from resonance.cli import main
from resonance.config import ParamsError, SimulateParams, load_section, load_train, train_section
from resonance.model.embedder import Embedder, ModelError, load_model
from resonance.train.data import SegmentSource
from resonance.train.stage import catalog_tracks

from conftest import shrunk_params


@pytest.fixture(scope="module")
def trained(built: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One fast-profile training run through the CLI, logged to a throwaway MLflow sqlite store."""
    root = tmp_path_factory.mktemp("train")
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    (root / "mlruns").mkdir()
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    code = main(["-q", "--params", str(built["params"]), "train", "--profile", "fast",
                 "--catalog", str(built["root"] / "catalog"), "--banks", str(built["root"] / "banks"),
                 "--out", str(root / "model"), "--metrics", str(root / "train_metrics.json")])
    yield {"root": root, "uri": uri, "code": code, "model": root / "model", "params": built["params"],
           "built": built}
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old


def test_fast_run_writes_model_onnx_curves_and_summary(trained: dict) -> None:
    assert trained["code"] == 0
    out = trained["model"]
    for name in ("model.pt", "model.onnx", "curves.png", "train.json", "checkpoints/best.ckpt"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    summary = json.loads((out / "train.json").read_text())
    fast = load_train(trained["params"], "fast")
    assert summary["stopped_by"] in ("max_epochs", "early_stopping")
    assert summary["steps"] == summary["history"][-1]["step"]  # a step count, never the wall clock
    assert summary["steps"] % fast.steps_per_epoch == 0 and summary["steps"] <= fast.steps_per_epoch * fast.max_epochs
    if summary["stopped_by"] == "max_epochs":
        assert summary["steps"] == fast.steps_per_epoch * fast.max_epochs
    assert len(summary["history"]) == summary["steps"] // fast.steps_per_epoch  # one validation per epoch
    best = max(summary["history"], key=lambda h: h["window_recall"])
    assert summary["best_val_window_recall"] == round(best["window_recall"], 4)  # the checkpoint it kept
    assert 0.0 <= summary["best_val_top1"] <= 1.0 and summary["onnx_max_abs_diff"] < 1e-4
    headline = json.loads((trained["root"] / "train_metrics.json").read_text())
    assert headline["best_val_top1"] == summary["best_val_top1"]


def _music_windows(trained: dict, model: torch.nn.Module, n: int = 6) -> np.ndarray:
    import soundfile as sf

    track = catalog_tracks(trained["built"]["root"] / "catalog", "train")[0]
    audio, _ = sf.read(track.path, dtype="float32")
    return np.stack([audio[i * model.window // 2:i * model.window // 2 + model.window] for i in range(n)])


def test_model_round_trips_through_mlflow_registry_and_onnx(trained: dict) -> None:
    import mlflow
    import onnxruntime as ort

    bundle_model = load_model(trained["model"])
    x = torch.from_numpy(_music_windows(trained, bundle_model))
    with torch.inference_mode():
        ref = bundle_model(x).numpy()
    assert ref.shape == (6, bundle_model.dim)
    np.testing.assert_allclose(np.linalg.norm(ref, axis=1), 1.0, atol=1e-5)
    registered = load_model("models:/resonance-embedder@challenger")
    with torch.inference_mode():
        np.testing.assert_allclose(registered(x).numpy(), ref, atol=1e-6)
    session = ort.InferenceSession(str(trained["model"] / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"audio": x.numpy()})[0], ref, atol=1e-4)
    client = mlflow.MlflowClient(trained["uri"])
    version = client.get_model_version_by_alias("resonance-embedder", "challenger")
    run = client.get_run(version.run_id)
    assert run.data.params["encoder"] == "nafp" and run.data.params["profile"] == "fast"
    assert len(client.get_metric_history(run.info.run_id, "train/loss_step")) >= 1
    assert client.get_metric_history(run.info.run_id, "val/top1")
    info = mlflow.models.get_model_info(f"models:/resonance-embedder/{version.version}")
    assert info.signature is not None and tuple(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == (-1, 16000)


def test_batches_are_a_function_of_seed_epoch_and_index_and_spread_segments(built: dict) -> None:
    from resonance.train.stream import PairStream

    params = _two_windows(load_train(built["params"], "fast"))
    sim = load_section(built["params"], "simulate", SimulateParams)
    banks = load_banks(built["root"] / "banks")
    tracks = catalog_tracks(built["root"] / "catalog", "train")
    source = SegmentSource(tracks, params.data, sim, banks, 16000)
    one, two = (PairStream(source, 4, 5, seed=5) for _ in range(2))
    assert source.k == 2 and len(one) == 5 and one.n_blocks == 3
    a1, b1 = one.batch_at(3)
    a2, b2 = two.batch_at(3)
    assert a1.shape == b1.shape == (4, 16000) and a1.dtype == torch.float32 and torch.isfinite(b1).all()
    assert torch.equal(a1, a2) and torch.equal(b1, b2)
    streamed = list(one)  # one process: the blocks in order, each block's k batches one after another
    assert len(streamed) == 5 and torch.equal(streamed[3][1], b1) and streamed[4][0].shape == (4, 16000)
    # the two batches of a block hold consecutive windows of the same stretches: clean anchors line up with
    # the music read at the window's start (up to the jitter), concert views differ from batch to batch
    assert not torch.equal(streamed[2][1], streamed[3][1])
    two.epoch = 1
    assert not torch.equal(two.batch_at(3)[1], b1)
    # the stretch ids: shared by a block's batches, new for every block and epoch
    assert torch.equal(streamed[2][2], streamed[3][2]) and not set(streamed[1][2].tolist()) & set(
        streamed[2][2].tolist())
    assert not set(two.stretch_ids(1).tolist()) & set(one.stretch_ids(1).tolist())


def test_the_loader_can_make_the_log_mel(built: dict) -> None:
    """With the model's frontend as `features`, a batch is the log-mel of the very audio batch (computed on the
    loader's core), and training on either gives the same loss."""
    from resonance.model.builders import build_frontend
    from resonance.train.module import ContrastiveModule
    from resonance.train.stream import PairStream

    params = _two_windows(load_train(built["params"], "fast"))
    sim = load_section(built["params"], "simulate", SimulateParams)
    banks = load_banks(built["root"] / "banks")
    source = SegmentSource(catalog_tracks(built["root"] / "catalog", "train"), params.data, sim, banks, 16000)
    frontend = build_frontend(params.frontend)
    audio, mels = PairStream(source, 4, 3, seed=2), PairStream(source, 4, 3, seed=2, features=frontend)
    (a, b), (ma, mb) = audio.batch_at(1), mels.batch_at(1)
    assert ma.shape == (4, *frontend(a).shape[1:])
    torch.testing.assert_close(ma, frontend(a))
    torch.testing.assert_close(mb, frontend(b))
    torch.manual_seed(0)
    module = ContrastiveModule(_no_masking(params))
    assert torch.allclose(module.training_step((a, b), 0), module.training_step((ma, mb), 0), atol=1e-5)


def _no_masking(params):
    """The params without SpecAugment (its masks are random draws: two steps would differ)."""
    import dataclasses

    return dataclasses.replace(params, augment=dataclasses.replace(params.augment, freq_masks=0, time_masks=0))


def _two_windows(params):
    """The params with segments of 2 windows (so a block is 2 batches: the layouts below are written for it)."""
    import dataclasses

    return dataclasses.replace(params, data=dataclasses.replace(params.data, windows_per_segment=2))


def test_workers_render_each_block_once_and_yield_the_same_batches(built: dict) -> None:
    from resonance.train.data import worker_context, worker_init
    from resonance.train.stream import PairStream

    params = _two_windows(load_train(built["params"], "fast"))
    sim = load_section(built["params"], "simulate", SimulateParams)
    banks = load_banks(built["root"] / "banks")
    source = SegmentSource(catalog_tracks(built["root"] / "catalog", "train"), params.data, sim, banks, 16000)
    stream = PairStream(source, 3, 7, seed=11)  # 4 blocks of 2 batches, the last one half used
    alone = list(stream)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2, worker_init_fn=worker_init,
                                         multiprocessing_context=worker_context())
    shared = list(loader)
    assert len(alone) == len(shared) == 7
    key = lambda batch: batch[1].numpy().tobytes()  # noqa: E731
    assert sorted(map(key, alone)) == sorted(map(key, shared))  # the same batches, in another order
    assert key(shared[0]) == key(alone[0]) and key(shared[1]) == key(alone[2])  # worker 1 starts at block 1


def test_segments_are_consecutive_windows_of_one_stretch(built: dict) -> None:
    from dataclasses import replace

    params = load_train(built["params"], "fast")
    data = replace(params.data, clean_anchor_prob=1.0, offset_jitter_s=0.0, windows_per_segment=2, segment_hop_s=1.0)
    sim = load_section(built["params"], "simulate", SimulateParams)
    banks = load_banks(built["root"] / "banks")
    tracks = catalog_tracks(built["root"] / "catalog", "train")
    rng = np.random.default_rng(3)
    a, b = SegmentSource(tracks, data, sim, banks, 16000).segment(rng)
    assert a.shape == b.shape == (2, 16000)
    # no jitter, clean anchors: the two anchors are one stretch of some track's samples, back to back
    import soundfile as sf

    found = False
    for track in tracks:
        audio, _ = sf.read(track.path, dtype="float32")
        hits = np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(audio, 64) == a[0, :64], axis=1))
        for h in hits:
            found |= bool(np.array_equal(audio[h:h + 32000], a.reshape(-1)))
    assert found
    # with a half-window segment hop, the windows overlap by half: one render gives twice the pairs
    half = SegmentSource(tracks, replace(data, segment_hop_s=0.5), sim, banks, 16000)
    a, b = half.segment(np.random.default_rng(3))
    assert a.shape == b.shape == (2, 16000)
    np.testing.assert_array_equal(a[0, 8000:], a[1, :8000])
    np.testing.assert_array_equal(b[0, 8000:], b[1, :8000])  # the same concert view, cut twice


def test_embedder_windows_long_audio_and_pads_short_audio(trained: dict) -> None:
    embedder = Embedder(load_model(trained["model"]))
    assert embedder.embed(np.zeros(40000, np.float32) + 0.01).shape == (4, embedder.dim)  # 2.5 s at 0.5 s hop
    assert embedder.embed(np.full(8000, 0.01, np.float32)).shape == (1, embedder.dim)
    with pytest.raises(ValueError, match="mono"):
        embedder.embed(np.zeros((2, 16000), np.float32))


def test_profiles_and_bad_train_params_are_clear_errors(tmp_path: Path) -> None:
    raw = shrunk_params()["train"]
    assert train_section(raw, "fast").batch_size < train_section(raw, "default").batch_size
    with pytest.raises(ParamsError, match="unknown profile"):
        train_section(raw, "huge")
    bad = {**raw, "profiles": {"fast": {"batch_sise": 4}}}
    with pytest.raises(ParamsError, match="batch_sise"):
        train_section(bad, "fast")
    with pytest.raises(ParamsError, match="train.encoder"):
        train_section({**raw, "encoder": "resnet"})
    params = shrunk_params()
    params["train"].update(profile="default", batch_size=1)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert main(["--params", str(path), "train", "--catalog", str(tmp_path / "none"), "--out",
                 str(tmp_path / "model")]) == 2
    assert not (tmp_path / "model").exists()


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no model here"):
        load_model(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a resonance model bundle"):
        load_model(tmp_path / "model.pt")


def test_log_lines_report_progress_without_changing_what_is_trained() -> None:
    import io

    import lightning as L

    from resonance.train.loglines import LogLines

    class Toy(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(4, 1))

        def training_step(self, batch, batch_idx):
            return torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])

        def validation_step(self, batch, batch_idx):
            self.log("val/top1", 1.0 - torch.nn.functional.mse_loss(self.net(batch[0]), batch[1]))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def fit(callbacks: list) -> torch.Tensor:
        L.seed_everything(3, verbose=False)
        data = torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randn(32, 1))
        loader = torch.utils.data.DataLoader(data, batch_size=4, shuffle=True)
        toy = Toy()
        trainer = L.Trainer(max_epochs=2, callbacks=callbacks, logger=False, enable_progress_bar=False,
                            enable_checkpointing=False, enable_model_summary=False, deterministic=True)
        trainer.fit(toy, loader, loader)
        return torch.cat([p.detach().flatten() for p in toy.parameters()])

    out = io.StringIO()
    with_lines = fit([LogLines(16, log_every_s=0.0, stream=out)])
    lines = out.getvalue().splitlines()
    assert lines[0] == "train: 16 steps, 2 epochs" and lines[-1].startswith("train: done: 16 steps in ")
    assert "train: epoch 2/2, step 16/16 (100%), loss " in out.getvalue() and "ETA 0:00" in out.getvalue()
    assert sum("validation after epoch" in line and "top1" in line for line in lines) == 2
    assert torch.equal(with_lines, fit([]))  # the same weights: the lines draw nothing


def test_a_step_with_a_non_finite_loss_is_skipped_and_too_many_stop_the_run() -> None:
    """A batch whose loss is NaN (here: NaN audio) is skipped, not learned from: no loss to back-propagate, the
    weights untouched; past 1% of the run's steps such steps are an error naming the fix."""
    from resonance.train.module import ContrastiveModule
    from resonance.train.stage import TrainError

    params = train_section(shrunk_params()["train"], "fast")
    module = ContrastiveModule(params)
    module.log = lambda *args, **kwargs: None  # no Trainer here to log to
    window = round(params.window_s * 16000)
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.standard_normal((4, window)).astype(np.float32) * 0.1)
    b = a + 0.01 * torch.from_numpy(rng.standard_normal((4, window)).astype(np.float32))
    loss = module.training_step((a, b), 0)
    assert loss is not None and torch.isfinite(loss) and module.nonfinite_steps == 0
    before = [p.detach().clone() for p in module.parameters()]
    bad = b.clone()
    bad[1, 100] = float("nan")
    assert module.training_step((a, bad), 1) is None and module.nonfinite_steps == 1
    assert all(torch.equal(x, p) for x, p in zip(before, module.parameters()))
    limit = max(1, int(0.01 * params.steps_per_epoch * params.max_epochs))
    with pytest.raises(TrainError, match="diverged"):
        for step in range(limit + 1):
            module.training_step((a, bad), 2 + step)
