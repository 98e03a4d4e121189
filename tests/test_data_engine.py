"""The data engine on a small real corpus with the shipped evaluator: the release's annotation schema, the
evaluator-ranked negatives, the procedural and LLM annotators with the double-check, the sampler that reads
the files back into training samples, and the CLI's errors."""
from __future__ import annotations

import json
import random
import re
import shutil

import numpy as np
import pytest
import torch

from backend import prompts
from backend.cli.main import main
from backend.models.motion_llm import MotionLMConfig, add_motion_tokens, build_word_tokenizer, gemma2_config
from training.corpus.labels import Action, Label, Segment, describe_difference
from training.corpus.writer import write_corpus
from training.data_engine import LLMAnnotator, ProceduralAnnotator, build_annotations, llm_prompts, schema
from training.data_engine.checks import REASONS, judgement_problem
from training.data_engine.llm import is_yes, parse_judgement
from training.data_engine.motions import MotionInstance, load_motions
from training.data_engine.ranking import progressive_negatives
from training.evaluator import load_evaluator
from training.llm.annotations import AnnotationSampler
from training.llm.data import MATCH_ASSESSMENT, MISMATCH_OPENING, read_labels

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("data") / "corpus", clips=40, seed=5, workers=1)


@pytest.fixture(scope="module")
def evaluator():
    return load_evaluator()


@pytest.fixture(scope="module")
def annotated(corpus, evaluator, tmp_path_factory):
    out = tmp_path_factory.mktemp("annotations")
    files = build_annotations(corpus, out, ProceduralAnnotator(seed=0), evaluator, progress=False)
    return out, {task: json.loads(path.read_text()) for task, path in files.items()}


@pytest.fixture(scope="module")
def codes(corpus):
    """Stand-in VQ codes: distinct per clip, so a sample's motion spans say which clip they are."""
    motions = load_motions(corpus, "train")
    return {m.name: [(i * 7 + k) % 512 for k in range(6 + i % 5)] for i, m in enumerate(motions)}


def test_files_are_the_release_schema(corpus, annotated):
    out, data = annotated
    assert set(schema.STAGE1) == set(prompts.STAGE1_TASKS)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [name for name, _, _ in schema.STAGE1.values()] + ["stage2_traces.json", "negatives.json"])
    motions = load_motions(corpus, "train")
    for task, (_, human, gpt) in schema.STAGE1.items():
        items = data[task]["annotations"]
        assert data[task]["info"]["num_annotations"] == len(items) > 0
        assert [it["id"] for it in items] == list(range(len(items)))
        for it in items:
            assert it["task"] == task
            assert it["conversations"] == [{"from": "system", "value": "<General_System_Prompt>"},
                                           {"from": "human", "value": human}, {"from": "gpt", "value": gpt}]
            for entry in it.get("candidate_motion_text", [it]):
                for ref in entry["motions"].values():
                    assert set(ref) == {"motion_name", "f_tag", "to_tag"} and ref["f_tag"] == ref["to_tag"] == 0.0
                assert all(isinstance(v, list) and v for v in entry["text"].values())
    # one caption item per motion, one analysis item per caption, 5 candidates (4 negatives + goal) per caption
    assert len(data["m2t_motion_caption"]["annotations"]) == len(motions) == 32
    assert len(data["t2t_prompt_analysis"]["annotations"]) == sum(len(m.captions) for m in motions)
    judged = data["tm2t_assessment_analysis"]["info"]["double_check"]["judgements"]
    assert judged["checked"] == 5 * sum(len(m.captions) for m in motions)
    assert data["tm2t_refinement_instruction"]["info"]["num_instances"] == judged["kept"]
    assert all(len(it["text"]["<Goal_Analysis>"]) == 4 for it in data["t2t_prompt_analysis"]["annotations"])

    traces = data["stage2"]["annotations"]
    assert len(traces) == len(motions)
    for it in traces:
        assert it["task"] == "unified_mogen_cot_v3"
        assert [c["value"] for c in it["conversations"]] == [
            "<General_System_Prompt>", "<Generate_Assess_Refien_Template_wo_Answer>", "<Unified_Mogen_COT_Trace>"]
        for cand in it["candidate_motion_text"]:
            text, motions_ = cand["text"], cand["motions"]
            assert isinstance(text["<Goal_Caption>"], str) and len(text["<Prompt_Analysis>"]) == 4
            assert text["<Assess_Goal_Motion>"] == {"assessment": MATCH_ASSESSMENT,
                                                    "refinement": "No refinements needed."}
            n = len(motions_) - 1
            assert set(motions_) == {"<Goal_Motion>"} | {f"<Intermediate_Motion_{k}>" for k in range(n)}
            assert {k for k in text if k.startswith("<Assess_Intermediate")} == {
                f"<Assess_Intermediate_Motion_{k}>" for k in range(n)}
            assert all(len(text[f"<Assess_Intermediate_Motion_{k}>"]["refinement"].split()) > 3 for k in range(n))


