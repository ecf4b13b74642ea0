"""Benchmark evaluation through lm-evaluation-harness, offline, on the tiny trained checkpoint."""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import string
from pathlib import Path

import numpy as np
import pytest
import yaml

from saturation.evaluate import CLOZE_TASK, HELDOUT_TASKS_VERSION, PERPLEXITY_TASK
from saturation.evaluate.decontamination import (
    DECONTAMINATION_WORDS,
    EXCLUSION_REASONS,
    SPECIAL_TOKEN_TEXT,
    TRAIN_NGRAM,
    SharedNgrams,
)
from saturation.evaluate.items import cloze_passages
from saturation.evaluate.lmeval import evaluate_checkpoint, load_lm, run_tasks, tidy_results
from saturation.evaluate.tasks import (
    DECONTAMINATION_FILE,
    SAMPLES_DIR,
    STANDARD_TASKS,
    build_offline_tasks,
    standard_task_override,
)
from saturation.tables import evaluation_rows
from saturation.tokenizer import EOS_TOKEN

# The split lm-eval scores for each standard task (piqa's test split has no labels).
SCORED_SPLIT = {"piqa": "validation"}
# The only fields in which an override may differ from the built-in task (besides metadata).
DATASET_KEYS = (
    "dataset_path", "dataset_name", "dataset_kwargs",
    "training_split", "validation_split", "test_split",
)  # fmt: skip
EXPECTED_METRICS = {
    "lambada_openai": {"acc", "perplexity"},
    "wikitext": {"word_perplexity"},
    "sciq": {"acc"},
    "arc_easy": {"acc"},
    "piqa": {"acc"},
    "storycloze_2016": {"acc"},
}


@pytest.fixture(autouse=True)
def offline(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No hub access, and `datasets`' cache of the JSON builds kept out of the home folder."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(
        datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.getbasetemp() / "hf-datasets"
    )


@pytest.fixture(scope="session")
def test_split(tiny_data: dict[str, Path]) -> Path:
    return tiny_data["tokenizer"].parent / "corpus" / "test.jsonl"


@pytest.fixture(scope="session")
def heldout_tasks(tmp_path_factory: pytest.TempPathFactory, test_split: Path) -> Path:
    out = tmp_path_factory.mktemp("heldout") / "tasks"
    train = test_split.with_name("train.jsonl")
    build_offline_tasks(test_split, out, n_cloze=12, n_docs=3, train_jsonl=train)
    return out


@pytest.fixture(scope="session")
def checkpoint(tiny_run: Path) -> Path:
    return tiny_run / "checkpoints" / "step12"


# ---------------------------------------------------------------------------- held-out items


def test_cloze_passages_are_disjoint_verbatim_slices() -> None:
    text = " ".join(f"w{i} verse ends here." for i in range(40))
    passages = cloze_passages(text, context_words=10)
    assert len(passages) > 5
    position = 0
    for context, target in passages:
        assert target == "here" and len(context.split()) == 10
        found = text.index(f"{context} {target}", position)  # verbatim, in reading order
        position = found + len(context)  # the next passage starts after this one


def test_items_are_deterministic_and_independent_of_document_order(
    tmp_path: Path, test_split: Path
) -> None:
    lines = test_split.read_text().splitlines(keepends=True)
    train = test_split.with_name("train.jsonl")
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_text("".join(reversed(lines)))
    outputs = {}
    for name, split, seed in [("a", test_split, 0), ("b", shuffled, 0), ("c", test_split, 1)]:
        paths = build_offline_tasks(
            split, tmp_path / name, n_cloze=10, n_docs=3, train_jsonl=train, seed=seed
        )
        assert set(paths) == {CLOZE_TASK, PERPLEXITY_TASK}
        outputs[name] = {t: p.with_suffix(".jsonl").read_text() for t, p in paths.items()}
    assert outputs["a"] == outputs["b"]
    assert outputs["a"] != outputs["c"]

    texts = {json.loads(line)["id"]: json.loads(line)["text"] for line in lines}
    items = [json.loads(line) for line in outputs["a"][CLOZE_TASK].splitlines()]
    assert len(items) == 10 and len({item["doc_id"] for item in items}) > 1
    for item in items:
        assert f"{item['context']} {item['target']}" in texts[item["doc_id"]]


