"""Prompt strings and motion tokens match the release (reference/irg-motionllm.md sections 1.2 and 3)."""
from __future__ import annotations

import pytest

from backend import prompts
from backend.models.motion_llm import MotionLMConfig, add_motion_tokens, build_word_tokenizer, new_motion_lm

SYSTEM = "You are an assistant who helps users understand or generate 3D human motion representations."


def test_trace_prompt_is_the_release_test_prompt():
    text = prompts.trace_context("a person jumps.")
    assert text == (
        SYSTEM + "\n\nUser: Given a text outlining a human motion objective, employ a step-by-step thought process to "
        "realize the motion: (1) analyze the text, providing a clear explanation of the reasoning to identify essential "
        "elements; (2) conduct several rounds of motion generation and self-assessment until the motion is "
        "satisfactory. Wrap all responses in <think> and </think> tags, and formulate a plan before each step.\n"
        "Goal Text: a person jumps.\n\n Response:")


def test_double_period_is_collapsed_like_the_release():
    sample = prompts.stage1_sample("t2m_direct_generation", caption="a person jumps.", motion=[3])
    assert sample.context.endswith("User: Generate a motion that depicts a person jumps.\n\n Response:")


def test_every_stage1_task_builds_and_motion_tasks_force_the_span():
    for task in prompts.STAGE1_TASKS:
        s = prompts.stage1_sample(task, caption="a person jumps", motion=[1, 2], generated=[7], target="x",
                                  instruction="jump higher")
        assert s.context.startswith(SYSTEM + "\n\nUser: ") and s.context.endswith("\n\n Response:")
        assert s.test_context.endswith(" Response:<Motion>") == (task in prompts.MOTION_FORCED_TASKS)
    s = prompts.stage1_sample("tm2m_instructed_refinement", caption="a person jumps", motion=[1], generated=[7, 8],
                              instruction="jump higher")
    assert s.user == ("Motion: <Motion><Motion_7><Motion_8></Motion>. Goal text: a person jumps. "
                      "Refine the motion according to the instruction: jump higher.")
    assert s.response == "<Motion><Motion_1></Motion>"
    with pytest.raises(ValueError, match="unknown stage-1 task"):
        prompts.stage1_sample("caption_everything")


def test_trace_layout_and_ignored_intermediate_motions():
    rounds = [prompts.TraceRound([5, 6], "It walks.", "Jump instead."),
              prompts.TraceRound([9], "It matches.", prompts.NO_REFINEMENT)]
    pieces = prompts.trace_pieces("Key: jump.", rounds)
    text = "".join(p for p, _ in pieces)
    assert text == (
        "<think>[plan]I need to analyze the goal and identify the critical aspects to generate the motion.[/plan]\n"
        "[analyze]Key: jump.[/analyze]\n"
        "[plan]I need to generate a motion according to the previous analysis.[/plan]\n"
        "[generate]<Motion><Motion_5><Motion_6></Motion>[/generate]\n"
        "[plan]I need to assess the alignment between the generated motion and the goal text, then provide specific "
        "refinement instructions for improvement.[/plan]\n"
        "[assess]Assessment: It walks.\nRefinement: Jump instead.[/assess]\n"
        "[plan]I need to refine the motion according to the instruction.[/plan]\n"
        "[generate]<Motion><Motion_9></Motion>[/generate]\n"
        "[plan]I need to assess the alignment between the generated motion and the goal text, then provide specific "
        "refinement instructions for improvement.[/plan]\n"
        "[assess]Assessment: It matches.\nRefinement: No refinements needed.[/assess]\n"
        "[plan]I need to finish thinking as the satisfactory motion is generated.[/plan]\n</think>")
    ignored = [p for p, flag in pieces if flag]
    assert ignored == ["[generate]<Motion><Motion_5><Motion_6></Motion>[/generate]\n"]


def test_motion_tokens_are_added_in_the_release_order():
    tokenizer = build_word_tokenizer(["a person jumps <Motion><Motion_3></Motion> [plan]"])
    text_vocab = len(tokenizer)
    model, ids = new_motion_lm(MotionLMConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                                              head_dim=16, intermediate_size=64), tokenizer)
    assert (ids.start, ids.end, ids.first_code) == (text_vocab, text_vocab + 1, text_vocab + 2)
    assert tokenizer.convert_tokens_to_ids("<Motion_511>") == text_vocab + 513
    assert model.get_input_embeddings().num_embeddings == text_vocab + 514 == len(tokenizer)
    enc = tokenizer("<Motion><Motion_12><Motion_7></Motion>", add_special_tokens=False)["input_ids"]
    assert enc == [ids.start, ids.first_code + 12, ids.first_code + 7, ids.end]
    assert tokenizer.decode(enc) == "<Motion><Motion_12><Motion_7></Motion>"


def test_word_tokenizer_round_trips_known_text_and_marks_unknown_words():
    text = prompts.trace_context("a person jumps.")
    tokenizer = build_word_tokenizer([text])
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id == 2 and tokenizer.eos_token_id == 1 and tokenizer.pad_token_id == 0
    assert tokenizer.decode(ids[1:]) == text
    assert tokenizer("a person moonwalks", add_special_tokens=False)["input_ids"][-1] == tokenizer.unk_token_id


def test_text_around_motion_spans_has_no_unknown_tokens():
    sample = prompts.stage1_sample("tm2t_refinement_instruction", caption="a person jumps.", motion=[1, 2],
                                   generated=[3], target="jump higher.")
    tokenizer = build_word_tokenizer([sample.context, sample.response])
    add_motion_tokens(tokenizer)
    ids = tokenizer(sample.context + sample.response, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == sample.context + sample.response