def test_negatives_are_the_evaluators_closest_and_never_the_goals_label(corpus, annotated, evaluator):
    _, data = annotated
    motions = {m.name: m for m in load_motions(corpus, "train")}
    labels = read_labels(corpus)
    motion_emb = dict(zip(motions, evaluator.embed_motions([m.features for m in motions.values()])))
    for entry in data["negatives"]["negatives"]:
        goal = motions[entry["goal"]]
        text_emb = evaluator.embed_texts(goal.captions)
        sim = {n: -np.linalg.norm(text_emb - e, axis=1).mean() for n, e in motion_emb.items()}
        eligible = [n for n in motions if describe_difference(labels[n], labels[goal.name])]
        names = [n["motion_name"] for n in entry["negatives"]]
        assert len(names) == 4 and goal.name not in names
        assert all(describe_difference(labels[n], labels[goal.name]) for n in names)
        recorded = [n["similarity"] for n in entry["negatives"]]
        assert recorded == sorted(recorded)                      # least to most similar
        assert np.allclose(recorded, [sim[n] for n in names], atol=1e-4)
        # 31 eligible at p = 0.9: each round keeps ceil(0.1 * pool) >= rounds left, i.e. the 4 closest
        assert set(names) == set(sorted(eligible, key=sim.get)[-4:])


def test_progressive_portion_narrows_toward_the_most_similar():
    scores = np.random.default_rng(0).permutation(1000).astype(float)   # score = 999 - rank
    eligible = np.ones(1000, bool)
    eligible[scores >= 995] = False                                     # the 5 best are off limits
    ranks = []
    for seed in range(100):
        picks = progressive_negatives(scores, eligible, 4, 0.9, np.random.default_rng(seed))
        assert [scores[p] for p in picks] == sorted(scores[p] for p in picks)
        assert all(eligible[p] for p in picks) and len(set(picks)) == 4
        ranks.append(sorted(994 - scores[p] for p in picks))             # rank among the eligible, 0 = best
    ranks = np.array(ranks)
    assert ranks.max() < 100                       # round 1 keeps the top 10 %
    assert (ranks[:, :3] < 10).all()               # rounds 2-4 keep the top 10 % of those
    assert ranks[:, 3].mean() > 20                 # the first pick spreads over the top 100
    assert len(progressive_negatives(scores[:3], np.ones(3, bool), 4, 0.9, np.random.default_rng(0))) == 3


def quoted_and_named(difference: str) -> set[str]:
    """What a difference sentence is about: its quoted action names, the action of a parameter difference,
    a missing layered action, or the two counts."""
    found = set(re.findall(r"'([^']+)'", difference)) | set(re.findall(r"^.*?: the (.+?) has \w+ ", difference))
    found |= set(re.findall(r"asks to (.+) at the same time", difference))
    return found or set(re.findall(r"\d+", difference))


