"""Golden tests of release loading: a tiny Gemma-2 with the release's vocabulary layout (256000 text tokens, <Motion>
= 256000, </Motion> = 256001, <Motion_k> = 256002+k, 256514 tied rows) is saved in every checkpoint form of
reference section 2.1, loaded with load_model(DIR), and must give the original model's logits; the loop must run
on it without crashing (random weights: rounds carry readable errors or valid codes)."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from transformers import Gemma2Config, Gemma2ForCausalLM

from backend import prompts
from backend.loop import LoopOptions, LoopSession
from backend.models.loader import ModelLoadError, load_model
from backend.models.motion_llm import add_motion_tokens
from backend.models.motion_tokenizer import MotionTokenizer
from backend.models.release import RELEASE_VOCAB, TEXT_VOCAB, placeholder_tokenizer
from backend.models.vqvae import MotionVQVAE, VQVAEConfig

peft = pytest.importorskip("peft")

HIDDEN = 32
TINY_VQ = VQVAEConfig(width=16, code_dim=16, depth=1)
WORDS = [prompts.trace_context("a person jumps forward"), "a person jumps forward . the motion matches the goal ."]


def tiny_gemma(vocab: int) -> Gemma2ForCausalLM:
    """Gemma-2's layout in miniature: alternating sliding/full layers, soft-caps, tied embeddings."""
    config = Gemma2Config(vocab_size=vocab, hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16,
                          sliding_window=4096, layer_types=["sliding_attention", "full_attention"],
                          max_position_embeddings=2048, pad_token_id=0, eos_token_id=1, bos_token_id=2,
                          tie_word_embeddings=True, attn_implementation="eager")
    return Gemma2ForCausalLM(config).eval()


def bf16_exact(model: torch.nn.Module) -> None:
    """Round every weight to bf16 (the release saves bf16), so saving in bf16 loses nothing."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """The base gemma folder, the shared assets, and the fine-tuned model every form is written from."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("release")
    tokenizer = placeholder_tokenizer(WORDS)
    assert len(tokenizer) == TEXT_VOCAB and (tokenizer.pad_token_id, tokenizer.eos_token_id,
                                             tokenizer.bos_token_id) == (0, 1, 2)
    base = tiny_gemma(TEXT_VOCAB)
    bf16_exact(base)
    base_dir = root / "base"
    base.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    # the fine-tuned release model: base + motion tokens + every weight moved
    tuned = copy.deepcopy(base)
    ids = add_motion_tokens(tokenizer)
    assert (ids.start, ids.end, ids.first_code) == (256000, 256001, 256002)
    tuned.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        tuned.get_input_embeddings().weight[TEXT_VOCAB:].normal_(0, 0.5)   # motion rows stand out
    bf16_exact(tuned)
    assert tuned.get_input_embeddings().weight.shape[0] == RELEASE_VOCAB
    vq = MotionTokenizer(MotionVQVAE(TINY_VQ), _normalizer())
    assets = root / "assets"
    assets.mkdir()
    torch.save({"net": vq.model.state_dict()}, assets / "vqvae.pth")
    np.save(assets / "mean.npy", np.zeros(TINY_VQ.input_dim, np.float32))
    np.save(assets / "std.npy", np.ones(TINY_VQ.input_dim, np.float32))
    (assets / "vqvae_config.json").write_text(json.dumps(TINY_VQ.to_dict()))
    probe = tokenizer("a person jumps forward", return_tensors="pt")["input_ids"][0].tolist()
    probe = torch.tensor([probe + [256000, 256002 + 7, 256002 + 511, 256001, 2, 256513]])
    return {"root": root, "base_dir": base_dir, "base": base, "tuned": tuned, "assets": assets, "probe": probe,
            "vq_state": vq.model.state_dict()}


def _normalizer():
    from backend.motion.normalize import Normalizer
    return Normalizer(np.zeros(TINY_VQ.input_dim, np.float32), np.ones(TINY_VQ.input_dim, np.float32))


def release_dir(release, name: str) -> Path:
    """A release folder: gemma-2-2b-it/ (a copy of the base), vqvae.pth, mean/std; the checkpoint is added after."""
    folder = release["root"] / name
    (folder / "gemma-2-2b-it").mkdir(parents=True)
    for f in release["base_dir"].iterdir():
        os.link(f, folder / "gemma-2-2b-it" / f.name)
    for f in release["assets"].iterdir():
        os.link(f, folder / f.name)
    return folder


def logits(lm, probe):
    with torch.inference_mode():
        return lm(input_ids=probe).logits.float()