def test_offline_task_folder_is_never_overwritten(tmp_path: Path, test_split: Path) -> None:
    train = test_split.with_name("train.jsonl")
    build_offline_tasks(test_split, tmp_path / "tasks", 2, 1, train_jsonl=train)
    with pytest.raises(FileExistsError):
        build_offline_tasks(test_split, tmp_path / "tasks", 2, 1, train_jsonl=train)


def _prose(rng: random.Random, sentences: int) -> str:
    """Sentences of seven made-up words, each ending in a full stop (a cloze target)."""
    words = ("".join(rng.choices(string.ascii_lowercase, k=6)) for _ in range(7 * sentences))
    return " ".join(" ".join(itertools.islice(words, 7)) + "." for _ in range(sentences))


def _write_split(path: Path, texts: dict[str, str]) -> Path:
    records = ({"id": doc_id, "source": "test", "text": text} for doc_id, text in texts.items())
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def _ngrams(text: str, n: int = DECONTAMINATION_WORDS) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def test_shared_ngrams_match_13_words_whatever_the_case_and_punctuation() -> None:
    text = _prose(random.Random(1), 6)
    words = text.split()
    reprint = " ".join(words[10:23]).upper().replace(".", ";\n")
    held = [f"zzz {reprint} yyy", " ".join(words[10:22]), " ".join([*words[10:22], "zzz"])]
    shared = SharedNgrams(held, [text])
    assert shared.overlaps(reprint)
    assert shared.overlaps(held[0])
    assert not shared.overlaps(held[1])  # 12 words are not enough
    assert not shared.overlaps(held[2])
    assert not SharedNgrams(held, []).overlaps(held[0])
    assert not SharedNgrams([], [text]).overlaps(reprint)  # kept: only what held-out has


def test_shared_ngrams_keep_what_held_out_text_shares_and_nothing_else() -> None:
    """Memory follows the held-out side: of a long training text, only the n-grams also in the
    held-out texts are kept, and a train word the held-out side lacks is never hashed."""
    rng = random.Random(2)
    train = _prose(rng, 200)
    copied = " ".join(train.split()[300:320])  # 20 words: 8 shared 13-grams
    held = f"{_prose(rng, 3)} {copied}"
    shared = SharedNgrams([held], [train, _prose(rng, 50)])
    assert len(np.unique(shared._shared)) == shared._shared.size == 8
    assert set(shared._word_keys) == set(SharedNgrams._WORD.findall(held.lower()))


