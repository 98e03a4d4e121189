"""The exact prompt strings of IRG-MotionLLM (reference/irg-motionllm.md section 3) and the builders that join them.

A prompt is `SYSTEM + "\\n\\n" + "User: " + USER + "\\n\\n" + " Response:"`; the tokenizer adds `<bos>`. The
response follows with no space. Text placed into a template gets the release's `.replace('..', '.')`.
Stage-1 tasks use the first template of each list in the release's prompt_template-2.json; the stage-2
trace uses the v3 instruction the release tests with.
"""
from __future__ import annotations

from dataclasses import dataclass

SYSTEM_PROMPT = "You are an assistant who helps users understand or generate 3D human motion representations."
RESPONSE_TAG = " Response:"
MOTION_START, MOTION_END = "<Motion>", "</Motion>"
NO_REFINEMENT = "No refinements needed."

# Stage-1 templates (the first entry of each list in the release's template file).
MOTION_CAPTION_TEMPLATE = "<Goal_Motion>\nProvide a detailed description of the motion."
TEXT_TO_MOTION_TEMPLATE = "Generate a motion that depicts <Goal_Caption>."
GOAL_ANALYSIS_TEMPLATE = ("Identify the essential components related to the objective before creating a motion "
                          "for <Goal_Caption>.")
ASSESSMENT_TEMPLATE = ("Motion: <Generated_Motion>. Goal text: <Goal_Caption>. "
                       "Assess the alignment between the motion and the goal.")
REFINEMENT_INSTRUCTION_TEMPLATE = ("Motion: <Generated_Motion>. Goal text: <Goal_Caption>. "
                                   "Determine how to refine the generated motion for better alignment.")
DIRECT_REFINEMENT_TEMPLATE = ("Motion: <Generated_Motion>. Target caption: <Goal_Caption>. "
                              "Please adjust the motion to better match the caption's intent.")
INSTRUCTED_REFINEMENT_TEMPLATE = ("Motion: <Generated_Motion>. Goal text: <Goal_Caption>. "
                                  "Refine the motion according to the instruction: <Refinement_Instruction>.")

# Stage-2 v3 instructions (`<Generate_Assess_Refien_Template_wo_Answer>`); index 1 is the one used at test time.
TRACE_TEMPLATES = (
    "Given a goal text describing a human motion, perform multi-step thinking to obtain the goal motion: "
    "(1) analyzing the goal text and clearly describing the reasoning process to identify key elements; "
    "(2) performing multiple rounds of generation and self-assessment until a satisfactory motion is achieved. "
    "Put all your response in <think> and </think> tags, and make a plan before each step.\nGoal Text: <Goal_Caption>",
    "Given a text outlining a human motion objective, employ a step-by-step thought process to realize the motion: "
    "(1) analyze the text, providing a clear explanation of the reasoning to identify essential elements; "
    "(2) conduct several rounds of motion generation and self-assessment until the motion is satisfactory. "
    "Wrap all responses in <think> and </think> tags, and formulate a plan before each step.\nGoal Text: <Goal_Caption>",
    "Given a goal text describing a desired human motion, use a multi-step approach to accomplish the motion: "
    "(1) parse the goal text, articulating the reasoning to highlight key components; "
    "(2) iterate through motion generation and self-evaluation until the motion satisfies the goal. "
    "Include all responses within <think> and </think> tags, and prepare a plan before each step.\nGoal Text: <Goal_Caption>",
)
TEST_TRACE_TEMPLATE = TRACE_TEMPLATES[1]

# The fixed plans of the stage-2 trace.
PLAN_ANALYZE = "I need to analyze the goal and identify the critical aspects to generate the motion."
PLAN_GENERATE = "I need to generate a motion according to the previous analysis."
PLAN_ASSESS = ("I need to assess the alignment between the generated motion and the goal text, "
               "then provide specific refinement instructions for improvement.")
PLAN_REFINE = "I need to refine the motion according to the instruction."
PLAN_FINISH = "I need to finish thinking as the satisfactory motion is generated."

# The eight stage-1 tasks: name -> (template, what the response is).
STAGE1_TASKS = (
    "m2t_motion_caption", "t2m_direct_generation", "t2t_prompt_analysis", "t2m_detailed_prompt_generation",
    "tm2t_assessment_analysis", "tm2t_refinement_instruction", "tm2m_direct_refinement",
    "tm2m_instructed_refinement",
)
# Tasks whose test prompt is forced to start the answer with `<Motion>` (the release's generation forcing).
MOTION_FORCED_TASKS = ("t2m_direct_generation", "t2m_detailed_prompt_generation", "tm2m_instructed_refinement")


class PromptError(ValueError):
    """A prompt the loop cannot use (empty, no known word...); the message says what to do instead."""


def motion_span(codes: list[int]) -> str:
    """`<Motion><Motion_12><Motion_7>...</Motion>`: no spaces, as the release writes it."""
    return MOTION_START + "".join(f"<Motion_{int(c)}>" for c in codes) + MOTION_END


