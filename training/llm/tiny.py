"""A complete but untrained model folder (tiny random VQ-VAE + tiny random motion LLM) for tests and smoke runs.

It goes through the real writing and loading code: `save_pretrained` here, `backend.models.loader` there.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from backend import prompts
from backend.models.loader import LLM_DIR
from backend.models.motion_llm import MotionLMConfig, build_word_tokenizer, new_motion_lm
from backend.models.motion_tokenizer import MotionTokenizer
from backend.models.vqvae import MotionVQVAE, VQVAEConfig
from backend.motion.normalize import Normalizer

TINY_WORDS = ("a person jumps forward . a person walks in a circle . a person waves with the right hand . "
              "the motion matches the goal . the person should jump higher . the goal is a jump , arms up .")


def make_tiny_model(folder: str | Path, seed: int = 0, steps: int = 250) -> Path:
    """Write a tiny model folder that `load_model(folder)` accepts. The LM is fitted for `steps` steps to one
    two-round trace, so it writes well-formed rounds (a wrong motion, then a final one); 0 keeps it random."""
    torch.manual_seed(seed)
    folder = Path(folder)
    vq = VQVAEConfig(width=16, code_dim=16, depth=1)
    MotionTokenizer(MotionVQVAE(vq), Normalizer(np.zeros(vq.input_dim, np.float32),
                                                np.ones(vq.input_dim, np.float32))).save(folder)
    rounds = [prompts.TraceRound([1, 2, 3, 4, 5], "the person walks in a circle.", "the person should jump higher."),
              prompts.TraceRound([6, 7, 8, 9, 10], "the motion matches the goal.", prompts.NO_REFINEMENT)]
    context, response = prompts.trace_context("a person jumps"), prompts.trace_response("the goal is a jump.", rounds)
    tokenizer = build_word_tokenizer([context, response, TINY_WORDS])
    lm, _ = new_motion_lm(MotionLMConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, head_dim=16,
                                         intermediate_size=64), tokenizer)
    fit_one(lm, tokenizer, context, response, steps)
    lm.eval().save_pretrained(folder / LLM_DIR)
    tokenizer.save_pretrained(folder / LLM_DIR)
    return folder


def fit_one(lm, tokenizer, context: str, response: str, steps: int) -> None:
    """Overfit the LM to one context -> response pair (loss on the response)."""
    if steps <= 0:
        return
    ctx = tokenizer(context)["input_ids"]
    ids = torch.tensor([ctx + tokenizer(response, add_special_tokens=False)["input_ids"]])
    labels = ids.clone()
    labels[0, : len(ctx)] = -100
    optim = torch.optim.Adam(lm.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # a tiny model trains fastest on one thread
    lm.train()
    try:
        for _ in range(steps):
            loss = lm(input_ids=ids, labels=labels).loss
            optim.zero_grad()
            loss.backward()
            optim.step()
    finally:
        torch.set_num_threads(threads)
