"""The text-motion evaluator: save/load, embeddings, errors users can fix, the CLI, the shipped weights,
and the Guo et al. networks and loader."""
import json
import pickle

import numpy as np
import pytest
import torch

from backend.cli.main import main
from backend.motion.features import extract_features
from backend.motion.normalize import compute_mean_std
from retarget.skeleton import REST_JOINTS, forward_kinematics
from training.evaluator import builtin_dir, guo, load_evaluator
from training.evaluator.data import load_items
from training.evaluator.evaluate import evaluate_real
from training.evaluator.model import Evaluator, EvaluatorConfig, TextMotionModel, Vocabulary
from training.evaluator.train import TrainConfig

FPS = 20.0
CAPTIONS = {
    "walk": ["a person walks forward.", "someone walks ahead", "the man takes steps forward."],
    "arms": ["a person raises both arms.", "someone lifts their arms up.", "the woman puts her arms up."],
    "squat": ["a person squats down.", "someone bends the knees and squats.", "the man crouches down low."],
    "turn": ["a person turns around.", "someone spins in place.", "the woman turns to the left."],
}


def _axis_rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    m = np.tile(np.eye(3), (len(angle), 1, 1))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    m[:, i, i], m[:, i, j], m[:, j, i], m[:, j, j] = c, -s, s, c
    return m


def synthetic_motion(kind: str, frames: int, amount: float) -> np.ndarray:
    """Joints (T, 22, 3) of a simple action made with forward kinematics."""
    t = np.arange(frames) / FPS
    ramp = np.clip(t / (t[-1] * 0.6), 0, 1)
    rotations = np.tile(np.eye(3), (frames, 22, 1, 1))
    root = np.zeros((frames, 3))
    root[:, 1] = REST_JOINTS[0, 1] - REST_JOINTS[:, 1].min()
    if kind == "walk":
        swing = 0.5 * amount * np.sin(2 * np.pi * 1.5 * t)
        rotations[:, 1], rotations[:, 2] = _axis_rotation(0, swing), _axis_rotation(0, -swing)
        root[:, 2] = amount * t
    elif kind == "arms":
        rotations[:, 16], rotations[:, 17] = _axis_rotation(2, -2 * amount * ramp), _axis_rotation(2, 2 * amount * ramp)
    elif kind == "squat":
        bend = 1.2 * amount * np.sin(np.pi * t / t[-1]) ** 2
        for hip, knee in ((1, 4), (2, 5)):
            rotations[:, hip], rotations[:, knee] = _axis_rotation(0, -bend), _axis_rotation(0, 2 * bend)
        root[:, 1] -= 0.25 * amount * np.sin(np.pi * t / t[-1]) ** 2
    else:
        rotations[:, 0] = _axis_rotation(1, 2 * np.pi * amount * ramp)
    joints, _ = forward_kinematics(rotations, root)
    return joints


def write_tiny_corpus(folder, clips_per_kind: int = 30, seed: int = 0):
    """A HumanML3D-layout folder of synthetic clips: 40 % train, 40 % val, 20 % test."""
    rng = np.random.default_rng(seed)
    for sub in ("new_joint_vecs", "new_joints", "texts"):
        (folder / sub).mkdir(parents=True)
    names, features = [], []
    for kind in CAPTIONS:
        for k in range(clips_per_kind):
            name = f"{kind}{k:03d}"
            extracted = extract_features(synthetic_motion(kind, int(rng.integers(48, 100)), rng.uniform(0.6, 1.2)))
            np.save(folder / "new_joint_vecs" / f"{name}.npy", extracted.features)
            np.save(folder / "new_joints" / f"{name}.npy", extracted.positions)
            lines = [f"{c}#{' '.join(w + '/OTHER' for w in c.rstrip('.').split())}#0.0#0.0" for c in CAPTIONS[kind]]
            (folder / "texts" / f"{name}.txt").write_text("\n".join(lines) + "\n")
            names.append(name)
            features.append(extracted.features)
    mean, std = compute_mean_std(features)
    np.save(folder / "Mean.npy", mean)
    np.save(folder / "Std.npy", std)
    order = rng.permutation(names)
    cut1, cut2 = int(0.4 * len(names)), int(0.8 * len(names))
    for split, part in (("train", order[:cut1]), ("val", order[cut1:cut2]), ("test", order[cut2:])):
        (folder / f"{split}.txt").write_text("\n".join(sorted(part)) + "\n")
    return folder


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    return write_tiny_corpus(tmp_path_factory.mktemp("tiny_corpus"))