def fill(template: str, **values: str) -> str:
    """Replace `<Key>` placeholders (e.g. goal_caption= fills `<Goal_Caption>`)."""
    for key, value in values.items():
        placeholder = "<" + "_".join(part.capitalize() for part in key.split("_")) + ">"
        if placeholder not in template:
            raise KeyError(f"template has no {placeholder}: {template!r}")
        template = template.replace(placeholder, value)
    return template


def build_context(user: str) -> str:
    """The text before the response: system prompt, user turn and ` Response:` (tokenizer adds `<bos>`)."""
    return SYSTEM_PROMPT + "\n\n" + "User: " + user.replace("..", ".") + "\n\n" + RESPONSE_TAG


@dataclass(frozen=True)
class Stage1Sample:
    task: str
    user: str       # the filled template
    response: str   # what the model must write (before `<eos>`)

    @property
    def context(self) -> str:
        return build_context(self.user)

    @property
    def test_context(self) -> str:
        """The inference prompt: the motion tasks start the answer with `<Motion>`."""
        return self.context + (MOTION_START if self.task in MOTION_FORCED_TASKS else "")


def stage1_sample(task: str, caption: str = "", motion: list[int] | None = None, generated: list[int] | None = None,
                  target: str = "", instruction: str = "") -> Stage1Sample:
    """One stage-1 sample. `motion` is the goal motion's codes, `generated` a candidate's, `target` the text answer
    (caption, analysis, assessment or refinement instruction) of the text-output tasks."""
    goal = motion_span(motion) if motion is not None else ""
    cand = motion_span(generated) if generated is not None else ""
    if task == "m2t_motion_caption":
        return Stage1Sample(task, fill(MOTION_CAPTION_TEMPLATE, goal_motion=goal), target.replace("..", "."))
    if task in ("t2m_direct_generation", "t2m_detailed_prompt_generation"):
        return Stage1Sample(task, fill(TEXT_TO_MOTION_TEMPLATE, goal_caption=caption), goal)
    if task == "t2t_prompt_analysis":
        return Stage1Sample(task, fill(GOAL_ANALYSIS_TEMPLATE, goal_caption=caption), target.replace("..", "."))
    if task == "tm2t_assessment_analysis":
        return Stage1Sample(task, fill(ASSESSMENT_TEMPLATE, generated_motion=cand, goal_caption=caption),
                            target.replace("..", "."))
    if task == "tm2t_refinement_instruction":
        return Stage1Sample(task, fill(REFINEMENT_INSTRUCTION_TEMPLATE, generated_motion=cand, goal_caption=caption),
                            target.replace("..", "."))
    if task == "tm2m_direct_refinement":
        return Stage1Sample(task, fill(DIRECT_REFINEMENT_TEMPLATE, generated_motion=cand, goal_caption=caption), goal)
    if task == "tm2m_instructed_refinement":
        return Stage1Sample(task, fill(INSTRUCTED_REFINEMENT_TEMPLATE, generated_motion=cand, goal_caption=caption,
                                       refinement_instruction=instruction), goal)
    raise ValueError(f"unknown stage-1 task {task!r}; expected one of {', '.join(STAGE1_TASKS)}")


def trace_user(caption: str, template: str = TEST_TRACE_TEMPLATE) -> str:
    return fill(template, goal_caption=caption)


def trace_context(caption: str, template: str = TEST_TRACE_TEMPLATE) -> str:
    """The stage-2 prompt the loop starts from."""
    return build_context(trace_user(caption, template))


@dataclass(frozen=True)
class TraceRound:
    codes: list[int]
    assessment: str
    refinement: str


def assess_block(assessment: str, refinement: str) -> str:
    return f"[assess]Assessment: {assessment}\nRefinement: {refinement}[/assess]\n"


def trace_pieces(analysis: str, rounds: list[TraceRound]) -> list[tuple[str, bool]]:
    """The v3 response as (piece, is_incorrect_motion) pieces, joined with no spaces; the last round is the
    goal. Pieces flagged True are the intermediate `[generate]` blocks the loss ignores (`--ignore-incorrect`)."""
    if not rounds:
        raise ValueError("a trace needs at least the goal round")
    pieces = [("<think>", False), (f"[plan]{PLAN_ANALYZE}[/plan]\n", False),
              (f"[analyze]{analysis}[/analyze]\n".replace("..", "."), False),
              (f"[plan]{PLAN_GENERATE}[/plan]\n", False)]
    for i, r in enumerate(rounds):
        last = i == len(rounds) - 1
        pieces.append((f"[generate]{motion_span(r.codes)}[/generate]\n", not last))
        pieces.append((f"[plan]{PLAN_ASSESS}[/plan]\n", False))
        pieces.append((assess_block(r.assessment, r.refinement).replace("..", "."), False))
        pieces.append((f"[plan]{PLAN_FINISH if last else PLAN_REFINE}[/plan]\n", False))
    pieces.append(("</think>", False))
    return pieces


def trace_response(analysis: str, rounds: list[TraceRound]) -> str:
    return "".join(piece for piece, _ in trace_pieces(analysis, rounds))
