"""The motion tokenizer: release-compatible VQ-VAE layout, encode/decode contract, save/load, training."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from backend.cli.main import main as cli_main
from backend.models.motion_tokenizer import MotionTokenizer, load_release_vqvae
from backend.models.vqvae import MotionVQVAE, VQVAEConfig
from backend.motion.features import extract_features
from backend.motion.normalize import Normalizer, compute_mean_std
from retarget import rotations as R
from retarget.skeleton import forward_kinematics
from training.vq.train_vq import TrainConfig, evaluate, load_split, root_crops, sample_batch, train

BUILTIN = Path(__file__).resolve().parents[1] / "backend" / "models" / "builtin"
TINY = VQVAEConfig(width=32, depth=2, code_dim=32)


def synthetic_joints(rng: np.random.Generator, frames: int) -> np.ndarray:
    """A made-up gait-like motion: one fixed swing pattern over all joints, with a per-clip tempo, phase,
    amplitude, walking speed and turning rate (few degrees of freedom, so a tiny VQ-VAE learns it fast)."""
    pattern = np.random.default_rng(0).uniform(-0.35, 0.35, (1, 22, 3))
    t = np.arange(frames)[:, None, None] / 20.0
    tempo, phase, scale = rng.uniform(0.6, 1.4), rng.uniform(0, 6.3), rng.uniform(0.5, 1.0)
    local = R.axis_angle_to_matrix(scale * pattern * np.sin(2 * np.pi * tempo * t + phase))
    yaw = rng.uniform(-0.3, 0.3) * t[:, 0, 0]
    local[:, 0] = R.axis_angle_to_matrix(np.stack([0 * yaw, yaw, 0 * yaw], -1)) @ local[:, 0]
    root = np.stack([0 * yaw, 0.95 + 0.02 * np.sin(4 * np.pi * tempo * t[:, 0, 0]), rng.uniform(0, 1.0) * t[:, 0, 0]], -1)
    return forward_kinematics(local, root)[0].astype(np.float32)


def write_dataset(folder: Path, n_train: int, n_test: int, seed: int = 0) -> Normalizer:
    """A HumanML3D-layout folder of synthetic motions."""
    rng = np.random.default_rng(seed)
    (folder / "new_joint_vecs").mkdir(parents=True)
    feats = {}
    for i in range(n_train + n_test):
        feats[f"{i:06d}"] = extract_features(synthetic_joints(rng, int(rng.integers(70, 110)))).features
        np.save(folder / "new_joint_vecs" / f"{i:06d}.npy", feats[f"{i:06d}"])
    names = sorted(feats)
    (folder / "train.txt").write_text("\n".join(names[:n_train]) + "\n")
    (folder / "test.txt").write_text("\n".join(names[n_train:]) + "\n")
    normalizer = Normalizer(*compute_mean_std([feats[n] for n in names[:n_train]]))
    normalizer.save(folder)
    return normalizer


@pytest.fixture(scope="module")
def normalizer() -> Normalizer:
    rng = np.random.default_rng(1)
    return Normalizer(*compute_mean_std([extract_features(synthetic_joints(rng, 60)).features for _ in range(6)]))


def test_release_layout_has_the_released_key_names_and_shapes():
    state = MotionVQVAE(VQVAEConfig()).state_dict()
    expected = {
        "vqvae.encoder.model.0.weight": (512, 263, 3),
        "vqvae.encoder.model.2.0.weight": (512, 512, 4),
        "vqvae.encoder.model.2.1.model.0.conv1.weight": (512, 512, 3),
        "vqvae.encoder.model.2.1.model.0.conv2.weight": (512, 512, 1),
        "vqvae.encoder.model.3.1.model.2.conv1.bias": (512,),
        "vqvae.encoder.model.4.weight": (512, 512, 3),
        "vqvae.decoder.model.0.weight": (512, 512, 3),
        "vqvae.decoder.model.2.0.model.2.conv2.weight": (512, 512, 1),
        "vqvae.decoder.model.2.2.weight": (512, 512, 3),
        "vqvae.decoder.model.3.2.bias": (512,),
        "vqvae.decoder.model.4.weight": (512, 512, 3),
        "vqvae.decoder.model.6.weight": (263, 512, 3),
        "vqvae.decoder.model.6.bias": (263,),
        "vqvae.quantizer.codebook": (512, 512),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    # 2 stages x 3 blocks x 2 convs x (weight, bias) per stack, plus the plain convs and the codebook
    assert len(state) == 67
    assert not [k for k in state if "code_sum" in k or "code_count" in k]


def test_dilations_run_9_3_1_in_encoder_and_decoder():
    model = MotionVQVAE(VQVAEConfig())
    enc = [b.conv1.dilation[0] for b in model.vqvae.encoder.model[2][1].model]
    dec = [b.conv1.dilation[0] for b in model.vqvae.decoder.model[3][0].model]
    assert enc == dec == [9, 3, 1]
    assert model.vqvae.decoder.model[2][1].mode == "nearest"


def test_motion_agent_checkpoint_loads_strictly(tmp_path, normalizer):
    torch.manual_seed(0)
    model = MotionVQVAE(VQVAEConfig()).eval()
    model.vqvae.quantizer.codebook.normal_()
    torch.save({"net": model.state_dict()}, tmp_path / "vqvae.pth")
    np.save(tmp_path / "mean.npy", normalizer.mean)
    np.save(tmp_path / "std.npy", normalizer.std)

    tok = load_release_vqvae(tmp_path / "vqvae.pth", tmp_path / "mean.npy", tmp_path / "std.npy")
    for key, value in model.state_dict().items():
        assert torch.equal(tok.model.state_dict()[key], value), key
    x = torch.randn(1, 16, 263)
    assert torch.equal(tok.model.encode(x), model.encode(x))

    broken = dict(model.state_dict())
    broken["vqvae.decoder.model.7.weight"] = broken.pop("vqvae.decoder.model.6.weight")
    torch.save({"net": broken}, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match=r"missing 1 keys \(vqvae.decoder.model.6.weight\).*unexpected.*model.7"):
        load_release_vqvae(tmp_path / "broken.pth", tmp_path / "mean.npy", tmp_path / "std.npy")
    torch.save(model.state_dict(), tmp_path / "bare.pth")
    with pytest.raises(ValueError, match="expected a dict with 'net'"):
        load_release_vqvae(tmp_path / "bare.pth", tmp_path / "mean.npy", tmp_path / "std.npy")


def test_encode_decode_shapes_ranges_and_bad_input():
    torch.manual_seed(0)
    model = MotionVQVAE(TINY).eval()
    model.vqvae.quantizer.codebook.normal_()
    codes = model.encode(torch.randn(2, 32, 263))
    assert codes.shape == (2, 8) and codes.dtype == torch.int64
    assert 0 <= int(codes.min()) and int(codes.max()) < 512
    assert model.decode(codes).shape == (2, 32, 263)
    assert model.decode(torch.tensor([0, 511, 7])).shape == (1, 12, 263)

    with pytest.raises(ValueError, match="263"):
        model.encode(torch.randn(1, 32, 251))
    with pytest.raises(ValueError, match="multiple of 4"):
        model.encode(torch.randn(1, 30, 263))
    with pytest.raises(ValueError, match=r"0\.\.511.*512"):
        model.decode(torch.tensor([[3, 512]]))
    with pytest.raises(ValueError, match=r"0\.\.511"):
        model.decode(torch.tensor([-1]))
    with pytest.raises(ValueError, match="integers"):
        model.decode(torch.tensor([1.0, 2.0]))


def test_training_mode_fits_the_codebook_to_data_and_eval_mode_does_not():
    torch.manual_seed(0)
    model = MotionVQVAE(TINY)
    assert model.vqvae.quantizer.codebook.abs().sum() == 0
    model.train()
    x = torch.randn(4, 64, 263)
    _, codes, commit, perplexity = model(x)
    book = model.vqvae.quantizer.codebook.clone()
    assert book.abs().sum() > 0 and commit.item() >= 0 and perplexity.item() > 1
    model.eval()
    model(x)
    assert torch.equal(model.vqvae.quantizer.codebook, book)


def test_tokenizer_joints_roundtrip_and_save_load(tmp_path, normalizer):
    torch.manual_seed(0)
    model = MotionVQVAE(TINY)
    model.train()
    model(torch.randn(4, 64, 263))  # give the codebook distinct rows
    tok = MotionTokenizer(model, normalizer)
    joints = synthetic_joints(np.random.default_rng(5), 42)  # 41 feature frames -> 10 codes
    codes = tok.codes_from_joints(joints)
    assert len(codes) == 10 and all(isinstance(c, int) and 0 <= c < 512 for c in codes)
    out = tok.joints_from_codes(codes)
    assert out.shape == (40, 22, 3) and out.dtype == np.float32

    tok.save(tmp_path / "tok")
    again = MotionTokenizer.load(tmp_path / "tok")
    assert again.codes_from_joints(joints) == codes
    np.testing.assert_allclose(again.joints_from_codes(codes), out, atol=1e-6)

    with pytest.raises(ValueError, match="at least 4 feature frames"):
        tok.codes_from_joints(joints[:4])
    with pytest.raises(ValueError, match=r"0\.\.511"):
        tok.joints_from_codes([1, 600])
    state = load_file(str(tmp_path / "tok" / "vqvae.safetensors"))
    state["vqvae.extra"] = torch.zeros(1)
    save_file(state, str(tmp_path / "tok" / "vqvae.safetensors"))
    with pytest.raises(ValueError, match=r"1 unexpected keys \(vqvae.extra\)"):
        MotionTokenizer.load(tmp_path / "tok")
    (tmp_path / "tok" / "std.npy").unlink()
    with pytest.raises(FileNotFoundError, match="std.npy"):
        MotionTokenizer.load(tmp_path / "tok")


def test_train_vq_command_learns_and_resumes_exactly(tmp_path):
    write_dataset(tmp_path / "data", n_train=16, n_test=4)
    config = {"model": {"width": 48, "depth": 2, "code_dim": 32, "nb_code": 512}, "window": 32, "batch_size": 16,
              "max_steps": 100, "lr": 2e-3, "min_lr": 2e-4, "warmup_steps": 10, "joints": 1.0, "eval_every": 1000,
              "save_every": 1000, "eval_clips": 0, "threads": 1}
    (tmp_path / "cfg.json").write_text(json.dumps(config))
    args = ["train-vq", "--data", str(tmp_path / "data"), "--config", str(tmp_path / "cfg.json"), "--device", "cpu"]

    # Before training the codebook is empty: every motion decodes to one pose standing still.
    untrained = MotionTokenizer(MotionVQVAE(VQVAEConfig(**config["model"])), Normalizer.load(tmp_path / "data"))
    before = evaluate(untrained, load_split(tmp_path / "data", "test", 4))

    assert cli_main(args + ["--out", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["step"] == 100 and metrics["clips"] == 4
    assert metrics["pose_error_m"] < 0.5 * before["pose_error_m"], (metrics, before)
    assert metrics["used_codes"] > 8
    trained = MotionTokenizer.load(tmp_path / "run")
    assert cli_main(args + ["--out", str(tmp_path / "run")]) == 2  # would overwrite the run: refused

    # Stopped after the first step and resumed: the same weights as the uninterrupted run.
    assert cli_main(args + ["--out", str(tmp_path / "split"), "--max-minutes", "0"]) == 0
    assert not (tmp_path / "split" / "metrics.json").exists()
    assert cli_main(args + ["--out", str(tmp_path / "split"), "--resume"]) == 0
    resumed = MotionTokenizer.load(tmp_path / "split")
    for key, value in trained.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, msg=key)

    # Resuming under another config would silently mix two runs: refused.
    (tmp_path / "cfg.json").write_text(json.dumps({**config, "lr": 1e-3}))
    with pytest.raises(ValueError, match="different config"):
        train(tmp_path / "data", TrainConfig.from_json(tmp_path / "cfg.json"), tmp_path / "split", resume=True)


def test_turning_crops_are_found_and_oversampled():
    still, turning = np.zeros((80, 263), np.float32), np.zeros((80, 263), np.float32)
    turning[40:, 0] = 3.0    # turns (3 std of yaw rate) in its second half only
    crops = root_crops([still, turning], window=16)
    assert {i for i, _ in crops} == {1}
    assert [s for _, s in crops] == list(range(27, 65))   # crops with more than 16/6 turning frames
    config = TrainConfig(window=16, batch_size=8, root_oversample=0.5)
    batch = sample_batch([still, turning], config, np.random.default_rng(0), crops).numpy()
    assert (batch[:4, :, 0].mean(1) > 1).all()   # the oversampled half turns


def test_phase_two_starts_from_phase_one(tmp_path):
    write_dataset(tmp_path / "data", n_train=8, n_test=2)
    base = {"model": {"width": 32, "depth": 1, "code_dim": 16, "nb_code": 512}, "window": 32, "batch_size": 8,
            "max_steps": 20, "warmup_steps": 2, "eval_every": 1000, "save_every": 1000, "eval_clips": 0, "threads": 1}
    train(tmp_path / "data", TrainConfig.from_dict(base), tmp_path / "one", device="cpu")
    # phase 2 at a learning rate too small to move the weights: they must be phase 1's
    phase2 = TrainConfig.from_dict({**base, "init_from": str(tmp_path / "one" / "ckpt.pt"), "lr": 1e-12,
                                    "min_lr": 1e-12, "heading": 1.0, "root_mse": 1.0, "root_oversample": 0.5})
    train(tmp_path / "data", phase2, tmp_path / "two", device="cpu")
    one, two = MotionTokenizer.load(tmp_path / "one"), MotionTokenizer.load(tmp_path / "two")
    for key, value in one.model.state_dict().items():
        if "codebook" not in key:   # the codebook keeps its EMA updates, which need no learning rate
            torch.testing.assert_close(two.model.state_dict()[key], value, msg=key)
    with pytest.raises(FileNotFoundError, match="init_from"):
        train(tmp_path / "data", TrainConfig.from_dict({**base, "init_from": str(tmp_path / "nope.pt")}),
              tmp_path / "three", device="cpu")


def test_train_vq_rejects_a_folder_without_statistics(tmp_path, capsys):
    (tmp_path / "data" / "new_joint_vecs").mkdir(parents=True)
    (tmp_path / "cfg.json").write_text("{}")
    code = cli_main(["train-vq", "--data", str(tmp_path / "data"), "--config", str(tmp_path / "cfg.json"), "--out", str(tmp_path / "o")])
    assert code == 2 and "Mean.npy" in capsys.readouterr().err


def test_train_config_rejects_unknown_keys_and_odd_windows():
    with pytest.raises(ValueError, match="VQ training config: unknown config key 'windw'"):
        TrainConfig.from_dict({"windw": 64})
    with pytest.raises(ValueError, match=r"vq\.json \(model\): unknown config key 'widht'; known: .*width"):
        TrainConfig.from_dict({"model": {"widht": 64}}, "vq.json")
    with pytest.raises(ValueError, match="multiple of 4"):
        TrainConfig.from_dict({"window": 62})


@pytest.fixture(scope="module")
def shipped_errors() -> np.ndarray:
    """(frames, joint error m, root-relative joint error m) per clip: the built-in tokenizer on 12 clips the
    corpus generator makes with a seed the training corpus never used."""
    if not (BUILTIN / "vqvae.safetensors").is_file():
        pytest.skip("no shipped tokenizer in backend/models/builtin")
    corpus = pytest.importorskip("training.corpus", reason="the procedural corpus generator is not in this checkout")
    tok = MotionTokenizer.load(BUILTIN)
    assert tok.config.nb_code == 512 and tok.config.input_dim == 263
    rng = np.random.default_rng(20261124)
    rows = []
    for _ in range(12):
        joints = corpus.generate_clip(rng, captions=1).joints
        codes = tok.codes_from_joints(joints)
        assert all(0 <= c < 512 for c in codes) and len(codes) == (len(joints) - 1) // 4
        out = tok.joints_from_codes(codes)
        ref = extract_features(joints).positions[: len(out)]
        rows.append((len(out), np.linalg.norm(out - ref, axis=-1).mean(),
                     np.linalg.norm((out - out[:, :1]) - (ref - ref[:, :1]), axis=-1).mean()))
    return np.array(rows)


def test_shipped_tokenizer_reconstructs_fresh_corpus_clips(shipped_errors):
    frames, err, pose_err = shipped_errors.T
    pose = (pose_err * frames).sum() / frames.sum()
    assert pose < 0.05, f"root-relative joint error {pose * 100:.1f} cm"
    assert np.median(err) < 0.08, f"median joint error {np.median(err) * 100:.1f} cm"


def test_shipped_tokenizer_joint_error_with_trajectory_under_5cm(shipped_errors):
    frames, err, _ = shipped_errors.T
    assert (err * frames).sum() / frames.sum() < 0.05


def _ema_worker(rank: int, store: str, batches: torch.Tensor, out: str) -> None:
    """One of two gloo processes: a codebook update from this rank's half of the batch."""
    from backend.models.vqvae import QuantizeEMAReset

    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    torch.manual_seed(0)
    quantizer = QuantizeEMAReset(nb_code=4, code_dim=2, decay=0.5).train()
    quantizer.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]))
    quantizer.code_sum.copy_(quantizer.codebook)
    quantizer.code_count.fill_(1.0)
    quantizer(batches[rank].T[None])   # (1, code_dim, N)
    torch.save(quantizer.codebook, f"{out}.{rank}")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_codebook_ema_under_ddp_follows_the_global_batch(tmp_path):
    """Two processes with different data end with one codebook: the EMA of both halves of the batch, not of
    rank 0's half (DDP would otherwise copy rank 0's buffers to everyone)."""
    # rank 0 sees points near code 0, rank 1 near codes 0 and 3; code 0's centre must average both ranks
    batches = torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[3.0, 3.0], [9.0, 9.0]]])
    torch.multiprocessing.spawn(_ema_worker, args=(str(tmp_path / "store"), batches, str(tmp_path / "cb")), nprocs=2)
    first, second = (torch.load(tmp_path / f"cb.{r}") for r in (0, 1))
    assert torch.equal(first, second)
    # code 0: 0.5 * old sum (0, 0) + 0.5 * (1+1+3, ...) over 0.5 * 1 + 0.5 * 3 = 2.5 / 2 = 1.25
    assert torch.allclose(first[0], torch.tensor([1.25, 1.25]))
    # code 3: 0.5 * (10, 10) + 0.5 * (9, 9) over 0.5 + 0.5 = 9.5
    assert torch.allclose(first[3], torch.tensor([9.5, 9.5]))
