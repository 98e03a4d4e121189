"""The trainers under `accelerate`: two real CPU processes (gloo) for the LLM, VQ and evaluator trainers, and
the LLM trainer's stage / init_from / LoRA options in one process."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from backend.models.loader import load_model
from backend.models.motion_llm import MotionLMConfig, build_word_tokenizer, gemma2_config, motion_token_ids
from backend.models.motion_tokenizer import MotionTokenizer
from training.corpus import describe_difference
from training.evaluator.model import Evaluator
from training.llm.tiny import make_tiny_model
from training.llm.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
CPU_2PROC = REPO / "training" / "configs" / "accelerate" / "cpu_2proc.yaml"
TINY_LM = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1, "head_dim": 16,
           "intermediate_size": 64}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from training.corpus.writer import write_corpus

    return write_corpus(tmp_path_factory.mktemp("corpus"), clips=12, seed=3, workers=1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A model folder: an untrained tiny VQ-VAE and a tiny LM that already has the motion tokens."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny"), steps=0)


def llm_config(folder: Path, corpus: Path, vq: Path, **settings) -> Path:
    config = {"corpus": str(corpus), "motion_tokenizer": str(vq), "out_dir": str(folder / "run"),
              "export_dir": str(folder / "model"), "batch_size": 2, "max_steps": 3, "warmup_steps": 1,
              "log_every": 1, "threads": 1} | settings
    if "init_from" not in settings:
        config["model"] = TINY_LM
    path = folder / "llm.json"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config))
    return path


def train_llm(path: Path, **overrides) -> bool:
    return train(TrainConfig.from_json(path, **overrides), describe_difference)


def log_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


def trained_tasks(run: Path) -> set[str]:
    return {task for row in log_rows(run) for task in row.get("tasks", {})}


def launch(*command: str, config: Path = CPU_2PROC) -> str:
    """Run an irg-motion command in two CPU processes under `accelerate launch`; returns its output."""
    with socket.socket() as s:   # a free port for the gloo rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    if config == CPU_2PROC:   # under DeepSpeed, ACCELERATE_USE_CPU would turn DeepSpeed off
        env["ACCELERATE_USE_CPU"] = "true"
    else:
        env["DS_ACCELERATOR"] = "cpu"
    done = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
                           "--num_processes", "2", "--main_process_port", str(port),
                           "-m", "backend.cli.main", *command],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return output


@pytest.mark.slow
def test_llm_trainer_on_two_processes(tmp_path, corpus, tiny):
    config = llm_config(tmp_path, corpus, tiny, max_steps=4, gradient_accumulation_steps=2)
    output = launch("train-llm", "--config", str(config))
    run, model = tmp_path / "run", tmp_path / "model"
    assert output.count("checkpoint at step 4") == 1 and output.count("exported to") == 1   # the main process reports
    assert sorted(p.name for p in run.iterdir()) == ["ckpt.pt", "codes.json", "tokenizer", "train_log.jsonl"]
    rows = log_rows(run)
    assert [row["step"] for row in rows if "loss" in row] == [1, 2, 3, 4]   # one log, written once
    checksums = [row["replica_checksums"] for row in rows if "replica_checksums" in row]
    assert len(checksums) == 1 and len(checksums[0]) == 2 and checksums[0][0] == checksums[0][1]
    ckpt = torch.load(run / "ckpt.pt", weights_only=False)
    assert ckpt["step"] == 4 and len(ckpt["rng"]) == 2
    assert ckpt["rng"][0]["data"] != ckpt["rng"][1]["data"]   # each process drew its own samples
    loaded = load_model(str(model), device="cpu")
    assert loaded.motion_ids == motion_token_ids(loaded.tokenizer)


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
def test_llm_trainer_under_deepspeed_on_two_cpu_processes(tmp_path, corpus, tiny, stage):
    pytest.importorskip("deepspeed")
    config = llm_config(tmp_path, corpus, tiny, max_steps=2)
    output = launch("train-llm", "--config", str(config),
                    config=REPO / "training" / "configs" / "accelerate" / f"deepspeed_zero{stage}.yaml")
    run = tmp_path / "run"
    assert output.count("checkpoint at step 2") == 1 and output.count("exported to") == 1
    shards = sorted(p.name for p in (run / "deepspeed_state" / "pytorch_model").iterdir())
    assert [name for name in shards if "optim_states" in name] == [
        f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt" for rank in (0, 1)]   # sharded over 2 ranks
    assert not any("replica_checksums" in row for row in log_rows(run))   # DeepSpeed, not DDP
    assert torch.load(run / "ckpt.pt", weights_only=False)["model"] is None
    loaded = load_model(str(tmp_path / "model"), device="cpu")
    assert loaded.motion_ids == motion_token_ids(loaded.tokenizer)


@pytest.mark.slow
def test_vq_trainer_on_two_processes(tmp_path, corpus):
    config = {"model": {"width": 16, "depth": 1, "code_dim": 16, "nb_code": 512}, "window": 32, "batch_size": 4,
              "max_steps": 3, "eval_every": 1000, "save_every": 1000, "eval_clips": 2, "threads": 1}
    (tmp_path / "vq.json").write_text(json.dumps(config))
    out = tmp_path / "vq"
    output = launch("train-vq", "--data", str(corpus), "--config", str(tmp_path / "vq.json"), "--out", str(out),
                    "--device", "cpu")
    assert output.count("done: held-out joint error") == 1
    assert sorted(p.name for p in out.iterdir()) == ["ckpt.pt", "mean.npy", "metrics.json", "std.npy",
                                                    "train_log.jsonl", "vqvae.safetensors", "vqvae_config.json"]
    rows = log_rows(out)
    assert len(rows) == 1 and rows[0]["step"] == 3
    first, second = rows[0]["replica_checksums"]
    assert first == second
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert len(ckpt["process_rng"]) == 2 and ckpt["process_rng"][0]["data"] != ckpt["process_rng"][1]["data"]
    assert MotionTokenizer.load(out).config.width == 16


@pytest.mark.slow
def test_evaluator_trainer_on_two_processes(tmp_path):
    from test_evaluator import write_tiny_corpus   # 32 train and 32 val clips of synthetic motions

    data = write_tiny_corpus(tmp_path / "data", clips_per_kind=20)
    config = {"model": {"word_dim": 16, "text_width": 32, "motion_width": 32, "embed_dim": 16}, "epochs": 2,
              "batch_size": 8, "warmup_steps": 2, "lr": 3e-3, "val_repeats": 1, "threads": 1}
    (tmp_path / "ev.json").write_text(json.dumps(config))
    out = tmp_path / "ev"   # the processes compare their weights every epoch (replica_checksums raises)
    output = launch("train-evaluator", "--data", str(data), "--out", str(out), "--config", str(tmp_path / "ev.json"))
    assert output.count("evaluator written to") == 1
    assert [row["epoch"] for row in json.loads((out / "history.json").read_text())] == [1, 2]
    assert Evaluator.load(out).config.vocab_size > 0


def test_unknown_settings_name_the_key_and_the_file(tmp_path):
    corpus, tiny = tmp_path / "corpus", tmp_path / "tiny"   # read only when training starts
    path = llm_config(tmp_path, corpus, tiny, batchsize=4)
    with pytest.raises(ValueError, match=r"llm\.json: unknown config key 'batchsize'"):
        TrainConfig.from_json(path)
    path = llm_config(tmp_path, corpus, tiny, lora={"rank": 4})
    with pytest.raises(ValueError, match=r"llm\.json \(lora\): unknown config key 'rank'"):
        TrainConfig.from_json(path)
    path = llm_config(tmp_path, corpus, tiny, stage="3")
    with pytest.raises(ValueError, match="stage must be one of"):
        TrainConfig.from_json(path)
    path = llm_config(tmp_path, corpus, tiny, stage="2", stage2_fraction=0.5)
    with pytest.raises(ValueError, match="stage2_fraction applies to stage 'mixed' only"):
        TrainConfig.from_json(path)


@pytest.mark.slow
def test_stage_1_then_stage_2_from_its_export(tmp_path, corpus, tiny):
    first = tmp_path / "stage1"
    assert train_llm(llm_config(first, corpus, tiny, stage="1"))
    tasks = trained_tasks(first / "run")
    assert "stage2_trace" not in tasks and len(tasks) > 1

    # stage 2 starts from stage 1's weights (lr 0 leaves them as they are, so the export shows where it started)
    second = tmp_path / "stage2"
    assert train_llm(llm_config(second, corpus, tiny, stage="2", init_from=str(first / "model"), lr=0.0, min_lr=0.0))
    assert trained_tasks(second / "run") == {"stage2_trace"}
    before, after = (load_file(folder / "model" / "llm" / "model.safetensors") for folder in (first, second))
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert load_model(str(second / "model"), device="cpu").vocabulary is not None


@pytest.mark.slow
def test_annotation_folder_feeds_the_trainer(tmp_path, corpus, tiny):
    pytest.importorskip("training.llm.annotations")
    from training.data_engine import ProceduralAnnotator, build_annotations
    from training.evaluator import load_evaluator

    build_annotations(corpus, tmp_path / "annotations", ProceduralAnnotator(seed=0), load_evaluator(None))
    assert train_llm(llm_config(tmp_path, corpus, tiny, annotations=str(tmp_path / "annotations"), stage="2"))
    assert trained_tasks(tmp_path / "run") == {"stage2_trace"}


@pytest.mark.slow
def test_init_from_a_base_model_adds_the_motion_tokens(tmp_path, corpus, tiny):
    """A Hugging Face model folder without motion tokens (gemma-2-2b-it's role) gains them after its vocabulary."""
    tokenizer = build_word_tokenizer(["a person walks forward and jumps ."])
    base = gemma2_config(MotionLMConfig(**TINY_LM), len(tokenizer))
    from transformers import Gemma2ForCausalLM

    torch.manual_seed(0)
    Gemma2ForCausalLM(base).save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    text_rows = load_file(tmp_path / "base" / "model.safetensors")["model.embed_tokens.weight"]
    assert train_llm(llm_config(tmp_path, corpus, tiny, init_from=str(tmp_path / "base"), max_steps=1, lr=0.0,
                                min_lr=0.0))
    model = load_model(str(tmp_path / "model"), device="cpu")
    assert model.motion_ids.start == len(tokenizer) and model.motion_ids.first_code == len(tokenizer) + 2
    embeddings = model.lm.get_input_embeddings().weight
    assert torch.equal(embeddings[: len(tokenizer)], text_rows)
    assert model.lm.get_output_embeddings().weight.data_ptr() == embeddings.data_ptr()


@pytest.mark.slow
def test_lora_trains_the_motion_rows_resumes_and_exports_merged(tmp_path, corpus, tiny):
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    path = llm_config(tmp_path, corpus, tiny, init_from=str(tiny), lora=lora, lr=1e-2, gradient_accumulation_steps=2)
    assert not train_llm(path, chunk_minutes=0.0)    # a zero-minute chunk: a LoRA checkpoint at step 0
    assert train_llm(path)                           # resumes it and finishes
    before = load_file(tiny / "llm" / "model.safetensors")
    after = load_file(tmp_path / "model" / "llm" / "model.safetensors")
    assert before.keys() == after.keys()             # a plain model: no lora_A/B, no token adapter
    model = load_model(str(tmp_path / "model"), device="cpu")
    ids = model.motion_ids
    key = "model.embed_tokens.weight"
    assert not torch.equal(after[key][ids.first_code:], before[key][ids.first_code:])   # motion rows trained
    assert torch.equal(after[key][: ids.start], before[key][: ids.start])               # text rows did not
    attention = "model.layers.0.self_attn.{}_proj.weight"
    assert not torch.equal(after[attention.format("q")], before[attention.format("q")])  # LoRA merged in
    assert torch.equal(after[attention.format("k")], before[attention.format("k")])      # not a target
    assert model.lm.get_output_embeddings().weight.data_ptr() == model.lm.get_input_embeddings().weight.data_ptr()


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 autocast on a GPU needs CUDA")
def test_llm_bf16_on_cuda_keeps_fp32_master_weights(tmp_path, corpus, tiny):
    assert train_llm(llm_config(tmp_path, corpus, tiny, mixed_precision="bf16"))
    state = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=False)["model"]
    assert all(v.dtype == torch.float32 for v in state.values())
    assert load_model(str(tmp_path / "model"), device="cuda").lm.device.type == "cuda"
