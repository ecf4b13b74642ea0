"""Data formats of the standard benchmarks evaluated from local files (`saturation.evaluate`).

`evaluate.standard_task_override` points a built-in lm-eval task at local JSON Lines files (or
JSON arrays), one record per item in the schema of the task's Hugging Face dataset, because the
built-in prompts read those field names. `samples/<task>.jsonl` holds a few hand-written items
per task in exactly that schema; the tests evaluate them, and they show what to supply:

| task | scored split | fields of one record |
|---|---|---|
| `lambada_openai` | test | `text` (passage; its last space-separated word is the target) |
| `wikitext` | test | `page` (a whole raw wikitext-2/103 article, tokenised as in the release: ` @-@ `, ` , `) |
| `sciq` | test | `question`, `distractor1`, `distractor2`, `distractor3`, `correct_answer`, `support` |
| `arc_easy` | test | `id`, `question`, `choices: {text: [...], label: [...]}`, `answerKey` (a label) |
| `piqa` | validation | `goal`, `sol1`, `sol2`, `label` (0 or 1) |
| `storycloze_2016` | test | `story_id`, `input_sentence_1` … `input_sentence_4`, `sentence_quiz1`, `sentence_quiz2`, `answer_right_ending` (1 or 2) |

Story Cloze is distributed as CSV with other column names; rename them to the fields above
(`InputStoryid` → `story_id`, `InputSentence1` → `input_sentence_1`, …,
`RandomFifthSentenceQuiz1` → `sentence_quiz1`, `AnswerRightEnding` → `answer_right_ending`),
as the `LSDSem/story_cloze` loader that lm-eval's task expects does. piqa's public test split
has no labels, which is why lm-eval scores its validation split.
"""

from __future__ import annotations

from pathlib import Path

SAMPLES_DIR = Path(__file__).parent / "samples"
