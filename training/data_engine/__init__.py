"""The data engine of the training issue (reference sections 3.3-3.5 and 4): from any HumanML3D-layout data
set, the release's annotation files for the eight stage-1 tasks and the stage-2 interleaved traces.

    from training.data_engine import ProceduralAnnotator, build_annotations
    from training.evaluator import load_evaluator
    build_annotations("corpus/", "annotations/", ProceduralAnnotator(seed=0), load_evaluator())

Modules: motions (the data set's motion instances), ranking (negatives by evaluator similarity), checks (the
double-check), annotators (the interface), procedural and llm (the two annotators; llm_prompts holds the
LLM's prompts), schema (placeholders and file names), writer (build_annotations).
training/llm/annotations.py reads the files back into training samples.
"""
from .annotators import Annotator, Judgement
from .llm import LLMAnnotator
from .procedural import ProceduralAnnotator
from .writer import build_annotations

__all__ = ["Annotator", "Judgement", "LLMAnnotator", "ProceduralAnnotator", "build_annotations"]
