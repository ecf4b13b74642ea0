"""Benchmark evaluation of checkpoints through lm-evaluation-harness, fully offline.

Every task is a YAML file that lm-eval's `TaskManager` reads from our own include paths
(`include_defaults=False`, so its ~14k built-in tasks are never indexed and nothing reaches the
hub). Two kinds of tasks:

- generated from our held-out split (`build_offline_tasks`): `sat_cloze`, a LAMBADA-style
  last-word cloze, and `sat_wordperplexity`, WikiText-style rolling word perplexity, both
  decontaminated against the train split (`SharedNgrams`) and free of special-token strings;
- standard benchmarks (`standard_task_override`) whose built-in YAML is copied field for field
  with only the dataset pointed at local JSON(L) files in the hub's schema, so the prompts and
  metrics are exactly lm-eval's (formats in `saturation.tasks`).

lm-eval, transformers and torch are imported inside the functions: this module is imported when
Snakemake parses the workflow, where those imports would cost seconds for nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from saturation import corpus
from saturation.io import atomic_path, sha256_file, write_text_atomic
from saturation.tokenizer import SPECIAL_TOKENS, iter_texts

log = logging.getLogger(__name__)

CLOZE_TASK = "sat_cloze"
PERPLEXITY_TASK = "sat_wordperplexity"
# Bump when the generated items or task definitions change meaning (lm-eval reports it as the
# task's version, so results of different generations are never mixed up silently).
# 2: decontaminated against the train split; 3: text holding a special-token string left out.
HELDOUT_TASKS_VERSION = 3
# Enough resamples for a rough stderr of the bootstrapped metrics (perplexity); lm-eval's
# default of 100k costs seconds per metric and checkpoint. Mean metrics (acc) use a closed form.
BOOTSTRAP_ITERS = 100
# Words of context before each cloze target (LAMBADA passages have ~75): 50 words are ~80 tokens
# of the default 4096-token BPE (median; max 131 on the default test split), so passages fit the
# default models' 128-token context.
CLOZE_CONTEXT_WORDS = 50
# Evaluation text sharing a word n-gram this long with the train split is dropped, as in GPT-3's
# decontamination (Brown et al. 2020, appendix C): long enough that shared idioms and formulae
# rarely reach it, short enough to catch a parallel passage reworded at its edges.
DECONTAMINATION_WORDS = 13
DECONTAMINATION_FILE = "decontamination.json"
# Why held-out text is left out of the generated tasks. A special-token string ("<|endoftext|>"
# in a page about tokenizers) is encoded as plain text by the token files
# (`tokenizer.plain_text_backend`), but lm-eval's `tokenizer.encode` turns it into the control
# id: the model would be scored on an input it never saw in training. The strings are those of
# this pipeline's BPE, which are also GPT-NeoX's and Pythia's.
TRAIN_NGRAM = "train_ngram"
SPECIAL_TOKEN_TEXT = "special_token_text"
EXCLUSION_REASONS = (TRAIN_NGRAM, SPECIAL_TOKEN_TEXT)

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


# ---------------------------------------------------------------------------- held-out items

_WORD = re.compile(r"\S+")
# A cloze target: a word of letters (inner apostrophes allowed) that ends a sentence or clause;
# the punctuation after it is dropped, as in LAMBADA.
_TARGET = re.compile(r"([A-Za-z]+(?:'[A-Za-z]+)*)[.!?;:]+")


def _rank(seed: int, key: str) -> str:
    """A seeded pseudo-random sort key that depends on an id only, never on a position."""
    return hashlib.sha256(f"{seed}/{key}".encode()).hexdigest()


def read_documents(split_jsonl: Path) -> list[dict[str, str]]:
    """The `{"id", "source", "text"}` records of a corpus split; ids must be unique."""
    documents = [asdict(doc) for doc in corpus.read_documents(Path(split_jsonl))]
    if len({doc["id"] for doc in documents}) != len(documents):
        raise ValueError(f"{split_jsonl}: document ids are not unique")
    return documents


def cloze_passages(text: str, context_words: int) -> list[tuple[str, str]]:
    """Disjoint `(context, target)` passages of one document, in reading order.

    Scanning the words, a passage ends at the first eligible target with at least
    `context_words` words after the previous passage; its context is the `context_words` words
    before the target, verbatim (newlines kept). The target must follow a plain space, so
    `context + " " + target` is exactly a slice of the document. A pure function of the text,
    so a passage's index identifies it whatever the document order.
    """
    words = list(_WORD.finditer(text))
    passages: list[tuple[str, str]] = []
    first = 0
    for index in range(context_words, len(words)):
        match = _TARGET.fullmatch(words[index].group())
        start = words[index].start()
        if index - first < context_words or match is None or text[start - 1] != " ":
            continue
        passages.append((text[words[index - context_words].start() : start - 1], match.group(1)))
        first = index + 1
    return passages


def cloze_items(
    documents: Iterable[dict[str, str]],
    n_items: int,
    context_words: int,
    seed: int,
    exclusion: Callable[[str], str | None],
) -> tuple[list[dict[str, str]], dict[str, list[str]], int]:
    """`n_items` cloze items spread over as many documents as possible, in a seeded order, the
    ids of the passages left out, by reason (`exclusion(context + " " + target)`, None to keep
    the passage), and the number of candidate passages (left-out ones included).

    Each document's passages are ranked by a hash of (seed, document id, passage index); items
    are taken round by round (every document's first-ranked passage, then every second-ranked
    one, …), documents within a round ordered by a hash of (seed, document id). The result
    depends on the documents' contents only, never on their order in the file. A passage's id
    is its index among all the document's passages, left-out ones included, so dropping one
    never renames the others.
    """
    keyed, left_out = [], {}
    for doc in documents:
        passages = cloze_passages(doc["text"], context_words)
        order = sorted(range(len(passages)), key=lambda k: _rank(seed, f"{doc['id']}#{k}"))
        reasons = {k: exclusion(" ".join(passages[k])) for k in order}
        for k, reason in reasons.items():
            if reason is not None:
                left_out.setdefault(reason, []).append(f"{doc['id']}#{k}")
        for round_, k in enumerate(k for k in order if reasons[k] is None):
            context, target = passages[k]
            item = {"id": f"{doc['id']}#{k}", "doc_id": doc["id"], "source": doc["source"]}
            item |= {"context": context, "target": target}
            keyed.append(((round_, _rank(seed, doc["id"])), item))
    keyed.sort(key=lambda pair: pair[0])
    n_left_out = sum(map(len, left_out.values()))
    return [item for _, item in keyed[:n_items]], left_out, len(keyed) + n_left_out


def perplexity_documents(
    documents: Iterable[dict[str, str]], n_docs: int, seed: int
) -> list[dict[str, str]]:
    """`n_docs` whole documents, chosen and ordered by a seeded hash of their ids."""
    ranked = sorted(documents, key=lambda doc: _rank(seed, doc["id"]))
    return [{"id": d["id"], "source": d["source"], "text": d["text"]} for d in ranked[:n_docs]]


class SharedNgrams:
    """The word n-grams that held-out texts share with a training split, to find evaluation text
    the model may have seen.

    Held-out documents are split from train by id only, so parallel passages leak: in the
    default corpus, test chapter Psalms 108 repeats Psalms 57 and 60 (train) almost verbatim,
    Jeremiah 52 repeats 2 Kings 25. Words are lowercased runs of letters and digits
    (punctuation and whitespace only separate them), so a reprint that differs in commas or
    line breaks still matches. Each n-gram is a 64-bit key, a polynomial of per-word blake2b
    keys computed by numpy for all positions at once; a false match needs a 64-bit collision.

    The training split is streamed once and only what it shares is kept, so memory grows with
    the held-out texts, never with the training split (a web-scale corpus included): a train
    word outside the held-out vocabulary cannot be in a shared n-gram, so it is not even hashed.
    """

    _WORD = re.compile(r"[^\W_]+")
    _MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it mod 2**64 loses no bit
    _UNKNOWN = 0  # the code of a word outside the held-out vocabulary

    def __init__(
        self, heldout: Iterable[str], train: Iterable[str], n: int = DECONTAMINATION_WORDS
    ) -> None:
        if n < 1:
            raise ValueError(f"n-gram length must be at least 1, got {n}")
        self.n = n
        self._word_keys: dict[str, int] = {}
        held = [self._keys(self._words(text, learn=True)) for text in heldout]
        held_keys = np.unique(np.concatenate([np.empty(0, np.uint64), *held]))
        shared = [np.empty(0, np.uint64)]
        for text in train:
            keys = self._keys(self._words(text, learn=False))
            shared.append(keys[_sorted_contains(held_keys, keys)])
        self._shared = np.unique(np.concatenate(shared))

    def _words(self, text: str, learn: bool) -> np.ndarray:
        """The text's word codes; unknown words are `_UNKNOWN` unless `learn` adds them."""
        words = self._WORD.findall(text.lower())
        if learn:
            for word in set(words).difference(self._word_keys):
                digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
                self._word_keys[word] = int.from_bytes(digest, "little") or 1  # never _UNKNOWN
        lookup = self._word_keys.get
        return np.fromiter((lookup(w, self._UNKNOWN) for w in words), np.uint64, len(words))

    def _keys(self, codes: np.ndarray) -> np.ndarray:
        """Keys of the n-grams at every position, those holding an unknown word left out."""
        count = max(len(codes) - self.n + 1, 0)
        keys = np.zeros(count, dtype=np.uint64)
        for offset in range(self.n if count else 0):
            keys = keys * self._MULTIPLIER + codes[offset : offset + count]  # wraps mod 2**64
        unknown = np.concatenate(([0], np.cumsum(codes == self._UNKNOWN)))
        return keys[unknown[self.n : self.n + count] == unknown[:count]]

    def overlaps(self, text: str) -> bool:
        """Whether `text` (held-out text, or part of it) shares an n-gram with the train split."""
        # learn=False: a word the held-out side lacks cannot be in a shared n-gram
        return bool(
            _sorted_contains(self._shared, self._keys(self._words(text, learn=False))).any()
        )