def test_heldout_tasks_drop_what_train_contains(tmp_path: Path) -> None:
    rng = random.Random(0)
    train_texts = {f"train{i}": _prose(rng, 30) for i in range(3)}
    copied = " ".join(train_texts["train1"].split()[40:80]).upper()  # a reprint, shouting
    near = " ".join(train_texts["train2"].split()[7:19])  # 12 words: not a leak
    test_texts = {
        "clean": _prose(rng, 20),
        "copy": f"{_prose(rng, 15)} {copied} {_prose(rng, 15)}",
        "near": f"{_prose(rng, 10)} {near} {_prose(rng, 10)}",
        "special": _prose(rng, 20),
    }
    # lm-eval would encode the literal as the EOS id; the token files encode it as text
    words = test_texts["special"].split(" ")
    test_texts["special"] = " ".join([*words[:10], EOS_TOKEN, *words[11:]])  # in passage 0
    train = _write_split(tmp_path / "train.jsonl", train_texts)
    test = _write_split(tmp_path / "test.jsonl", test_texts)
    paths = build_offline_tasks(
        test, tmp_path / "tasks", n_cloze=100, n_docs=10, train_jsonl=train, context_words=20
    )
    records = {
        task: [json.loads(line) for line in path.with_suffix(".jsonl").read_text().splitlines()]
        for task, path in paths.items()
    }
    assert sorted(doc["id"] for doc in records[PERPLEXITY_TASK]) == ["clean", "near"]
    train_ngrams = set().union(*map(_ngrams, train_texts.values()))
    items = records[CLOZE_TASK]
    assert all(not _ngrams(f"{i['context']} {i['target']}") & train_ngrams for i in items)
    assert all(EOS_TOKEN not in item["context"] for item in items)
    assert {item["doc_id"] for item in items} == set(test_texts)  # per passage

    every = [
        f"{doc_id}#{k}"
        for doc_id, text in test_texts.items()
        for k in range(len(cloze_passages(text, 20)))
    ]
    record = json.loads((tmp_path / "tasks" / DECONTAMINATION_FILE).read_text())
    dropped = record["tasks"][CLOZE_TASK]["dropped"]
    assert set(dropped) == set(record["reasons"]) == set(EXCLUSION_REASONS)
    assert dropped[TRAIN_NGRAM]
    assert all(item_id.startswith("copy#") for item_id in dropped[TRAIN_NGRAM])
    passages = cloze_passages(test_texts["special"], 20)
    holding = [f"special#{k}" for k, (context, _) in enumerate(passages) if EOS_TOKEN in context]
    assert dropped[SPECIAL_TOKEN_TEXT] == holding and holding
    left_out = dropped[TRAIN_NGRAM] + dropped[SPECIAL_TOKEN_TEXT]
    assert sorted(item["id"] for item in items) == sorted(set(every) - set(left_out))
    assert record["tasks"][PERPLEXITY_TASK] == {
        "candidates": 4,
        "dropped": {TRAIN_NGRAM: ["copy"], SPECIAL_TOKEN_TEXT: ["special"]},
    }
    metadata = yaml.safe_load(paths[CLOZE_TASK].read_text())["metadata"]
    assert metadata["version"] == HELDOUT_TASKS_VERSION
    assert metadata["candidates"] == len(every)
    assert metadata["dropped_train_ngram"] == len(dropped[TRAIN_NGRAM])
    assert metadata["dropped_special_token_text"] == len(holding)


# ---------------------------------------------------------------------------- lm-eval vs a manual pass


def _manual_loglikelihood(model, ids: list[int], n_scored: int) -> tuple[float, bool]:
    """Sum of log-softmax of the last `n_scored` ids, each given everything before it, and
    whether each of them is the argmax (lm-eval's `is_greedy`)."""
    import torch

    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids[:-1]])).logits[0, -n_scored:].double()
    targets = torch.tensor(ids[-n_scored:])
    logprobs = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None])
    return logprobs.sum().item(), bool((logits.argmax(-1) == targets).all())


def _manual_rolling(model, tokens: list[int], prefix: int, max_length: int) -> float:
    """HFLM's rolling loglikelihood: disjoint windows of `max_length`, a prefix token first."""
    sequence = [prefix, *tokens]  # sequence[i + 1] == tokens[i]
    total = 0.0
    for start in range(0, len(tokens), max_length):
        end = min(start + max_length, len(tokens))
        window = sequence[max(0, end - max_length) : end + 1]
        total += _manual_loglikelihood(model, window, end - start)[0]
    return total


