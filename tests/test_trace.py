"""The trace parser: last well-formed span, only code tokens, readable errors, never a silent code-0 motion."""
from __future__ import annotations

from backend import prompts
from backend.trace import last_motion_span, parse_round, parse_trace


def _trace() -> str:
    return prompts.trace_response("Key: jump.", [
        prompts.TraceRound([5, 6, 7], "It walks.", "Jump instead."),
        prompts.TraceRound([9, 10], "It matches.", prompts.NO_REFINEMENT)])


def test_full_trace_gives_analysis_rounds_and_finish():
    trace = parse_trace(_trace())
    assert trace.analysis == "Key: jump."
    assert [r.codes for r in trace.rounds] == [[5, 6, 7], [9, 10]]
    assert [(r.assessment, r.refinement, r.final) for r in trace.rounds] == [
        ("It walks.", "Jump instead.", False), ("It matches.", "No refinements needed.", True)]
    assert trace.finished and not any(r.error for r in trace.rounds)


def test_unfinished_trace_is_not_finished():
    text = _trace().split("[generate]")
    trace = parse_trace("[generate]".join(text[:2]))
    assert len(trace.rounds) == 1 and not trace.finished


def test_stray_text_inside_a_span_is_dropped():
    span = last_motion_span("<Motion><Motion_1>jump<Motion_2><Motion_3></Motion>")
    assert span.codes == [1, 2, 3] and not span.error


def test_garbage_span_is_an_error_not_code_zero():
    span = last_motion_span("<Motion>the quick brown fox<Motion_700><Motion_4></Motion>")
    assert span.codes == [] and "garbled" in span.error


def test_empty_span_is_an_error_not_code_zero():
    r = parse_round("[generate]<Motion></Motion>[/generate]\n[assess]Assessment: ok\nRefinement: x[/assess]")
    assert r.codes == [] and "empty" in r.error


def test_last_well_formed_span_wins():
    span = last_motion_span("<Motion><Motion_1></Motion> then <Motion><Motion_2><Motion_3></Motion><Motion>junk</Motion>")
    assert span.codes == [2, 3]


def test_unclosed_span_and_missing_span_have_reasons():
    assert "never closed" in last_motion_span("<Motion><Motion_1><Motion_2>").error
    assert "no motion" in last_motion_span("[generate]I cannot do that[/generate]").error


def test_missing_assessment_is_reported():
    r = parse_round("[generate]<Motion><Motion_1></Motion>[/generate]\n")
    assert r.codes == [1] and "assessment" in r.error


def test_assessment_running_into_other_blocks_is_garbled():
    r = parse_round("[generate]<Motion><Motion_1></Motion>[/generate]\n[assess]Assessment: ok\nRefinement: go[/plan]\n"
                    "[plan]x[/plan]\n[generate]<Motion><Motion_2></Motion>[/generate]\n[assess]Assessment: a\n"
                    "Refinement: b[/assess]")
    assert r.codes == [1] and "garbled" in r.error