def test_procedural_assessments_name_real_differences_in_varied_words(corpus, annotated):
    _, data = annotated
    labels = read_labels(corpus)
    shapes, refinement_shapes, goals = set(), set(), 0
    for item in data["tm2t_assessment_analysis"]["annotations"]:
        for cand in item["candidate_motion_text"]:
            name, goal = cand["motions"]["<Generated_Motion>"]["motion_name"], cand["meta_inst_name"].split("_")[0]
            assessment = cand["text"]["<Assessment_Analysis>"][0]
            refinement = cand["text"]["<Refinement_Instruction>"][0]
            if name == goal:
                goals += 1
                assert (assessment, refinement) == (MATCH_ASSESSMENT, "No refinements needed.")
                continue
            differences = describe_difference(labels[name], labels[goal])
            assert differences, f"{name} is a negative of {goal} but has the same label"
            assert any(w in assessment for d in differences for w in quoted_and_named(d)), (assessment, differences)
            # one shared verdict opening, so greedy decoding weighs "wrong" as one class against the match sentence
            assert assessment.startswith(MISMATCH_OPENING + " "), assessment
            assert "no refinement" not in refinement.lower() and len(refinement.split()) > 3
            shapes.add(re.sub(r"'[^']+'|\d+", "X", assessment))
            refinement_shapes.add(re.sub(r"'[^']+'|\d+", "X", refinement))
    assert goals == sum(len(m.captions) for m in load_motions(corpus, "train"))
    assert len(shapes) >= 6 and len(refinement_shapes) >= 6


def instance(label: Label, captions: list[str], name: str) -> MotionInstance:
    return MotionInstance(name, 0.0, 0.0, captions, [""] * len(captions), np.zeros((8, 263), np.float32), label)


def test_a_parameter_the_caption_does_not_state_is_no_difference():
    wave = lambda side: Label([Segment(Action("wave", {"side": side, "speed": "normal"}))])   # noqa: E731
    goal = instance(wave("right"), ["a man waves.", "a man waves his right hand."], "000001")
    cand = instance(wave("left"), ["a man waves his left hand."], "000002")
    annotator = ProceduralAnnotator(seed=0)
    vague, exact = (annotator.judge(goal, c, [cand, goal]) for c in goal.captions)
    assert vague[0] is None and vague[1].refinement == "No refinements needed."
    assert "left" in exact[0].assessment and "right" in exact[0].assessment and "right" in exact[0].refinement
    assert annotator.log.to_dict()["judgements"] == {"checked": 4, "kept": 3, "dropped": {"not_in_caption": 1}}


def test_double_check_rules_and_llm_answer_parsing():
    assert judgement_problem("", "Raise the left arm higher.", False) == "empty"
    assert judgement_problem("It waves.", "No refinements needed.", False) == "misses_difference"
    assert judgement_problem("It waves.", "Wave more.", False) == "too_short"
    assert judgement_problem("It matches.", "Raise the arm a bit higher.", True) == "refines_goal"
    assert judgement_problem("It matches.", "No refinement is needed.", True) is None
    assert judgement_problem("It waves left.", "Wave with the right hand instead.", False) is None
    answer = '**Assessment:** The motion waves the left hand.\nRefinement: "Wave with the right hand instead."\n\nNote'
    assert parse_judgement(answer) == ("The motion waves the left hand.", "Wave with the right hand instead.")
    assert parse_judgement("The motion is fine.") == ("", "")
    assert is_yes("Yes.") and is_yes(" yes, it is") and not is_yes("No") and not is_yes("yesterday")


def single_item_sampler(tmp_path, data: dict, codes: dict) -> tuple[AnnotationSampler, dict]:
    item = data["annotations"][0]
    tmp_path.mkdir()
    (tmp_path / "one.json").write_text(json.dumps({"info": {}, "annotations": [item]}))
    return AnnotationSampler(tmp_path, codes, random.Random(1)), item


