"""The prompts the LLM annotator sends (the release's GPT-4o prompts, paper Figs. 8-9, were not readable).

Like the release, the annotator judges alignment from text only: the candidate motion is known by its
data-set captions, compared with the goal caption (reference section 4). Fields: {caption}, {goal},
{descriptions} (one "- caption" line each), {assessment}, {refinement}, {text}.
"""

# Four goal analyses per caption, one prompt each (greedy decoding gives one answer per prompt).
ANALYSIS_PROMPTS = (
    'A text describes a human motion: "{caption}"\nBefore animating it, analyse the goal in one or two '
    'sentences. Start with "The goal is to generate" and name the key elements: the actions and their order, '
    "the body parts, directions, speeds and counts. State only what the text says.",
    'A text describes a human motion: "{caption}"\nIn one sentence, describe what the motion should look '
    'like. Start with "The motion should". State only what the text says.',
    'A text describes a human motion: "{caption}"\nIn one sentence, explain what a correct execution of '
    'this motion involves. Start with "A correct motion". State only what the text says.',
    'A text describes a human motion: "{caption}"\nIn one sentence, say what the motion must show to satisfy '
    'the text. Start with "To satisfy the goal". State only what the text says.',
)

# Four detailed descriptions per caption (the inputs of t2m_detailed_prompt_generation).
DESCRIPTION_PROMPTS = (
    'A text describes a human motion: "{caption}"\nRewrite it as one more detailed description of the same '
    'motion, in lower case, starting with "a person". Write only the description.',
    'A text describes a human motion: "{caption}"\nRewrite it as one detailed sentence, in lower case, '
    'starting with "the motion". Write only the sentence.',
    'A text describes a human motion: "{caption}"\nDescribe the same motion step by step in one sentence, '
    'in lower case, starting with "a person first". Write only the sentence.',
    'A text describes a human motion: "{caption}"\nParaphrase it with more detail about the body movement, '
    'one sentence in lower case. Write only the sentence.',
)

ASSESS_PROMPT = (
    "You compare a generated human motion with a goal text. You cannot see the motion; you have "
    'descriptions of it.\nGoal text: "{goal}"\nDescriptions of the generated motion:\n{descriptions}\n'
    "Write exactly two lines:\n"
    "Assessment: one or two sentences on how well the generated motion aligns with the goal text, naming "
    "what matches and what differs.\n"
    "Refinement: one instruction that changes the generated motion to match the goal text, or exactly "
    '"No refinements needed." if it already matches.'
)

VERIFY_ASSESSMENT_PROMPT = (
    'Goal text: "{goal}"\nDescriptions of a generated motion:\n{descriptions}\nA reviewer wrote:\n'
    "Assessment: {assessment}\nRefinement: {refinement}\n"
    "Is the review consistent with the goal text and the descriptions: it names real differences, invents "
    "none, and its refinement moves the motion toward the goal text? Answer with one word: yes or no."
)

VERIFY_TEXT_PROMPT = (
    'Text: "{caption}"\nRewrite: "{text}"\nDoes the rewrite describe the same motion as the text, without '
    "changing or inventing details? Answer with one word: yes or no."
)