def small_evaluator(corpus) -> Evaluator:
    items = load_items(corpus, "train")
    vocab = Vocabulary.build([c.text for item in items for c in item.captions])
    config = EvaluatorConfig(vocab_size=len(vocab), word_dim=16, text_width=16, motion_width=16, embed_dim=8)
    torch.manual_seed(0)
    model = TextMotionModel(config)
    model.feature_mean.copy_(torch.from_numpy(np.load(corpus / "Mean.npy")))
    model.feature_std.copy_(torch.from_numpy(np.load(corpus / "Std.npy")))
    return Evaluator(model, vocab)


def test_evaluator_round_trips_through_its_folder(tiny_corpus, tmp_path):
    evaluator = small_evaluator(tiny_corpus)
    items = load_items(tiny_corpus, "test")
    motions = [item.features for item in items[:5]]
    texts = ["a person walks forward.", "someone does a handstand"]  # 'handstand' is not in the vocabulary
    evaluator.save(tmp_path / "ev")
    loaded = Evaluator.load(tmp_path / "ev")
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["config.json", "model.safetensors", "vocab.json"]
    np.testing.assert_allclose(loaded.embed_texts(texts), evaluator.embed_texts(texts), atol=1e-6)
    m = loaded.embed_motions(motions)
    np.testing.assert_allclose(m, evaluator.embed_motions(motions), atol=1e-6)
    assert m.shape == (5, 8)
    np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-5)
    assert loaded.similarity(texts, motions).shape == (2, 5)
    # the evaluator normalises with its own statistics: the raw features, not normalised ones, go in
    np.testing.assert_allclose(loaded.model.feature_mean.numpy(), np.load(tiny_corpus / "Mean.npy"))


def test_errors_name_the_file_and_the_fix(tiny_corpus, tmp_path):
    evaluator = small_evaluator(tiny_corpus)
    evaluator.save(tmp_path / "ev")
    loaded = Evaluator.load(tmp_path / "ev")
    with pytest.raises(ValueError, match=r"\(frames, 263\).*trained on 251-d"):
        loaded.embed_motions([np.zeros((40, 251), np.float32)])
    with pytest.raises(FileNotFoundError, match="missing config.json, vocab.json, model.safetensors"):
        Evaluator.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such data folder"):
        load_items(tmp_path / "nowhere", "test")
    with pytest.raises(FileNotFoundError, match="missing Mean.npy, Std.npy, test.txt"):
        (tmp_path / "half" / "new_joint_vecs").mkdir(parents=True)
        (tmp_path / "half" / "texts").mkdir()
        load_items(tmp_path / "half", "test")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"epoch": 3}))
    with pytest.raises(ValueError, match=r"bad.json: unknown config key 'epoch'"):
        TrainConfig.from_json(bad)
    bad.write_text(json.dumps({"model": {"feature_dim": 251}}))
    with pytest.raises(ValueError, match="come from the data set"):
        TrainConfig.from_json(bad)


@pytest.mark.slow
def test_train_and_eval_commands(tiny_corpus, tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"model": {"word_dim": 16, "text_width": 32, "motion_width": 32, "embed_dim": 16},
                                  "epochs": 4, "batch_size": 16, "warmup_steps": 2, "lr": 3e-3, "val_repeats": 1}))
    out = tmp_path / "ev"
    args = ["train-evaluator", "--data", str(tiny_corpus), "--out", str(out), "--config", str(config)]
    assert main(args) == 0
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 4 and history[-1]["loss"] < history[0]["loss"]
    assert Evaluator.load(out).config.feature_dim == 263

    assert main(args) == 2  # a second run into the same folder needs --resume
    assert "pass --resume" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0  # nothing left to do: it finishes at once

    assert main(["eval-data", "--evaluator", str(out), "--data", str(tiny_corpus), "--split", "val", "--repeats", "2"]) == 0
    printed = capsys.readouterr().out
    assert "R-precision top-1" in printed and "foot skating ratio" in printed

    assert main(["eval-data", "--evaluator", str(out), "--data", str(tmp_path / "missing")]) == 2
    assert "missing: no such data folder" in capsys.readouterr().err


@pytest.mark.slow
def test_shipped_evaluator_ranks_fresh_corpus_pairs(tmp_path):
    writer = pytest.importorskip("training.corpus.writer", reason="the procedural corpus generator is not in this checkout")
    writer.write_corpus(tmp_path / "corpus", clips=400, seed=20261124, workers=1)  # clips the evaluator never saw
    evaluator = load_evaluator(builtin_dir())
    summary, _ = evaluate_real(evaluator, load_items(tmp_path / "corpus", "test"), repeats=10, seed=0)
    assert summary["top1"][0] > 0.8
    assert summary["top3"][0] > summary["top1"][0]