@pytest.mark.parametrize("task", prompts.STAGE1_TASKS)
def test_sampler_builds_the_exact_stage1_prompts(annotated, codes, tmp_path, task):
    _, data = annotated
    sampler, item = single_item_sampler(tmp_path / task, data[task], codes)
    gpt = item["conversations"][2]["value"]
    expected = set()
    for cand in item.get("candidate_motion_text", [item]):
        motion = {k: codes[v["motion_name"]] for k, v in cand["motions"].items()}
        for caption in cand["text"]["<Goal_Caption>"]:
            for answer in cand["text"].get(gpt, [None]):
                s = prompts.stage1_sample(task, caption=caption, motion=motion.get("<Goal_Motion>"),
                                          generated=motion.get("<Generated_Motion>"), target=answer or caption,
                                          instruction=(cand["text"].get("<Refinement_Instruction>") or [""])[0])
                expected.add((s.context, s.response))
    drawn = [sampler.draw(0.0) for _ in range(40)]
    assert all(s.task == task and len(s.pieces) == 1 and not s.pieces[0][1] for s in drawn)
    assert {(s.context, s.pieces[0][0]) for s in drawn} <= expected
    if "candidate_motion_text" in item:   # every access draws again (the release froze the first candidate)
        assert len({s.context for s in drawn}) > 3


def test_sampler_traces_ignore_intermediate_motions(annotated, codes, tmp_path):
    _, data = annotated
    sampler, item = single_item_sampler(tmp_path / "trace", data["stage2"], codes)
    counts = set()
    for _ in range(60):
        s = sampler.draw(1.0)
        cand = next(c for c in item["candidate_motion_text"] if s.context in
                    {prompts.trace_context(c["text"]["<Goal_Caption>"], t) for t in prompts.TRACE_TEMPLATES})
        by_span = {prompts.motion_span(codes[ref["motion_name"]]):
                   (int(re.search(r"\d+", key).group()), cand["text"][f"<Assess_{key[1:]}"])
                   for key, ref in cand["motions"].items() if key.startswith("<Intermediate")}
        spans = [re.search(r"<Motion>.*</Motion>", p).group(0) for p, _ in s.pieces if p.startswith("[generate]")]
        goal_span = prompts.motion_span(codes[cand["motions"]["<Goal_Motion>"]["motion_name"]])
        assert spans[-1] == goal_span
        steps = [by_span[sp] for sp in spans[:-1]]
        assert [k for k, _ in steps] == sorted(k for k, _ in steps)
        rounds = [prompts.TraceRound(codes[cand["motions"][f"<Intermediate_Motion_{k}>"]["motion_name"]],
                                     j["assessment"], j["refinement"]) for k, j in steps]
        rounds.append(prompts.TraceRound(codes[cand["motions"]["<Goal_Motion>"]["motion_name"]], MATCH_ASSESSMENT,
                                         prompts.NO_REFINEMENT))
        analysis = re.search(r"\[analyze\](.*)\[/analyze\]", "".join(p for p, _ in s.pieces)).group(1)
        assert analysis in cand["text"]["<Prompt_Analysis>"]
        assert s.pieces == prompts.trace_pieces(analysis, rounds)
        assert [ignored for _, ignored in s.pieces].count(True) == len(steps)
        counts.add(len(steps))
    assert counts == {0, 1, 2, 3, 4}


def test_sampler_refuses_a_stage_it_has_no_items_for(annotated, codes, tmp_path):
    _, data = annotated
    stage1_only, _ = single_item_sampler(tmp_path / "stage1", data["m2t_motion_caption"], codes)
    traces_only, _ = single_item_sampler(tmp_path / "traces", data["stage2"], codes)
    stage1_only.require(0.0)
    traces_only.require(1.0)
    with pytest.raises(ValueError, match=r"stage1: no usable stage-2 traces .*\"stage\": \"1\""):
        stage1_only.require(0.4)
    with pytest.raises(ValueError, match=r"traces: no usable stage-1 task files.*\"stage\": \"2\""):
        traces_only.require(0.4)


