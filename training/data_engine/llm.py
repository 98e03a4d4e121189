"""An annotator backed by any local instruct LLM loaded with `transformers`, plus the double-check.

Greedy decoding, bounded `max_new_tokens`, prompts from llm_prompts.py. Every answer goes through the
double-check: the rules of checks.py first (empty, too short, refining the goal, "no refinement" for a
candidate that differs), then a second call asking the same model whether the answer is consistent with
the texts (yes/no). What was dropped, and why, ends up in the output files' `info`.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from backend import prompts

from . import llm_prompts
from .annotators import Judgement
from .checks import CheckLog, judgement_problem, text_problem
from .motions import MotionInstance

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
ASSESSMENT_RE = re.compile(r"assessment\s*:\s*(.*?)\s*(?=refinement\s*:|$)", re.I | re.S)
REFINEMENT_RE = re.compile(r"refinement\s*:\s*(.*?)\s*(?=\n\s*\n|$)", re.I | re.S)
YES_RE = re.compile(r"^\W*yes\b", re.I)


def check_llm_dir(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such LLM folder; pass --llm a local Hugging Face model folder "
                                "(config.json, tokenizer, weights), e.g. a download of gemma-2-2b-it")
    missing = [] if (path / "config.json").is_file() else ["config.json"]
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        missing.append("a tokenizer (tokenizer.json or tokenizer.model)")
    if not any(next(path.glob(p), None) for p in WEIGHT_PATTERNS):
        missing.append("weights (*.safetensors or pytorch_model*.bin)")
    if missing:
        raise FileNotFoundError(f"{path}: missing {', '.join(missing)}; pass --llm a complete local Hugging Face "
                                "model folder (save_pretrained writes one)")
    return path


def clean(text: str) -> str:
    """One line without markdown emphasis or wrapping quotes (trace assessments are single lines)."""
    text = re.sub(r"\s+", " ", text.replace("**", "")).strip()
    return text[1:-1].strip() if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'" else text


def parse_judgement(answer: str) -> tuple[str, str]:
    """`Assessment: ...` / `Refinement: ...` -> (assessment, refinement); a missing part is empty."""
    a, r = ASSESSMENT_RE.search(answer), REFINEMENT_RE.search(answer)
    return clean(a.group(1)) if a else "", clean(r.group(1)) if r else ""


def is_yes(answer: str) -> bool:
    return bool(YES_RE.match(answer))


def caption_lines(motion: MotionInstance) -> str:
    return "\n".join(f"- {c}" for c in motion.captions)


class LLMAnnotator:
    """`path`: a local model folder (AutoModelForCausalLM + AutoTokenizer). Prompts go through the chat
    template when the tokenizer has one, else as plain text. `verify=False` skips the verification call."""

    needs_labels = False

    def __init__(self, path: str | Path, max_new_tokens: int = 128, batch_size: int = 8, device: str | None = None,
                 verify: bool = True):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = check_llm_dir(path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"   # generation continues right after each prompt
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(self.device).eval()
        self.max_new_tokens, self.batch_size, self.verify = max_new_tokens, batch_size, verify
        self.log = CheckLog()
        self.name = f"llm:{path}"

    def sameness_key(self, motion: MotionInstance) -> None:
        return None   # captions alone cannot prove two motions equal; the double-check catches near-matches

    @torch.no_grad()
    def generate(self, requests: list[str]) -> list[str]:
        chat = bool(getattr(self.tokenizer, "chat_template", None))
        texts = [self.tokenizer.apply_chat_template([{"role": "user", "content": r}], tokenize=False,
                                                    add_generation_prompt=True) if chat else r + "\n"
                 for r in requests]
        out = []
        for i in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[i:i + self.batch_size], return_tensors="pt", padding=True,
                                   add_special_tokens=not chat)   # a chat template writes its own <bos>
            batch = {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}
            ids = self.model.generate(**batch, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id)
            out += [self.tokenizer.decode(row, skip_special_tokens=True).strip()
                    for row in ids[:, batch["input_ids"].shape[1]:]]
        return out

    def verified(self, requests: list[str]) -> list[bool]:
        return [is_yes(a) for a in self.generate(requests)] if self.verify else [True] * len(requests)

    def judge(self, goal: MotionInstance, caption: str,
              candidates: list[MotionInstance]) -> list[Judgement | None]:
        answers = self.generate([llm_prompts.ASSESS_PROMPT.format(goal=caption, descriptions=caption_lines(c))
                                 for c in candidates])
        parsed = [parse_judgement(a) for a in answers]
        problems = [judgement_problem(a, r, c is goal) for (a, r), c in zip(parsed, candidates)]
        todo = [i for i, p in enumerate(problems) if p is None]
        checks = self.verified([llm_prompts.VERIFY_ASSESSMENT_PROMPT.format(
            goal=caption, descriptions=caption_lines(candidates[i]), assessment=parsed[i][0],
            refinement=parsed[i][1]) for i in todo])
        for i, ok in zip(todo, checks):
            problems[i] = None if ok else "unverified"
        out = []
        for (a, r), c, problem in zip(parsed, candidates, problems):
            keep = self.log.record("judgements", problem)
            # the goal's refinement is the release's exact string, whatever the model's wording
            out.append(Judgement(a, prompts.NO_REFINEMENT if c is goal else r) if keep else None)
        return out

    def rewrites(self, kind: str, caption: str, templates: tuple[str, ...]) -> list[str]:
        texts = [clean(a) for a in self.generate([t.format(caption=caption) for t in templates])]
        problems = [text_problem(t) or ("duplicate" if t in texts[:i] else None) for i, t in enumerate(texts)]
        todo = [i for i, p in enumerate(problems) if p is None]
        checks = self.verified([llm_prompts.VERIFY_TEXT_PROMPT.format(caption=caption, text=texts[i]) for i in todo])
        for i, ok in zip(todo, checks):
            problems[i] = None if ok else "unverified"
        return [t for t, p in zip(texts, problems) if self.log.record(kind, p)]

    def analyses(self, goal: MotionInstance, caption: str) -> list[str]:
        return self.rewrites("analyses", caption, llm_prompts.ANALYSIS_PROMPTS)

    def descriptions(self, goal: MotionInstance, caption: str) -> list[str]:
        return self.rewrites("descriptions", caption, llm_prompts.DESCRIPTION_PROMPTS)
