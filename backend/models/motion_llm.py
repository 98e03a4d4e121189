"""The motion LLM: a Gemma-2 causal LM from `transformers` whose vocabulary holds the 514 motion tokens.

Motion tokens are added exactly as the release adds them (reference/irg-motionllm.md section 1.2): first
`<Motion>` and `</Motion>` in one `add_tokens` call, then `<Motion_0>` ... `<Motion_511>` one at a time as
normal added tokens, then `resize_token_embeddings(len(tokenizer))`. So with a text vocabulary of V words,
`<Motion>` is V, `</Motion>` is V+1 and code k is V+2+k (256000, 256001, 256002+k with Gemma's tokenizer).

The built-in model's text tokenizer is word level (the `tokenizers` library, wrapped as
PreTrainedTokenizerFast): a word keeps its leading space (" jump"), punctuation, brackets like `[plan]`
and newlines are tokens of their own, and decoding concatenates, so decode(encode(text)) == text for
known words. Special ids follow Gemma: pad 0, eos 1, bos 2, unk 3.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import Gemma2Config, Gemma2ForCausalLM, PreTrainedTokenizerFast

from backend.prompts import MOTION_END, MOTION_START

NB_CODE = 512
SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>")
# A word-level piece: a bracket tag, an angle tag, a word with its leading space, one punctuation mark
# (with its leading space), a newline, or a run of spaces.
MOTION_TOKEN_RE = re.compile(r"</?Motion(?:_\d+)?>")  # added tokens, never words of the text vocabulary
WORD_PATTERN = r"\[/?[A-Za-z_]+\]|</?[A-Za-z_]+>| ?[A-Za-z0-9']+| ?[^A-Za-z0-9'\s]|\n|[ \t]+"


@dataclass
class MotionLMConfig:
    """Shape of the Gemma-2-style LM (the vocabulary size comes from the tokenizer)."""

    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 64
    intermediate_size: int = 768
    max_positions: int = 2048

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MotionTokenIds:
    start: int        # <Motion>
    end: int          # </Motion>
    first_code: int   # <Motion_0>
    nb_code: int


def motion_token_ids(tokenizer, nb_code: int = NB_CODE) -> MotionTokenIds:
    """The ids of the motion tokens of a tokenizer that already has them; checks they are contiguous."""
    start, end = tokenizer.convert_tokens_to_ids([MOTION_START, MOTION_END])
    codes = tokenizer.convert_tokens_to_ids([f"<Motion_{k}>" for k in range(nb_code)])
    unk = tokenizer.unk_token_id
    if start in (None, unk) or end in (None, unk) or codes != list(range(codes[0], codes[0] + nb_code)):
        raise ValueError("the tokenizer lacks the motion tokens <Motion>, </Motion>, <Motion_0>..<Motion_511> "
                         "in the release's order")
    return MotionTokenIds(start=start, end=end, first_code=codes[0], nb_code=nb_code)


def add_motion_tokens(tokenizer, nb_code: int = NB_CODE) -> MotionTokenIds:
    """Add the motion tokens in the release's order (section 1.2) and return their ids."""
    tokenizer.add_tokens([MOTION_START, MOTION_END])
    for k in range(nb_code):
        tokenizer.add_tokens(f"<Motion_{k}>")
    return motion_token_ids(tokenizer, nb_code)


def word_pieces(text: str) -> list[str]:
    """The pre-tokenizer's pieces of `text` (the word-level tokens it would look up)."""
    return [piece for piece, _ in _pre_tokenizer().pre_tokenize_str(text)]


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="isolated")


def build_word_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over every piece of `texts` (no motion tokens yet).

    Text between motion tokens is split into pieces on its own, as encoding does once the motion tokens are
    added tokens, so the lone space of "Motion: <Motion>" is in the vocabulary."""
    pieces = {piece for text in texts for part in MOTION_TOKEN_RE.split(text) for piece in word_pieces(part)}
    return word_tokenizer_from_words(sorted(pieces - set(SPECIAL_TOKENS)))


def word_tokenizer_from_words(words: list[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose ids are the special tokens (0..3) then `words` in order (no motion tokens)."""
    vocab = {tok: i for i, tok in enumerate(list(SPECIAL_TOKENS) + list(words))}
    if len(vocab) != len(SPECIAL_TOKENS) + len(words):
        raise ValueError("the word list repeats a word or a special token")
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = _pre_tokenizer()
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A $B",
                                                        special_tokens=[("<bos>", vocab["<bos>"])])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                   unk_token="<unk>", padding_side="left", clean_up_tokenization_spaces=False)


def gemma2_config(config: MotionLMConfig, vocab_size: int) -> Gemma2Config:
    """A small Gemma-2: every layer full attention (so the KV cache can be cropped), soft-caps kept."""
    return Gemma2Config(
        vocab_size=vocab_size, hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads, head_dim=config.head_dim, query_pre_attn_scalar=config.head_dim,
        max_position_embeddings=config.max_positions, layer_types=["full_attention"] * config.num_layers,
        sliding_window=config.max_positions, pad_token_id=0, eos_token_id=1, bos_token_id=2,
        tie_word_embeddings=True, attn_implementation="eager",
    )


def new_motion_lm(config: MotionLMConfig, tokenizer: PreTrainedTokenizerFast,
                  nb_code: int = NB_CODE) -> tuple[Gemma2ForCausalLM, MotionTokenIds]:
    """A randomly initialised LM over the text tokenizer, then the motion tokens added and the embeddings resized,
    in the release's order. `tokenizer` gains the motion tokens."""
    model = Gemma2ForCausalLM(gemma2_config(config, vocab_size=len(tokenizer)))
    ids = add_motion_tokens(tokenizer, nb_code)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return model, ids


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
