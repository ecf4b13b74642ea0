"""lm-eval task YAML: the generated tasks (`build_offline_tasks`) and local copies of standard
ones (`standard_task_override`).

Data formats of the standard tasks
----------------------------------

`standard_task_override` points a built-in lm-eval task at local JSON Lines files (or JSON
arrays, or Parquet), one record per item in the schema of the task's Hugging Face dataset,
because the built-in prompts read those field names. `samples/<task>.jsonl` (`SAMPLES_DIR`) holds
a few hand-written items per task in exactly that schema; the tests evaluate them, and they show
what to supply:

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

import json
import logging
from pathlib import Path
from typing import Any

import yaml

from saturation.evaluate import CLOZE_TASK, HELDOUT_TASKS_VERSION, PERPLEXITY_TASK
from saturation.evaluate.decontamination import (
    DECONTAMINATION_WORDS,
    EXCLUSION_REASONS,
    SPECIAL_TOKEN_TEXT,
    TRAIN_NGRAM,
    SharedNgrams,
)
from saturation.evaluate.items import (
    CLOZE_CONTEXT_WORDS,
    cloze_items,
    perplexity_documents,
    read_documents,
)
from saturation.io import atomic_path, sha256_file, write_text_atomic
from saturation.tokenizer import SPECIAL_TOKENS, iter_texts

log = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).parent / "samples"
# What `build_offline_tasks` writes next to the tasks: the ids of the text left out, by reason.
DECONTAMINATION_FILE = "decontamination.json"
# Built-in task → its YAML under lm_eval/tasks/; "storycloze" is accepted for storycloze_2016.
STANDARD_TASKS = {
    "lambada_openai": "lambada/lambada_openai.yaml",
    "wikitext": "wikitext/wikitext.yaml",
    "sciq": "sciq/sciq.yaml",
    "arc_easy": "arc/arc_easy.yaml",
    "piqa": "piqa/piqa.yaml",
    "storycloze_2016": "storycloze/storycloze_2016.yaml",
}
TASK_ALIASES = {"storycloze": "storycloze_2016"}
_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_SPLIT_KEYS = ("training_split", "validation_split", "test_split")
_DATASET_KEYS = ("dataset_path", "dataset_name", "dataset_kwargs", *_SPLIT_KEYS)


class _Function(str):
    """A `!function` reference, kept as its dotted name so it can be written back."""


class _TaskDumper(yaml.SafeDumper):
    """Writes task YAML: `_Function` as `!function`, keys in their given order."""


_TaskDumper.add_representer(
    _Function, lambda dumper, value: dumper.represent_scalar("!function", str(value))
)


def _dump_task(config: dict[str, Any]) -> str:
    return yaml.dump(config, Dumper=_TaskDumper, sort_keys=False, allow_unicode=True, width=1 << 16)


def _local_dataset(data_files: dict[str, str], beside_yaml: bool = False) -> dict[str, Any]:
    """Dataset fields reading local files through `datasets`' json or parquet builder.

    `data_files` is a mapping (a bare path would become split "train"). `datasets` resolves a
    relative path against the working directory, not the YAML: files kept beside the YAML (the
    generated tasks', `beside_yaml`) are named relative to it, and the evaluation runs in that
    folder (saturation.evaluate.lmeval.run_tasks), so a results folder can be moved; any other
    file is named by its absolute path.
    """
    files = {split: Path(path) if beside_yaml else Path(path).resolve()
             for split, path in data_files.items()}  # fmt: skip
    builders = {_BUILDERS.get(path.suffix) for path in files.values()}
    if len(builders) != 1 or None in builders:
        raise ValueError(f"data files must all be JSON/JSONL or all Parquet; got {data_files}")
    return {
        "dataset_path": builders.pop(),
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: str(path) for split, path in files.items()}},
    }


def _write_jsonl(path: Path, records: list[dict[str, str]]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _heldout_task(name: str, data: Path, metadata: dict[str, Any]) -> dict[str, Any]:
    """The YAML of a generated task, mirroring lambada_openai (cloze) or wikitext (perplexity)."""
    config: dict[str, Any] = {"task": name, **_local_dataset({"test": str(data)}, beside_yaml=True)}
    config |= {"training_split": None, "validation_split": None, "test_split": "test"}
    if name == CLOZE_TASK:
        config |= {
            "output_type": "loglikelihood",
            "doc_to_text": "context",
            "doc_to_target": "{{' ' + target}}",
            "metric_list": [
                {"metric": "perplexity", "aggregation": "perplexity", "higher_is_better": False},
                {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            ],
        }
    else:
        config |= {
            "output_type": "loglikelihood_rolling",
            "doc_to_text": "",
            "doc_to_target": "text",
            "metric_list": [
                {"metric": "word_perplexity"},
                {"metric": "byte_perplexity"},
                {"metric": "bits_per_byte"},
            ],
        }
    return config | {"metadata": {"version": HELDOUT_TASKS_VERSION, **metadata}}


def build_offline_tasks(
    split_jsonl: Path,
    out_dir: Path,
    n_cloze: int,
    n_docs: int,
    train_jsonl: Path,
    seed: int = 0,
    context_words: int = CLOZE_CONTEXT_WORDS,
) -> dict[str, Path]:
    """Write `sat_cloze` and `sat_wordperplexity` (data JSONL + task YAML) into a new `out_dir`.

    At most `n_cloze` cloze items and `n_docs` documents (fewer if the split has fewer; the
    counts are in each YAML's metadata, with the split's sha256 and the seed). Text is left out
    before the items are drawn, for one of `EXCLUSION_REASONS`: a cloze passage (context and
    target) or a perplexity document that shares a `DECONTAMINATION_WORDS`-word n-gram with a
    training document (a model scored on text it was trained on measures memory, not
    generalisation), or that holds a special-token string. Each YAML's metadata counts what was
    left out; `decontamination.json` lists the ids by reason. The YAMLs name their data files
    relative to their own folder (see `_local_dataset`), so the folder can be moved. Returns
    task name → YAML path.
    """
    documents = read_documents(split_jsonl)
    train = SharedNgrams((doc["text"] for doc in documents), iter_texts(Path(train_jsonl)))

    def exclusion(text: str) -> str | None:
        if any(token in text for token in SPECIAL_TOKENS):
            return SPECIAL_TOKEN_TEXT
        return TRAIN_NGRAM if train.overlaps(text) else None

    items, passages_left_out, n_passages = cloze_items(
        documents, n_cloze, context_words, seed, exclusion
    )
    docs_left_out: dict[str, list[str]] = {}
    for doc in documents:
        if (reason := exclusion(doc["text"])) is not None:
            docs_left_out.setdefault(reason, []).append(doc["id"])
    dropped_ids = {doc_id for ids in docs_left_out.values() for doc_id in ids}
    docs = perplexity_documents([d for d in documents if d["id"] not in dropped_ids], n_docs, seed)
    if not items or not docs:
        raise ValueError(
            f"{split_jsonl}: no cloze passage or no document to evaluate on after leaving out "
            f"those sharing a {DECONTAMINATION_WORDS}-word n-gram with {train_jsonl} or holding "
            f"a special-token string"
        )
    out_dir = Path(out_dir).resolve()
    provenance = {
        "source": str(Path(split_jsonl).resolve()),
        "source_sha256": sha256_file(split_jsonl),
        "seed": seed,
        "decontaminated_against": str(Path(train_jsonl).resolve()),
        "decontaminated_against_sha256": sha256_file(train_jsonl),
        "decontamination_ngram_words": DECONTAMINATION_WORDS,
    }
    left_out = {CLOZE_TASK: passages_left_out, PERPLEXITY_TASK: docs_left_out}
    candidates = {CLOZE_TASK: n_passages, PERPLEXITY_TASK: len(documents)}
    dropped = {
        name: {
            "candidates": candidates[name],
            "dropped": {
                reason: sorted(left_out[name].get(reason, [])) for reason in EXCLUSION_REASONS
            },
        }
        for name in left_out
    }
    for name, counts in dropped.items():
        log.info(
            "%s: of %d candidates, left out %s",
            name,
            counts["candidates"],
            ", ".join(f"{len(ids)} ({reason})" for reason, ids in counts["dropped"].items()),
        )
    tasks = {
        CLOZE_TASK: (items, {"n_items": len(items), "context_words": context_words}),
        PERPLEXITY_TASK: (docs, {"n_items": len(docs)}),
    }
    record = provenance | {
        "reasons": {
            TRAIN_NGRAM: f"shares a {train.n}-word n-gram (lowercased letters and digits) with train",
            SPECIAL_TOKEN_TEXT: f"holds one of {list(SPECIAL_TOKENS)}, which lm-eval's tokenizer "
            "encodes as a control id while training encoded it as text",
        },
        "tasks": dropped,
    }
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        (tmp / DECONTAMINATION_FILE).write_text(json.dumps(record, indent=2) + "\n")
        for name, (records, extra) in tasks.items():
            _write_jsonl(tmp / f"{name}.jsonl", records)
            counts = {"candidates": dropped[name]["candidates"]} | {
                f"dropped_{reason}": len(ids) for reason, ids in dropped[name]["dropped"].items()
            }
            config = _heldout_task(name, Path(f"{name}.jsonl"), provenance | extra | counts)
            (tmp / f"{name}.yaml").write_text(_dump_task(config), encoding="utf-8")
    return {name: out_dir / f"{name}.yaml" for name in tasks}


def _builtin_task_config(task: str) -> dict[str, Any]:
    """A built-in task's YAML as data, `!function x.f` turned into an importable dotted name.

    lm-eval resolves `!function` next to the YAML first and then as an importable module, so
    `lm_eval.tasks.wikitext.preprocess_wikitext.f` reaches the very function the built-in uses.
    """
    import lm_eval.tasks

    relative = Path(STANDARD_TASKS[task])
    prefix = ".".join(("lm_eval", "tasks", *relative.parent.parts))

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor(
        "!function", lambda loader, node: _Function(f"{prefix}.{loader.construct_scalar(node)}")
    )
    path = Path(lm_eval.tasks.__file__).parent / relative
    config = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)
    if "include" in config:
        raise ValueError(f"{path}: built-in tasks with `include` are not supported")
    return config


def standard_task_override(task: str, data_files: dict[str, str], out_dir: Path) -> Path:
    """Write `out_dir/<task>.yaml`: the built-in task reading local files in the hub's schema.

    Every field but the dataset ones is copied from the installed lm-eval's YAML, so prompts,
    targets and metrics are the real task's. `data_files` maps split names as the built-in
    names them (e.g. `test`, or `validation` for piqa) to JSON(L) files; the split lm-eval scores
    (test if the task has one, else validation) is required, and splits not given are disabled.
    """
    name = TASK_ALIASES.get(task, task)
    if name not in STANDARD_TASKS:
        raise ValueError(f"unknown standard task {task!r}; known: {sorted(STANDARD_TASKS)}")
    builtin = _builtin_task_config(name)
    splits = {key: builtin.get(key) for key in _SPLIT_KEYS}
    scored = splits["test_split"] or splits["validation_split"]
    unknown = set(data_files) - {split for split in splits.values() if split}
    if scored not in data_files or unknown:
        raise ValueError(
            f"{name}: data_files must give split {scored!r} and only splits among "
            f"{sorted(s for s in splits.values() if s)}; got {sorted(data_files)}"
        )
    config = {key: value for key, value in builtin.items() if key not in _DATASET_KEYS}
    config |= _local_dataset(data_files)
    config |= {key: split if split in data_files else None for key, split in splits.items()}
    path = Path(out_dir) / f"{name}.yaml"
    write_text_atomic(path, _dump_task(config))
    return path