def test_shipped_evaluator_is_small_and_loads():
    files = {p.name: p.stat().st_size for p in builtin_dir().iterdir()}
    assert {"config.json", "vocab.json", "model.safetensors"} <= set(files)
    assert sum(files.values()) < 5 * 2**20
    evaluator = load_evaluator()
    assert evaluator.embed_texts(["a person walks forward."]).shape == (1, evaluator.config.embed_dim)



def test_a_motions_embedding_does_not_depend_on_its_batch():
    evaluator = load_evaluator()
    rng = np.random.default_rng(3)
    short, long = (rng.normal(size=(n, evaluator.config.feature_dim)).astype(np.float32) for n in (40, 120))
    alone = evaluator.embed_motions([short])
    beside_a_longer_one = evaluator.embed_motions([long, short])[1]
    np.testing.assert_allclose(beside_a_longer_one, alone[0], atol=1e-5)

# ---- Guo et al. evaluator -------------------------------------------------------------------------------

def write_guo_folder(folder, state: dict[str, dict]) -> None:
    """The files a Guo evaluator folder holds, with random weights and a made-up GloVe subset."""
    ckpt = folder / guo.CHECKPOINT
    ckpt.parent.mkdir(parents=True)
    torch.save({**state, "epoch": 1, "niter": 10}, ckpt)
    (folder / "glove").mkdir()
    words = ["unk", "sos", "eos", "a", "man", "walk", "forward", "left"]
    np.save(folder / "glove" / "our_vab_data.npy", np.random.default_rng(0).normal(size=(len(words), 300)).astype(np.float32))
    with open(folder / "glove" / "our_vab_words.pkl", "wb") as f:
        pickle.dump(words, f)
    with open(folder / "glove" / "our_vab_idx.pkl", "wb") as f:
        pickle.dump({w: i for i, w in enumerate(words)}, f)
    meta = folder / guo.META
    meta.mkdir(parents=True)
    np.save(meta / "mean.npy", np.zeros(263, np.float32))
    np.save(meta / "std.npy", np.ones(263, np.float32))


def test_guo_networks_have_the_checkpoint_layout_and_load_strictly(tmp_path):
    networks = guo.build_networks(guo.GuoConfig())
    shapes = {key: {k: tuple(v.shape) for k, v in net.state_dict().items()} for key, net in networks.items()}
    assert shapes["movement_encoder"] == {"main.0.weight": (512, 259, 4), "main.0.bias": (512,),
                                          "main.3.weight": (512, 512, 4), "main.3.bias": (512,),
                                          "out_net.weight": (512, 512), "out_net.bias": (512,)}
    assert shapes["motion_encoder"]["input_emb.weight"] == (1024, 512)
    assert shapes["motion_encoder"]["gru.weight_hh_l0_reverse"] == (3072, 1024)
    assert shapes["motion_encoder"]["hidden"] == (2, 1, 1024)
    assert shapes["motion_encoder"]["output_net.3.weight"] == (512, 1024)
    assert shapes["text_encoder"]["pos_emb.weight"] == (300, 15)
    assert shapes["text_encoder"]["input_emb.weight"] == (512, 300)
    assert shapes["text_encoder"]["output_net.1.weight"] == (512,)  # the LayerNorm
    assert shapes["text_encoder"]["output_net.3.weight"] == (512, 512)

    write_guo_folder(tmp_path, {key: net.state_dict() for key, net in networks.items()})
    evaluator = load_evaluator(tmp_path)
    assert isinstance(evaluator, guo.GuoEvaluator)
    for key, net in networks.items():
        for name, value in net.state_dict().items():
            assert torch.equal(evaluator.networks[key].state_dict()[name], value), (key, name)
    texts = evaluator.embed_texts(["a/DET man/NOUN walk/VERB forward/ADV", "a man walks to the left"])
    motions = evaluator.embed_motions([np.random.default_rng(1).normal(size=(n, 263)) for n in (60, 196, 250)])
    assert texts.shape == (2, 512) and motions.shape == (3, 512)
    assert evaluator.similarity(["a/DET man/NOUN"], [np.zeros((40, 263))]).shape == (1, 1)


def test_guo_loader_names_each_missing_file_and_refuses_a_wrong_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        guo.GuoEvaluator.load(tmp_path)
    for name in guo.GUO_FILES:
        assert name in str(info.value)
    assert "download_glove" in str(info.value)

    networks = guo.build_networks(guo.GuoConfig(dim_pose=251))  # a KIT checkpoint is not a HumanML3D one
    write_guo_folder(tmp_path, {key: net.state_dict() for key, net in networks.items()})
    with pytest.raises(ValueError, match="finest.tar: 'movement_encoder' does not match"):
        guo.GuoEvaluator.load(tmp_path)
