"""The release's annotation schema (reference 3.3-3.5): placeholder names, file names, item layout.

A file is `{"info": {...}, "annotations": [...]}`. An item is `{id, task, motions, text, conversations}`;
an item with candidates carries `candidate_motion_text` instead of top-level `motions`/`text` (as the
release's demo files do), and its loader merges one randomly drawn candidate into the item per access.
"""
from __future__ import annotations

SYSTEM = "<General_System_Prompt>"
GOAL_MOTION = "<Goal_Motion>"
GENERATED_MOTION = "<Generated_Motion>"
GOAL_CAPTION = "<Goal_Caption>"
GOAL_ANALYSIS = "<Goal_Analysis>"
ASSESSMENT = "<Assessment_Analysis>"
REFINEMENT = "<Refinement_Instruction>"
PROMPT_ANALYSIS = "<Prompt_Analysis>"
ASSESS_GOAL = "<Assess_Goal_Motion>"
TRACE_TEMPLATE = "<Generate_Assess_Refien_Template_wo_Answer>"   # sic, the release's key
TRACE_OUTPUT = "<Unified_Mogen_COT_Trace>"
TRACE_TASK = "unified_mogen_cot_v3"
MAX_INTERMEDIATES = 4


def intermediate_motion(k: int) -> str:
    return f"<Intermediate_Motion_{k}>"


def assess_intermediate(k: int) -> str:
    return f"<Assess_Intermediate_Motion_{k}>"


# Stage-1 task -> (file name, human template key, gpt placeholder). The file names are the release's; its
# instructed-refinement file mislabels `task` as tm2m_direct_refinement, ours says tm2m_instructed_refinement.
STAGE1 = {
    "m2t_motion_caption": ("M2T_motion_caption_annots.json", "<Motion2X_Template>", GOAL_CAPTION),
    "t2m_direct_generation": ("T2M_direct_generation_annots.json", "<Text2Motion_Template>", GOAL_MOTION),
    "t2t_prompt_analysis": ("T2T_prompt_analysis_annots.json", "<Goal_Analysis_Template>", GOAL_ANALYSIS),
    "t2m_detailed_prompt_generation": ("T2M_detailed_prompt_generation_annots.json", "<Text2Motion_Template>",
                                       GOAL_MOTION),
    "tm2t_assessment_analysis": ("TM2T_assessment_analysis_annots.json", "<Text_Motion2Alignment_Analysis_Template>",
                                 ASSESSMENT),
    "tm2t_refinement_instruction": ("TM2T_refinement_instruction_annots.json",
                                    "<Text_Motion2Refinement_Instruction_Template>", REFINEMENT),
    "tm2m_direct_refinement": ("TM2M_direct_refinement_annots.json", "<Direct_Motion_Refinement_Template>",
                               GOAL_MOTION),
    "tm2m_instructed_refinement": ("TM2M_instructed_motion_refinement_annots.json",
                                   "<Instructed_Motion_Refinement_Template>", GOAL_MOTION),
}
TRACE_FILE = "stage2_traces.json"
NEGATIVES_FILE = "negatives.json"   # the ranking's picks with their similarities (no `annotations`)


def conversations(human: str, gpt: str) -> list[dict]:
    return [{"from": "system", "value": SYSTEM}, {"from": "human", "value": human}, {"from": "gpt", "value": gpt}]


def stage1_item(task: str, motions: dict | None = None, text: dict | None = None,
                candidates: list[dict] | None = None) -> dict:
    """A stage-1 item (its `id` is set when the file is written)."""
    _, human, gpt = STAGE1[task]
    item: dict = {"id": None, "task": task}
    if candidates is None:
        item |= {"motions": motions or {}, "text": text or {}}
    else:
        item["candidate_motion_text"] = candidates
    return item | {"conversations": conversations(human, gpt)}


def trace_item(candidates: list[dict]) -> dict:
    return {"id": None, "task": TRACE_TASK, "candidate_motion_text": candidates,
            "conversations": conversations(TRACE_TEMPLATE, TRACE_OUTPUT)}