def check_loop(model) -> None:
    """Random weights write garbage: every round must be a readable error or valid codes, never a crash."""
    rounds = list(LoopSession(model, "a person jumps forward", LoopOptions(seconds=1.0, max_rounds=2)).rounds())
    assert 1 <= len(rounds) <= 2
    for r in rounds:
        if r.error:
            assert isinstance(r.error, str) and len(r.error) > 10 and r.joints.shape == (0, 22, 3)
        else:
            assert r.codes and all(0 <= c < 512 for c in r.codes)
            assert r.joints.shape == (4 * len(r.codes), 22, 3) and np.isfinite(r.joints).all()
    assert rounds[-1].final


def full_state(model) -> dict[str, torch.Tensor]:
    return {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}


def test_stage12_pth(release):
    folder = release_dir(release, "stage12")
    tuned = release["tuned"]
    state = {n: p.detach().to(torch.bfloat16) for n, p in tuned.named_parameters()}
    emb = tuned.get_input_embeddings().weight.detach().to(torch.bfloat16)
    state.update(embeddings=emb.clone(), lm_head=emb.clone())
    torch.save({"epoch": 14, "state_dict": state}, folder / "motionllm_unified_sft_latest.pth")
    model = load_model(str(folder), device="cpu")
    assert model.lm.get_input_embeddings().weight.shape[0] == len(model.tokenizer) == RELEASE_VOCAB
    assert (model.motion_ids.start, model.motion_ids.end, model.motion_ids.first_code) == (256000, 256001, 256002)
    assert not torch.equal(logits(release["base"], release["probe"][:, :5]), logits(model.lm, release["probe"][:, :5]))
    torch.testing.assert_close(logits(model.lm, release["probe"]), logits(tuned, release["probe"]), rtol=0, atol=0)
    check_loop(model)


def test_stage3_trainer_bin_with_llm_and_vqvae_prefixes(release):
    folder = release_dir(release, "stage3")
    state = {"llm." + k: v for k, v in full_state(release["tuned"]).items()}
    assert "llm.lm_head.weight" in state
    state.update({"net.vqvae." + k: v for k, v in release["vq_state"].items()})
    torch.save(state, folder / "pytorch_model.bin")
    torch.save({"not": "weights"}, folder / "training_args.bin")   # the Trainer's side file is skipped
    model = load_model(str(folder), device="cpu")
    torch.testing.assert_close(logits(model.lm, release["probe"]), logits(release["tuned"], release["probe"]),
                               rtol=0, atol=0)
    assert any("net.vqvae." in note for note in model.notes)
    check_loop(model)


def test_merged_safetensors(release):
    folder = release_dir(release, "safetensors")
    state = {k: v.contiguous() for k, v in full_state(release["tuned"]).items() if k != "lm_head.weight"}
    save_file(state, str(folder / "irg_motionllm.safetensors"))
    model = load_model(str(folder), device="cpu")
    torch.testing.assert_close(logits(model.lm, release["probe"]), logits(release["tuned"], release["probe"]),
                               rtol=0, atol=0)