def test_lm_eval_loglikelihoods_match_a_manual_forward_pass(
    heldout_tasks: Path, checkpoint: Path
) -> None:
    lm = load_lm(checkpoint, batch_size=4)
    output = run_tasks(
        lm,
        [heldout_tasks],
        [CLOZE_TASK, PERPLEXITY_TASK],
        limit=3,
        log_samples=True,
    )
    model, tokenizer, max_length = lm.model, lm.tokenizer, lm.max_length
    assert [len(output["samples"][task]) for task in output["samples"]] == [3, 3]
    assert max_length == model.config.max_position_embeddings == 16

    for sample in output["samples"][CLOZE_TASK]:
        ((context, continuation),) = sample["arguments"]
        assert continuation == " " + sample["doc"]["target"]
        # No BOS is prepended (GPT-NeoX tokenizers add none); context and continuation encode
        # separately to the same ids as lm-eval's split of the whole string.
        context_ids = tokenizer.encode(context)
        continuation_ids = tokenizer.encode(continuation)
        assert context_ids == tokenizer.encode(context, add_special_tokens=False)
        assert tokenizer.encode(context + continuation) == context_ids + continuation_ids
        ids = (context_ids + continuation_ids)[-(max_length + 1) :]  # left-truncated as HFLM
        ((loglikelihood, is_greedy),) = sample["resps"][0]
        expected, greedy = _manual_loglikelihood(model, ids, len(continuation_ids))
        assert loglikelihood == pytest.approx(expected, abs=1e-4)
        assert is_greedy == greedy

    for sample in output["samples"][PERPLEXITY_TASK]:
        ((text,),) = sample["arguments"]
        tokens = tokenizer.encode(text)
        assert len(tokens) > 2 * max_length  # several windows
        expected = _manual_rolling(model, tokens, tokenizer.eos_token_id, max_length)
        assert sample["resps"][0][0] == pytest.approx(expected, abs=1e-4)


def test_results_do_not_depend_on_batch_size(heldout_tasks: Path, checkpoint: Path) -> None:
    tasks = [CLOZE_TASK, PERPLEXITY_TASK]
    by_batch = {
        size: evaluate_checkpoint(checkpoint, [heldout_tasks], tasks, batch_size=size)
        for size in (1, 8)
    }
    assert set(by_batch[1][CLOZE_TASK]) == {
        "acc", "acc_stderr", "perplexity", "perplexity_stderr"
    }  # fmt: skip
    assert set(by_batch[1][PERPLEXITY_TASK]) == {
        "word_perplexity", "byte_perplexity", "bits_per_byte"
    }  # fmt: skip
    for task in tasks:
        for metric, value in by_batch[1][task].items():
            assert by_batch[8][task][metric] == pytest.approx(value, rel=1e-4, abs=1e-4), metric


# ---------------------------------------------------------------------------- standard tasks


def _write_overrides(out_dir: Path) -> list[str]:
    for task in EXPECTED_METRICS:
        split = SCORED_SPLIT.get(task, "test")
        standard_task_override(task, {split: str(SAMPLES_DIR / f"{task}.jsonl")}, out_dir)
    return list(EXPECTED_METRICS)


def test_standard_overrides_evaluate_on_the_sample_items(tmp_path: Path, checkpoint: Path) -> None:
    tasks = _write_overrides(tmp_path)
    # 64 tokens: some sample answers are longer than the tiny model's 16-token context.
    results = evaluate_checkpoint(checkpoint, [tmp_path], tasks, limit=3, max_length=64)
    assert set(results) == set(tasks)
    for task, metrics in EXPECTED_METRICS.items():
        assert metrics <= set(results[task]), task
        assert all(math.isfinite(results[task][metric]) for metric in metrics)
    rows = evaluation_rows(results)
    assert {"metric": "sciq/acc", "value": results["sciq"]["acc"],
            "stderr": results["sciq"]["acc_stderr"]} in rows  # fmt: skip


def test_parquet_data_give_the_same_results_as_jsonl(tmp_path: Path, checkpoint: Path) -> None:
    import pandas as pd

    jsonl = SAMPLES_DIR / "piqa.jsonl"
    parquet = tmp_path / "piqa.parquet"
    pd.read_json(jsonl, lines=True).to_parquet(parquet)
    results = []
    for name, data in [("jsonl", jsonl), ("parquet", parquet)]:
        path = standard_task_override("piqa", {"validation": str(data)}, tmp_path / name)
        assert yaml.safe_load(path.read_text())["dataset_path"] == name.removesuffix("l")
        results.append(evaluate_checkpoint(checkpoint, [tmp_path / name], ["piqa"], max_length=64))
    assert results[0] == results[1]


