"""Every stage-1 task's prompt, byte for byte against the reference strings (reference/irg-motionllm.md 3.1-3.4,
3.7), the `" Response:"` spacing, the `..` quirk, and the release's token ids for a motion span."""
from __future__ import annotations

import pytest

from backend import prompts
from backend.models.motion_llm import add_motion_tokens
from backend.models.release import placeholder_tokenizer

SYSTEM = "You are an assistant who helps users understand or generate 3D human motion representations."
HEAD = SYSTEM + "\n\nUser: "
TAIL = "\n\n Response:"
GOAL = "<Motion><Motion_1><Motion_2></Motion>"
CAND = "<Motion><Motion_7></Motion>"

EXPECTED = {   # task -> (user turn, response)
    "m2t_motion_caption": (GOAL + "\nProvide a detailed description of the motion.", "a man jumps."),
    "t2m_direct_generation": ("Generate a motion that depicts a man jumps.", GOAL),
    "t2m_detailed_prompt_generation": ("Generate a motion that depicts a man jumps.", GOAL),
    "t2t_prompt_analysis": ("Identify the essential components related to the objective before creating a motion "
                            "for a man jumps.", "a man jumps."),
    "tm2t_assessment_analysis": (f"Motion: {CAND}. Goal text: a man jumps. Assess the alignment between the motion "
                                 "and the goal.", "a man jumps."),
    "tm2t_refinement_instruction": (f"Motion: {CAND}. Goal text: a man jumps. Determine how to refine the generated "
                                    "motion for better alignment.", "a man jumps."),
    "tm2m_direct_refinement": (f"Motion: {CAND}. Target caption: a man jumps. Please adjust the motion to better "
                               "match the caption's intent.", GOAL),
    "tm2m_instructed_refinement": (f"Motion: {CAND}. Goal text: a man jumps. Refine the motion according to the "
                                   "instruction: jump higher.", GOAL),
}


@pytest.mark.parametrize("task", prompts.STAGE1_TASKS)
def test_stage1_prompt_is_the_reference_string(task):
    # the caption ends with "." like HumanML3D's, so the templates' "." doubles and must collapse
    s = prompts.stage1_sample(task, caption="a man jumps.", motion=[1, 2], generated=[7], target="a man jumps..",
                              instruction="jump higher")
    user, response = EXPECTED[task]
    assert s.context == HEAD + user + TAIL
    assert s.response == response
    forced = task in ("t2m_direct_generation", "t2m_detailed_prompt_generation", "tm2m_instructed_refinement")
    assert s.test_context == HEAD + user + TAIL + ("<Motion>" if forced else "")
    assert s.context.endswith("\n\n Response:") and not s.context.endswith("\n\n Response: ")
    assert ".." not in s.context and ".." not in s.response


def test_response_follows_the_colon_without_a_space():
    s = prompts.stage1_sample("t2m_direct_generation", caption="a man jumps", motion=[4])
    assert s.context + s.response == HEAD + "Generate a motion that depicts a man jumps." + TAIL + \
        "<Motion><Motion_4></Motion>"
    assert (s.context + s.response).count(" Response:<Motion>") == 1


def test_double_period_replacement_is_python_replace_once_over_the_user_turn():
    # "waves..." + "." is four dots; str.replace('..', '.') turns them into two, as the release does
    s = prompts.stage1_sample("t2m_direct_generation", caption="a man waves...", motion=[4])
    assert s.user == "Generate a motion that depicts a man waves...."
    assert s.context == HEAD + "Generate a motion that depicts a man waves.." + TAIL
    assert prompts.trace_context("a man waves.") == HEAD + prompts.TRACE_TEMPLATES[1].replace(
        "<Goal_Caption>", "a man waves.") + TAIL


def test_trace_prompt_and_the_v3_templates():
    assert prompts.TEST_TRACE_TEMPLATE.startswith("Given a text outlining a human motion objective, employ a "
                                                  "step-by-step thought process to realize the motion:")
    assert all(t.endswith("\nGoal Text: <Goal_Caption>") for t in prompts.TRACE_TEMPLATES)
    assert prompts.trace_context("a man jumps") == HEAD + prompts.TEST_TRACE_TEMPLATE.replace(
        "<Goal_Caption>", "a man jumps") + TAIL


def test_motion_span_has_the_release_ids_and_decodes_without_spaces():
    tokenizer = placeholder_tokenizer([prompts.trace_context("a man jumps")])
    assert len(tokenizer) == 256000
    add_motion_tokens(tokenizer)
    span = prompts.motion_span([12, 7, 511])
    assert span == "<Motion><Motion_12><Motion_7><Motion_511></Motion>"
    ids = tokenizer(span, add_special_tokens=False)["input_ids"]
    assert ids == [256000, 256002 + 12, 256002 + 7, 256002 + 511, 256001]
    assert tokenizer.decode(ids) == span
    full = tokenizer(prompts.trace_context("a man jumps"))["input_ids"]
    assert full[0] == 2 and tokenizer.unk_token_id not in full
    assert tokenizer.decode(full[1:]) == prompts.trace_context("a man jumps")