@pytest.mark.parametrize("adapter", ["t2m", "shared"])
def test_lora_only_file_is_merged_onto_the_base(release, adapter):
    """Motion-Agent's motionllm.pth: LoRA adapters (t2m, plus m2t that must be ignored) and the 514 new rows."""
    torch.manual_seed(1)
    folder = release_dir(release, f"lora_{adapter}")
    ref = copy.deepcopy(release["base"])
    tokenizer = placeholder_tokenizer(WORDS)
    add_motion_tokens(tokenizer)
    ref.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        ref.get_input_embeddings().weight[TEXT_VOCAB:].normal_(0, 0.5)
    rows = ref.get_input_embeddings().weight[TEXT_VOCAB:].detach().clone()
    targets = ["o_proj", "q_proj", "up_proj", "v_proj", "k_proj", "down_proj", "gate_proj"]
    lora = peft.get_peft_model(ref, peft.LoraConfig(r=4, lora_alpha=4, target_modules=targets, lora_dropout=0.0,
                                                    bias="none", task_type="CAUSAL_LM"), adapter_name=adapter)
    lora.add_adapter("m2t", peft.LoraConfig(r=2, lora_alpha=2, target_modules=targets, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.1)
    lora.set_adapter(adapter)
    lora.eval()
    state = {k: v.clone() for k, v in lora.state_dict().items() if "lora_" in k}
    assert f"base_model.model.model.layers.0.self_attn.q_proj.lora_A.{adapter}.weight" in state
    assert any(".m2t." in k for k in state)
    state.update(embeddings=rows.clone(), lm_head=rows.clone())
    torch.save(state, folder / "motionllm.pth")
    expected = logits(lora, release["probe"])   # peft's own (unmerged) forward with the adapter active
    model = load_model(str(folder), device="cpu")
    torch.testing.assert_close(logits(model.lm, release["probe"]), expected, rtol=1e-4, atol=1e-4)
    assert any("m2t" in note for note in model.notes)
    check_loop(model)


def test_lora_with_another_adapter_name_is_a_clear_error(release):
    folder = release_dir(release, "lora_m2t_only")
    torch.save({"base_model.model.model.layers.0.self_attn.q_proj.lora_A.m2t.weight": torch.zeros(2, HIDDEN),
                "base_model.model.model.layers.0.self_attn.q_proj.lora_B.m2t.weight": torch.zeros(32, 2)},
               folder / "motionllm.pth")
    with pytest.raises(ModelLoadError, match="m2t but none named shared or t2m"):
        load_model(str(folder), device="cpu")


def test_untied_or_wrong_vocab_checkpoints_are_clear_errors(release):
    tuned = release["tuned"]
    folder = release_dir(release, "untied")
    emb = tuned.get_input_embeddings().weight.detach()
    torch.save({"epoch": 1, "state_dict": {"embeddings": emb.clone(), "lm_head": emb.clone() + 1}},
               folder / "a.pth")
    with pytest.raises(ModelLoadError, match="`embeddings` and `lm_head` differ"):
        load_model(str(folder), device="cpu")
    folder = release_dir(release, "vocab")
    torch.save({"state_dict": {"model.embed_tokens.weight": emb[:256000].clone()}}, folder / "b.pth")
    with pytest.raises(ModelLoadError, match=r"wrong shapes.*256514 expected"):
        load_model(str(folder), device="cpu")
    folder = release_dir(release, "partial")
    torch.save({"state_dict": {"model.layers.0.mlp.up_proj.weight": torch.zeros(64, HIDDEN)}}, folder / "c.pth")
    with pytest.raises(ModelLoadError, match="lacks .* of its parameters"):
        load_model(str(folder), device="cpu")
    (folder / "d.pth").write_bytes((folder / "c.pth").read_bytes())
    with pytest.raises(ModelLoadError, match="2 checkpoint files"):
        load_model(str(folder), device="cpu")


def test_base_vocabulary_must_match_and_the_checkpoint_must_fit_gemmas_256000(release):
    folder = release_dir(release, "mismatched_vocab")
    small = placeholder_tokenizer(WORDS, size=1000)
    (folder / "gemma-2-2b-it" / "tokenizer.json").unlink()
    small.save_pretrained(folder / "gemma-2-2b-it")
    torch.save({"state_dict": {"embeddings": torch.zeros(514, HIDDEN)}}, folder / "x.pth")
    with pytest.raises(ModelLoadError, match="256000 token rows but its tokenizer 1000 tokens"):
        load_model(str(folder), device="cpu")
    # a consistent base that is not Gemma-2's vocabulary: the release checkpoint does not fit it
    folder = release["root"] / "small_base"
    small_lm = tiny_gemma(1000)
    small_lm.save_pretrained(folder / "gemma-2-2b-it")
    small.save_pretrained(folder / "gemma-2-2b-it")
    for f in release["assets"].iterdir():
        os.link(f, folder / f.name)
    torch.save({"state_dict": full_state(release["tuned"])}, folder / "y.pth")
    with pytest.raises(ModelLoadError, match=r"1514 token rows: 256514 expected"):
        load_model(str(folder), device="cpu")


def test_incomplete_release_folder_lists_each_file_and_its_source(tmp_path):
    folder = tmp_path / "rel"
    (folder / "gemma-2-2b-it").mkdir(parents=True)
    with pytest.raises(ModelLoadError) as info:
        load_model(str(folder))
    message = str(info.value)
    for needed, source in [("gemma-2-2b-it/config.json", "google/gemma-2-2b-it"),
                           ("gemma-2-2b-it/tokenizer.json", "google/gemma-2-2b-it"),
                           ("gemma-2-2b-it/model.safetensors", "google/gemma-2-2b-it"),
                           ("<checkpoint>.pth", "Lymann/IRG-MotionLLM-HumanML3D"),
                           ("vqvae.pth", "Motion-Agent"), ("mean.npy", "meta/mean.npy"), ("std.npy", "meta/std.npy")]:
        line = next((l for l in message.splitlines() if needed in l), None)
        assert line is not None and source in line, (needed, message)
    (folder / "vqvae.pth").write_bytes(b"")
    message = str(pytest.raises(ModelLoadError, load_model, str(folder)).value)
    assert "vqvae.pth:" not in message and "mean.npy" in message


def test_fetch_release_offline_prints_what_to_put_where(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-m", "backend.cli.main", "fetch-release", str(tmp_path / "rel")],
                         capture_output=True, text=True, env=env, timeout=120, cwd=Path(__file__).parents[1])
    text = " ".join((out.stdout + out.stderr).split())
    assert out.returncode == 2, text
    assert "offline" in text
    for needed in ("gemma-2-2b-it/config.json", "google/gemma-2-2b-it", "Lymann/IRG-MotionLLM-HumanML3D",
                   "vqvae.pth", "mean.npy", "std.npy", str(tmp_path / "rel")):
        assert needed in text, needed