def _comparable(config: dict) -> dict:
    """A task config without its dataset fields, functions as their dotted names."""
    return {
        key: f"{value.__module__}.{value.__name__}" if callable(value) else value
        for key, value in config.items()
        if key not in (*DATASET_KEYS, "metadata")
    } | {"version": config["metadata"]["version"]}


def test_standard_overrides_copy_the_builtin_task(tmp_path: Path) -> None:
    import lm_eval.tasks
    from lm_eval.tasks._yaml_loader import load_yaml  # what TaskManager reads YAML with

    _write_overrides(tmp_path)
    builtin_root = Path(lm_eval.tasks.__file__).parent
    for task, relative in STANDARD_TASKS.items():
        ours = load_yaml(tmp_path / f"{task}.yaml")
        assert ours["dataset_path"] == "json" and ours["dataset_name"] is None
        assert _comparable(ours) == _comparable(load_yaml(builtin_root / relative)), task


def test_standard_override_checks_its_splits(tmp_path: Path) -> None:
    sample = str(SAMPLES_DIR / "piqa.jsonl")
    with pytest.raises(ValueError, match="'validation'"):
        standard_task_override("piqa", {"test": sample}, tmp_path)
    with pytest.raises(ValueError, match="JSON/JSONL or all Parquet"):
        standard_task_override("piqa", {"validation": "piqa.csv"}, tmp_path)
    with pytest.raises(ValueError, match="unknown standard task"):
        standard_task_override("hellaswag", {"test": sample}, tmp_path)
    path = standard_task_override(
        "storycloze", {"test": str(SAMPLES_DIR / "storycloze_2016.jsonl")}, tmp_path
    )
    assert path == tmp_path / "storycloze_2016.yaml"


def test_unknown_task_names_fail_before_evaluation(heldout_tasks: Path, checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="sciq"):
        evaluate_checkpoint(checkpoint, [heldout_tasks], ["sat_cloze", "sciq"])


# ---------------------------------------------------------------------------- results


def test_tidy_results_and_rows() -> None:
    raw = {
        "t": {
            "alias": "t", "name": "t", "sample_len": 4, "acc,none": 0.5,
            "acc_stderr,none": 0.25, "word_perplexity,none": 12.0,
            "word_perplexity_stderr,none": "N/A", "exact_match,strict-match": 1.0,
        }
    }  # fmt: skip
    tidy = tidy_results(raw)
    assert tidy == {
        "t": {
            "acc": 0.5,
            "acc_stderr": 0.25,
            "word_perplexity": 12.0,
            "exact_match_strict-match": 1.0,
        }
    }
    rows = evaluation_rows(tidy)
    assert [row["metric"] for row in rows] == [
        "t/acc", "t/exact_match_strict-match", "t/word_perplexity"
    ]  # fmt: skip
    assert rows[0]["stderr"] == 0.25 and math.isnan(rows[2]["stderr"])


def test_a_run_evaluated_in_one_process_equals_each_checkpoint_alone(
    heldout_tasks: Path, tiny_run: Path, tmp_path: Path
) -> None:
    """lm-eval's task objects built once and run on several models give each model the
    results a fresh evaluation gives it; a second job reuses every record, and a task added
    later is the only one evaluated."""
    from saturation.checkpoints import verify_checkpoint, write_manifest
    from saturation.evaluate.lmeval import evaluate_run

    results = tmp_path / "results"
    manifest = results / "harvest" / "h" / "manifest.csv"
    manifest.parent.mkdir(parents=True)
    folders = {s: tiny_run / "checkpoints" / f"step{s}" for s in (0, 12)}
    write_manifest(manifest, [verify_checkpoint(f) for f in folders.values()])
    recipe = {"tasks": {CLOZE_TASK: "e"}, "limit": None, "batch_size": 8}
    log = tmp_path / "events.jsonl"
    dirs = {CLOZE_TASK: heldout_tasks, PERPLEXITY_TASK: heldout_tasks}
    records = evaluate_run(manifest, [0, 12], recipe, dirs, results, log)
    for step, folder in folders.items():
        alone = evaluate_checkpoint(folder, [heldout_tasks], [CLOZE_TASK])
        assert json.loads(records[step][CLOZE_TASK].read_text())["results"] == alone
    both = recipe | {"tasks": {CLOZE_TASK: "e", PERPLEXITY_TASK: "e"}}
    records = evaluate_run(manifest, [0, 12], both, dirs, results, log)
    lines = [json.loads(line) for line in log.read_text().splitlines()[2:]]
    assert [(e["measured"], e["reused"]) for e in lines] == [([PERPLEXITY_TASK], [CLOZE_TASK])] * 2
    alone = evaluate_checkpoint(folders[12], [heldout_tasks], [PERPLEXITY_TASK])
    assert json.loads(records[12][PERPLEXITY_TASK].read_text())["results"] == alone


