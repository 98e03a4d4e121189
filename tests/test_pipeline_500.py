"""Every training stage end to end on a 500-clip corpus, a few steps each, through the real commands:
VQ-VAE -> evaluator -> data engine -> stages 1+2 -> stage 3 (GRPO); each checkpoint loads."""
from __future__ import annotations

import json
import shutil

import pytest

from backend.cli.main import main
from backend.loop import LoopOptions, LoopSession
from backend.models.loader import load_model
from backend.models.motion_tokenizer import MotionTokenizer
from training.evaluator import load_evaluator

TINY_LM = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1, "head_dim": 16,
           "intermediate_size": 64}


def write(path, config: dict) -> str:
    path.write_text(json.dumps(config))
    return str(path)


@pytest.mark.slow
def test_every_stage_runs_on_a_500_clip_corpus(tmp_path):
    from training.corpus.writer import write_corpus

    corpus = write_corpus(tmp_path / "corpus", clips=500, seed=2026, workers=2)
    data = str(corpus)
    # the generator's 5 % val split (25 clips) is below one R-precision batch of 32: validate on the test clips
    (corpus / "val.txt").write_text((corpus / "test.txt").read_text())

    vq = tmp_path / "vq"
    vq_config = write(tmp_path / "vq.json", {
        "model": {"width": 32, "depth": 1, "code_dim": 16, "nb_code": 512}, "window": 32, "batch_size": 8,
        "max_steps": 5, "warmup_steps": 1, "eval_every": 1000, "save_every": 1000, "eval_clips": 4, "threads": 1})
    assert main(["train-vq", "--data", data, "--config", vq_config, "--out", str(vq), "--device", "cpu"]) == 0
    assert MotionTokenizer.load(vq).config.nb_code == 512

    evaluator = tmp_path / "evaluator"
    ev_config = write(tmp_path / "ev.json", {"epochs": 1, "batch_size": 64, "warmup_steps": 1, "threads": 1,
                                             "val_repeats": 1})
    assert main(["train-evaluator", "--data", data, "--out", str(evaluator), "--config", ev_config]) == 0
    assert load_evaluator(evaluator).embed_texts(["a person walks."]).shape[0] == 1

    annotations = tmp_path / "annotations"
    assert main(["annotate", "--data", data, "--out", str(annotations), "--evaluator", str(evaluator)]) == 0
    traces = json.loads((annotations / "stage2_traces.json").read_text())["annotations"]
    assert len(traces) >= 400   # one per train motion

    model = tmp_path / "model"
    shutil.copytree(vq, model, ignore=shutil.ignore_patterns("ckpt.pt", "*.jsonl", "metrics.json"))
    llm_config = write(tmp_path / "llm.json", {
        "corpus": data, "annotations": str(annotations), "motion_tokenizer": str(model), "out_dir": str(tmp_path / "llm"),
        "export_dir": str(model), "model": TINY_LM, "batch_size": 4, "max_steps": 3, "warmup_steps": 1,
        "threads": 1, "chunk_minutes": 5.0})
    assert main(["train-llm", "--config", llm_config]) == 0
    stage2 = load_model(str(model), device="cpu")
    assert stage2.motion_ids.nb_code == 512

    grpo = tmp_path / "grpo"
    grpo_config = write(tmp_path / "grpo.json", {
        "model": str(model), "data": data, "out": str(grpo), "evaluator": str(evaluator), "num_generations": 2,
        "batch_size": 2, "max_completion_length": 96, "save_steps": 10, "use_cpu": True, "threads": 1})
    assert main(["train-grpo", "--config", grpo_config, "--max-steps", "1"]) == 0
    final = load_model(str(grpo / "model"), device="cpu")
    first = LoopSession(final, "a person walks forward", LoopOptions(seconds=1.0, max_rounds=1)).next_round()
    assert first.final and (first.error or len(first.codes) == 5)
