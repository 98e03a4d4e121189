"""`irg-motion bench` and the random Gemma-2 of the 2B shape (CPU smoke runs at reduced size; CUDA tests skip
without a GPU)."""
from __future__ import annotations

import re

import pytest
import torch
from transformers import Gemma2ForCausalLM

from backend.cli.main import main
from backend.loop import LoopOptions, LoopSession
from backend.models.release import RELEASE_VOCAB, gemma2_2b_config, random_release_model

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def table_value(text: str, measure: str) -> float:
    m = re.search(re.escape(measure) + r"[^│|]*[│|]\s*([0-9.]+|nan|-)\s*[│|]", text)
    assert m, f"no row {measure!r} in:\n{text}"
    return float(m.group(1))


def test_the_2b_config_is_gemma_2_2b():
    config = gemma2_2b_config(vocab_size=256000)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads,
            config.head_dim, config.intermediate_size) == (2304, 26, 8, 4, 256, 9216)
    assert (config.attn_logit_softcapping, config.final_logit_softcapping, config.sliding_window) == (50.0, 30.0, 4096)
    assert config.tie_word_embeddings and config.layer_types[:2] == ["sliding_attention", "full_attention"]
    with torch.device("meta"):
        params = sum(p.numel() for p in Gemma2ForCausalLM(config).parameters())
    assert params == 2_614_341_888   # google/gemma-2-2b's published count


@pytest.mark.slow
def test_reduced_random_2b_runs_the_loop_on_cpu():
    model = random_release_model("cpu", layers=1, hidden=64)
    assert model.lm.get_input_embeddings().weight.shape == (RELEASE_VOCAB, 64)
    assert model.lm.config.num_hidden_layers == 1 and next(model.lm.parameters()).dtype == torch.float32
    r = LoopSession(model, "a person jumps forward", LoopOptions(seconds=1.0, max_rounds=1)).next_round()
    assert r is not None and (r.error or all(0 <= c < 512 for c in r.codes))


def test_bench_builtin_prints_the_table(capsys):
    assert main(["bench", "--model", "builtin", "--device", "cpu", "--rounds", "2", "--seconds", "1", "--runs", "1",
                 "--decode-tokens", "8"]) == 0
    out = capsys.readouterr().out
    first = table_value(out, "time to first round (s)")
    assert 0 < first < 30
    assert table_value(out, "rounds done") >= 1
    assert table_value(out, "loop tokens per second") > 0
    assert table_value(out, "raw decode tokens per second") > 0


def test_bench_random_2b_runs_every_round_at_release_length(capsys):
    """Random weights would garble the first assessment and end the run; the scripted text phases give every
    round, with the release's token counts (analysis 60 + per round 6 s of codes, assessment and instruction)."""
    assert main(["bench", "--model", "random-2b", "--layers", "1", "--hidden", "64", "--device", "cpu",
                 "--rounds", "2", "--seconds", "6", "--runs", "1", "--decode-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert "random-2b (1 layers, hidden 64)" in " ".join(out.split())
    assert table_value(out, "time to first round (s)") > 0
    assert table_value(out, "rounds done") == 2
    assert table_value(out, "rounds with an error") == 0
    assert 250 <= table_value(out, "generated tokens") <= 300   # 61 + 2 x (30 codes + ~90 text)


def test_bench_rejects_shape_options_for_other_models(capsys):
    assert main(["bench", "--model", "builtin", "--layers", "1"]) == 2
    assert "random-2b only" in capsys.readouterr().err


@cuda
def test_random_2b_on_cuda_is_bf16_and_runs_a_round():
    model = random_release_model("cuda", layers=2)
    assert next(model.lm.parameters()).dtype == torch.bfloat16
    assert model.lm.config._attn_implementation in ("eager", "flash_attention_2")
    r = LoopSession(model, "a person jumps forward", LoopOptions(seconds=2.0, max_rounds=1)).next_round()
    assert r is not None and (r.error or all(0 <= c < 512 for c in r.codes))


@cuda
def test_bench_cuda_compiled_static_cache(capsys):
    assert main(["bench", "--model", "random-2b", "--layers", "2", "--device", "cuda", "--rounds", "1",
                 "--seconds", "2", "--runs", "1", "--decode-tokens", "16", "--compile", "--static-cache"]) == 0
    assert table_value(capsys.readouterr().out, "raw decode tokens per second") > 0