def _sorted_contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Which of `keys` are in `sorted_keys` (ascending), by binary search."""
    if sorted_keys.size == 0:
        return np.zeros(keys.shape, dtype=bool)
    where = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return sorted_keys[where] == keys


# ---------------------------------------------------------------------------- task YAML


class _Function(str):
    """A `!function` reference, kept as its dotted name so it can be written back."""


class _TaskDumper(yaml.SafeDumper):
    """Writes task YAML: `_Function` as `!function`, keys in their given order."""


_TaskDumper.add_representer(
    _Function, lambda dumper, value: dumper.represent_scalar("!function", str(value))
)


def _dump_task(config: dict[str, Any]) -> str:
    return yaml.dump(config, Dumper=_TaskDumper, sort_keys=False, allow_unicode=True, width=1 << 16)


def _local_dataset(data_files: dict[str, str]) -> dict[str, Any]:
    """Dataset fields reading local files through `datasets`' json or parquet builder.

    `data_files` is a mapping (a bare path would become split "train") of absolute paths, since
    `datasets` resolves relative ones against the working directory, not the YAML.
    """
    files = {split: Path(path).resolve() for split, path in data_files.items()}
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
    config: dict[str, Any] = {"task": name, **_local_dataset({"test": str(data)})}
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
    left out; `decontamination.json` lists the ids by reason. The YAMLs hold the absolute final
    paths of their data files, so the folder cannot be moved (regenerate it instead). Returns
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
            config = _heldout_task(name, out_dir / f"{name}.jsonl", provenance | extra | counts)
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


# ---------------------------------------------------------------------------- evaluation


def load_lm(
    checkpoint_dir: Path, batch_size: int = 8, device: str = "cpu", max_length: int | None = None
) -> Any:
    """An lm-eval `HFLM` around a checkpoint folder's model (fp32, eval mode) and tokenizer.

    Built from objects rather than a path so lm-eval never consults the hub. Its context length
    is `max_length`, by default the model's `max_position_embeddings` (the training `seq_len`):
    longer contexts are cut from the left, rolling perplexity uses disjoint windows of that
    length, and a continuation longer than it fails lm-eval's assertion.
    """
    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(checkpoint_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir)
    return HFLM(
        pretrained=model.to(device).eval(),
        tokenizer=tokenizer,
        batch_size=batch_size,
        max_length=max_length,
    )


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Environment variables set for one block only (lm-eval reads some at call time)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_tasks(
    lm: Any,
    task_yaml_dirs: list[Path],
    tasks: list[str],
    limit: int | None = None,
    log_samples: bool = False,
    include_defaults: bool = False,
) -> dict[str, Any]:
    """lm-eval's `simple_evaluate` output for `tasks` found in `task_yaml_dirs` (zero-shot).

    Global RNGs are left alone (seeds None): scoring is deterministic, and lm-eval's bootstrap
    seeds its own generators. `DISABLE_MULTIPROC` keeps the bootstrap in this process instead of
    a pool of `cpu_count()` workers, which ignores the cores a job was given.
    `include_defaults=True` lets names fall back to lm-eval's built-in tasks: their data comes
    from the hub, and indexing them costs ~11 s.
    """
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    tasks = [TASK_ALIASES.get(task, task) for task in tasks]
    manager = TaskManager(
        include_path=[str(d) for d in task_yaml_dirs], include_defaults=include_defaults
    )
    missing = sorted(set(tasks) - set(manager.all_tasks))
    if missing:
        raise ValueError(f"tasks {missing} not found in {[str(d) for d in task_yaml_dirs]}")
    with _environ(DISABLE_MULTIPROC="1"):
        return simple_evaluate(
            model=lm,
            tasks=tasks,
            task_manager=manager,
            limit=limit,
            bootstrap_iters=BOOTSTRAP_ITERS,
            log_samples=log_samples,
            random_seed=None,
            numpy_random_seed=None,
            torch_random_seed=None,
            fewshot_random_seed=0,
        )


def _metric_name(key: str) -> str:
    """`acc,none` → `acc`; another filter is kept as a suffix (`exact_match_strict-match`)."""
    metric, _, filter_name = key.partition(",")
    stderr = metric.endswith("_stderr")
    base = metric.removesuffix("_stderr")
    if filter_name and filter_name != "none":
        base = f"{base}_{filter_name}"
    return base + ("_stderr" if stderr else "")


def tidy_results(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """lm-eval's per-task results, metrics only (keys `metric,filter`), numeric, plain names.

    Dropped: bookkeeping such as `sample_len` and the "N/A" lm-eval writes for a missing stderr.
    """
    return {
        task: {
            _metric_name(key): float(value)
            for key, value in metrics.items()
            if "," in key and isinstance(value, int | float) and not isinstance(value, bool)
        }
        for task, metrics in results.items()
    }


def evaluate_checkpoint(
    checkpoint_dir: Path,
    task_yaml_dirs: list[Path],
    tasks: list[str],
    batch_size: int = 8,
    limit: int | None = None,
    device: str = "cpu",
    max_length: int | None = None,
    include_defaults: bool = False,
) -> dict[str, dict[str, float]]:
    """`{task: {metric: value, metric_stderr: value}}` for one checkpoint, zero-shot.

    Stderrs come from lm-eval: closed form for means (acc), a `BOOTSTRAP_ITERS` bootstrap for
    perplexity; metrics without one (word_perplexity, bits_per_byte) have no `_stderr` key.
    `max_length` and `include_defaults` are explained at `load_lm` and `run_tasks`.
    """
    lm = load_lm(checkpoint_dir, batch_size=batch_size, device=device, max_length=max_length)
    output = run_tasks(lm, task_yaml_dirs, tasks, limit=limit, include_defaults=include_defaults)
    return tidy_results(output["results"])


def evaluation_rows(results: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """Tidy rows `{"metric": "task/metric", "value", "stderr"}` (stderr NaN when absent)."""
    return [
        {
            "metric": f"{task}/{metric}",
            "value": value,
            "stderr": metrics.get(f"{metric}_stderr", math.nan),
        }
        for task, metrics in sorted(results.items())
        for metric, value in sorted(metrics.items())
        if not metric.endswith("_stderr")
    ]


# ---------------------------------------------------------------------------- which checkpoints


def select_checkpoints(
    steps: list[int],
    every_k: int | None,
    last_n: int | None,
    include: list[str],
    best_step: int | None = None,
) -> list[int]:
    """The harvested steps to evaluate, ascending; the final step is always among them.

    `every_k`: every k-th harvested checkpoint counting from the first (step 0, the
    initialisation, gives the chance-level baseline); `last_n`: the last n; `include`: "final",
    "best" or explicit step numbers. "best" is the step of lowest held-out loss, which only the
    loss table knows: the caller reads it there and passes `best_step`.
    """
    harvested = sorted(set(steps))
    if not harvested:
        raise ValueError("no harvested checkpoints to select from")
    if (every_k is not None and every_k < 1) or (last_n is not None and last_n < 1):
        raise ValueError(f"every_k and last_n must be at least 1; got {every_k}, {last_n}")
    chosen = {harvested[-1]}
    chosen |= set(harvested[::every_k]) if every_k else set()
    chosen |= set(harvested[-last_n:]) if last_n else set()
    for entry in include:
        chosen.add(_included_step(entry, harvested, best_step))
    return sorted(chosen)


def _included_step(entry: str, harvested: list[int], best_step: int | None) -> int:
    if entry == "final":
        return harvested[-1]
    if entry == "best":
        if best_step is None:
            raise ValueError("'best' needs best_step, the lowest-loss step from the loss table")
        step = best_step
    elif entry.isdigit():
        step = int(entry)
    else:
        raise ValueError(f"include entry {entry!r} is not 'final', 'best' or a step number")
    if step not in harvested:
        raise ValueError(f"step {step} ({entry!r}) is not a harvested checkpoint")
    return step