def test_requests_are_built_once_and_answered_afresh_for_each_model(
    heldout_tasks: Path, tiny_run: Path
) -> None:
    """A TaskRunner builds each task's requests on its first evaluation only; every later
    model gets copies without answers, so evaluating A, B, then A again gives A's results
    twice, and B its own, as a fresh evaluation does."""
    from saturation.evaluate.lmeval import RequestsBuiltOnce, TaskRunner

    runner = TaskRunner([heldout_tasks], [CLOZE_TASK, PERPLEXITY_TASK])
    builders = [task for loaded in runner.loaded.values() for task in loaded["tasks"].values()]
    calls = []
    for task in builders:
        wrapper = task.build_all_requests
        assert isinstance(wrapper, RequestsBuiltOnce)
        build = wrapper.build
        wrapper.build = lambda build=build, **arguments: calls.append(1) or build(**arguments)
    checkpoints = [tiny_run / "checkpoints" / f"step{step}" for step in (12, 0, 12)]
    results = [
        tidy_results(runner.run(load_lm(folder, batch_size=4), limit=5)["results"])
        for folder in checkpoints
    ]
    assert len(calls) == len(builders) == 2
    assert results[0] == results[2] != results[1]
    for folder, result in zip(checkpoints[:2], results, strict=False):
        alone = evaluate_checkpoint(folder, [heldout_tasks], [CLOZE_TASK, PERPLEXITY_TASK], 4, 5)
        assert result == alone
    # another limit is another set of requests
    runner.run(load_lm(checkpoints[0], batch_size=4), limit=3)
    assert len(calls) == 4


@pytest.mark.parametrize(
    "head", [{"kind": "low_rank", "rank": 4}, {"kind": "mixture_of_softmaxes", "components": 2}]
)
def test_lm_eval_scores_a_checkpoint_of_another_head(
    head: dict, heldout_tasks: Path, tiny_data: dict, tmp_path: Path
) -> None:
    """A `saturation_neox` checkpoint (issue 16's heads) goes through the same lm-eval path:
    loaded by AutoModelForCausalLM, its loglikelihoods those of its own forward (a mixture's
    logits are its log-probabilities)."""
    from tests.conftest import tiny_recipe, train_tiny

    recipe = tiny_recipe()
    recipe["model"]["head"] = head
    train_tiny(tmp_path, tiny_data, recipe)
    lm = load_lm(tmp_path / "checkpoints" / "step12", batch_size=4)
    assert type(lm.model).__name__ == "SaturationNeoXForCausalLM"
    output = run_tasks(lm, [heldout_tasks], [CLOZE_TASK], limit=3, log_samples=True)
    for sample in output["samples"][CLOZE_TASK]:
        ((context, continuation),) = sample["arguments"]
        context_ids, continuation_ids = (
            lm.tokenizer.encode(context),
            lm.tokenizer.encode(continuation),
        )
        ids = (context_ids + continuation_ids)[-(lm.max_length + 1) :]
        expected, greedy = _manual_loglikelihood(lm.model, ids, len(continuation_ids))
        assert sample["resps"][0][0] == (pytest.approx(expected, abs=1e-4), greedy)