def test_sampler_vocabulary_covers_every_sample(annotated, codes):
    out, _ = annotated
    sampler = AnnotationSampler(out, codes, random.Random(0))
    tokenizer = build_word_tokenizer(sampler.vocabulary_texts())
    add_motion_tokens(tokenizer, 512)
    unknown = 0
    for _ in range(300):
        s = sampler.draw(0.3)
        unknown += tokenizer(s.context + "".join(p for p, _ in s.pieces))["input_ids"].count(tokenizer.unk_token_id)
    assert unknown == 0
    short = AnnotationSampler(out, {n: c for n, c in codes.items() if n != sorted(codes)[0]}, random.Random(0))
    assert short.skipped["candidate without codes or fields"] > 0


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    """A randomly initialised Gemma-2 with a word-level tokenizer and a chat template, saved like any model."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_llm")
    tokenizer = build_word_tokenizer([*llm_prompts.ANALYSIS_PROMPTS, llm_prompts.ASSESS_PROMPT, "yes no"])
    tokenizer.chat_template = ("{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
                               "{% if add_generation_prompt %}Answer:{% endif %}")
    config = MotionLMConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, head_dim=16,
                            intermediate_size=64, max_positions=1024)
    from transformers import Gemma2ForCausalLM

    Gemma2ForCausalLM(gemma2_config(config, len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_llm_annotator_runs_and_the_double_check_drops_its_garbage(corpus, evaluator, tiny_llm, tmp_path):
    annotator = LLMAnnotator(tiny_llm, max_new_tokens=16)
    assert annotator.generate(["Goal text: a person walks."])[0]   # the random model does write something
    files = build_annotations(corpus, tmp_path, annotator, evaluator, limit=2, progress=False)
    info = json.loads(files["stage2"].read_text())["info"]
    captions = sum(len(m.captions) for m in load_motions(corpus, "train")[:2])
    checks = info["double_check"]
    assert info["annotator"] == f"llm:{tiny_llm}" and info["goal_motions"] == 2
    assert checks["judgements"]["checked"] == 5 * captions
    assert checks["analyses"]["checked"] == checks["descriptions"]["checked"] == 4 * captions
    for kind in ("judgements", "analyses", "descriptions"):
        dropped = checks[kind]["dropped"]
        assert checks[kind]["kept"] == 0 and sum(dropped.values()) == checks[kind]["checked"]
        assert set(dropped) <= set(REASONS)
    assert "unverified" in checks["analyses"]["dropped"]      # the verification call ran and said no
    assert info["goal_fallbacks"] == captions
    assessed = json.loads(files["tm2t_assessment_analysis"].read_text())["annotations"]
    kept = [c["text"]["<Assessment_Analysis>"][0] for it in assessed for c in it["candidate_motion_text"]]
    assert kept == [MATCH_ASSESSMENT] * captions               # only the goals, with the fixed text
    assert json.loads(files["stage2"].read_text())["annotations"] == []


def error_line(capsys, argv) -> str:
    assert main(["annotate", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error:")
    return err


def test_cli_writes_files_and_errors_are_one_line_naming_the_file(corpus, tmp_path, capsys):
    assert main(["annotate", "--data", str(corpus), "--out", str(tmp_path / "ok"), "--limit", "3"]) == 0
    assert json.loads((tmp_path / "ok" / "stage2_traces.json").read_text())["info"]["goal_motions"] == 3
    capsys.readouterr()

    out = ["--out", str(tmp_path / "o")]
    assert str(tmp_path / "nope") in error_line(capsys, ["--data", str(tmp_path / "nope"), *out])

    bare = tmp_path / "bare"
    shutil.copytree(corpus, bare)
    (bare / "labels.jsonl").unlink()
    assert f"{bare / 'labels.jsonl'}: missing" in error_line(capsys, ["--data", str(bare), *out])

    empty = tmp_path / "empty_llm"
    empty.mkdir()
    err = error_line(capsys, ["--data", str(corpus), *out, "--annotator", "llm", "--llm", str(empty)])
    assert str(empty) in err and "config.json" in err

    kit = tmp_path / "kit"
    shutil.copytree(corpus, kit)
    for path in (kit / "new_joint_vecs").glob("*.npy"):
        np.save(path, np.load(path)[:, :251])
    err = error_line(capsys, ["--data", str(kit), *out])
    assert re.search(r"new_joint_vecs/\d{6}\.npy: features of shape \(\d+, 251\).*263-d.*train-evaluator", err)
