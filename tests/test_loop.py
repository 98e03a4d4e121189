"""The loop's mechanics on a tiny random model (real save_pretrained / load_model), and its behaviour on the
built-in model (slow)."""
from __future__ import annotations

import argparse
import json
import threading

import numpy as np
import pytest

from backend.loop import Cancelled, LoopOptions, LoopSession
from backend.models.loader import BUILTIN_DIR, ModelLoadError, load_model, missing_files
from backend.prompts import PromptError
from training.llm.tiny import make_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_model(str(make_tiny_model(tmp_path_factory.mktemp("tiny"))), device="cpu")


@pytest.fixture(scope="module")
def builtin():
    if missing_files(BUILTIN_DIR):
        pytest.skip("the built-in model is not trained in this checkout")
    return load_model("builtin", device="cpu")


def test_incomplete_folder_names_each_missing_file(tmp_path):
    folder = make_tiny_model(tmp_path / "m")
    (folder / "llm" / "model.safetensors").unlink()
    (folder / "mean.npy").unlink()
    with pytest.raises(ModelLoadError, match=r"mean\.npy.*llm/model\.safetensors"):
        load_model(str(folder))


def test_bad_prompts_and_options_are_clear_errors(tiny):
    with pytest.raises(PromptError, match="empty"):
        LoopSession(tiny, "   ", LoopOptions())
    with pytest.raises(PromptError, match="knows none of the words"):
        LoopSession(tiny, "xqzv wrrpt", LoopOptions())
    with pytest.raises(ValueError, match="seconds must be between"):
        LoopSession(tiny, "a person jumps", LoopOptions(seconds=60))
    with pytest.raises(ValueError, match="max_rounds"):
        LoopSession(tiny, "a person jumps", LoopOptions(max_rounds=0))
    with pytest.raises(ValueError, match="mode"):
        LoopSession(tiny, "a person jumps", LoopOptions(mode="fast"))


def test_long_prompt_is_truncated_with_a_warning(tiny):
    session = LoopSession(tiny, "a person jumps forward " * 500, LoopOptions())
    assert len(session.prompt) <= tiny.max_prompt_chars
    assert any("10000 characters" in w or "characters" in w for w in session.warnings)


def test_unknown_words_are_mapped_or_reported(tiny):
    session = LoopSession(tiny, "a person hops forwards zzqx", LoopOptions())
    assert "jumps" in session.prompt and "forward" in session.prompt
    notes = " ".join(session.warnings)
    assert "'hops'" in notes and "'zzqx'" in notes


def test_step_mode_rounds_cache_and_user_instruction(tiny):
    progress = []
    session = LoopSession(tiny, "a person jumps", LoopOptions(seconds=1.0, max_rounds=2, mode="step"),
                          on_progress=progress.append)
    first = session.next_round()
    assert first.index == 0 and len(first.codes) == 5 or first.error
    assert {p.stage for p in progress} >= {"planning", "generating", "assessing"}
    cached = session._cache.get_seq_length()
    assert cached >= len(session._ids) - 1 > 0   # the KV cache covers the whole trace across the pause
    if not first.error:
        second = session.next_round("jump higher")
        assert second.index == 1 and session.history[0].instruction == "jump higher"
        assert "Refinement: jump higher[/assess]" in session.trace


def test_cancel_raises_before_more_decoding(tiny):
    cancel = threading.Event()
    cancel.set()
    session = LoopSession(tiny, "a person jumps", LoopOptions(), cancel=cancel)
    with pytest.raises(Cancelled):
        session.next_round()
    assert session.finished


def test_cancel_during_decoding(tiny):
    cancel = threading.Event()

    def stop_soon(p):
        if p.tokens >= 8:
            cancel.set()

    session = LoopSession(tiny, "a person jumps", LoopOptions(seconds=4.0), cancel=cancel, on_progress=stop_soon)
    with pytest.raises(Cancelled):
        session.next_round()
    assert session._tokens <= 16


@pytest.mark.slow
def test_builtin_loop_is_deterministic_and_gives_motion(builtin):
    opts = LoopOptions(seconds=3.0, max_rounds=3, seed=1)
    a = list(LoopSession(builtin, "a person jumps forward", opts).rounds())
    b = list(LoopSession(builtin, "a person jumps forward", opts).rounds())
    assert a and [r.codes for r in a] == [r.codes for r in b]
    good = [r for r in a if not r.error]
    assert good and good[-1].joints.shape == (60, 22, 3) and np.isfinite(good[-1].joints).all()
    assert a[-1].final and all(not r.final for r in a[:-1])
    assert all(r.assessment for r in good)


@pytest.mark.slow
def test_builtin_sampling_varies_with_seed(builtin):
    codes = {tuple(LoopSession(builtin, "a person walks", LoopOptions(seconds=2.0, max_rounds=1, seed=s,
                                                                       do_sample=True)).next_round().codes)
             for s in range(3)}
    assert len(codes) > 1


@pytest.mark.slow
def test_training_command_resumes_exports_and_loads(tmp_path):
    from training.cli.llm_commands import run_train
    from training.corpus.writer import write_corpus

    corpus = write_corpus(tmp_path / "corpus", clips=12, seed=3, workers=1)
    folder = make_tiny_model(tmp_path / "model", steps=0)
    config = tmp_path / "smoke.json"
    config.write_text(json.dumps({"motion_tokenizer": str(folder), "model": {
        "hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1, "head_dim": 16,
        "intermediate_size": 64}, "batch_size": 2, "max_steps": 4, "warmup_steps": 1, "threads": 1}))
    args = argparse.Namespace(config=str(config), corpus=str(corpus), out_dir=str(tmp_path / "run"),
                              export_dir=str(folder), max_minutes=0.0)
    run_train(args)                       # a zero-minute chunk: checkpoint at step 0, no export
    assert (tmp_path / "run" / "ckpt.pt").is_file() and not (folder / "llm" / "loop_limits.json").exists()
    args.max_minutes = 5.0
    run_train(args)                       # resumes and finishes: the model is exported and loads
    assert (folder / "llm" / "loop_limits.json").is_file()
    model = load_model(str(folder), device="cpu")
    assert model.vocabulary is not None and "person" in model.vocabulary.words
    first = LoopSession(model, "a person jumps", LoopOptions(seconds=1.0, max_rounds=1)).next_round()
    assert first.final and (first.error or len(first.codes) == 5)


@pytest.mark.slow
def test_release_folder_loads_with_the_release_token_ids(tmp_path):
    """A stand-in release: a small Gemma-2 base folder, an IRG-style `.pth` ({'epoch', 'state_dict'} with `llm.`
    names and full embeddings) and a Motion-Agent-style vqvae.pth ({'net': ...}) with mean/std."""
    import torch
    from transformers import Gemma2ForCausalLM

    from backend.models.motion_llm import MotionLMConfig, build_word_tokenizer, gemma2_config, new_motion_lm
    from backend.models.vqvae import MotionVQVAE, VQVAEConfig

    tokenizer = build_word_tokenizer(["a person jumps forward"])
    cfg = MotionLMConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, head_dim=16, intermediate_size=64)
    base = Gemma2ForCausalLM(gemma2_config(cfg, len(tokenizer)))
    base.save_pretrained(tmp_path / "gemma-2-2b-it")
    tokenizer.save_pretrained(tmp_path / "gemma-2-2b-it")
    text_vocab = len(tokenizer)
    trained, ids = new_motion_lm(cfg, tokenizer)
    with torch.no_grad():
        trained.get_input_embeddings().weight[ids.first_code + 7] = 3.0
    state = {"llm." + k: v for k, v in trained.state_dict().items()}
    state["llm.embeddings"] = trained.get_input_embeddings().weight.detach().clone()
    torch.save({"epoch": 3, "state_dict": state}, tmp_path / "motionllm_unified_sft_latest.pth")
    torch.save({"net": MotionVQVAE(VQVAEConfig()).state_dict()}, tmp_path / "vqvae.pth")
    np.save(tmp_path / "mean.npy", np.zeros(263, np.float32))
    np.save(tmp_path / "std.npy", np.ones(263, np.float32))

    model = load_model(str(tmp_path), device="cpu")
    assert (model.motion_ids.start, model.motion_ids.first_code) == (text_vocab, text_vocab + 2)
    row = model.lm.get_input_embeddings().weight[model.motion_ids.first_code + 7]
    assert torch.allclose(row, torch.full_like(row, 3.0))
    (tmp_path / "vqvae.pth").unlink()
    with pytest.raises(ModelLoadError, match="vqvae.pth"):
        load_model(str(tmp_path), device="cpu")
