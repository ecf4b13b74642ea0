"""Runs trained on a synthetic language (saturation.synthetic): a Markov process whose true
next-token logits have a known rank r*, so a width sweep around r* shows the softmax bottleneck
against an exact answer.

Per configured language: a `language` stage generates its word-level tokenizer and fresh token
streams (train, val, test: independent chains, so the train split never repeats unless asked to),
an `oracle` stage computes the best loss any rank-d head can reach on it; then every width of
`synthetic.widths` × `train.seeds` is pretrained on its tokens like a run on text, named
`{language}-w{width}-s{seed}`. Such runs are analysed (loss, spectra, anisotropy, train sample)
but not evaluated: the benchmark tasks are text of the corpus.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from saturation.config import resolve_train, synthetic_config
from saturation.plan.pretrained import PretrainedRun, trained_run
from saturation.plan.runs import SharedStages
from saturation.plan.stages import Stage

# bumped when what the language stage generates from one recipe changes (the sampler, the
# tokenizer's ids): part of its recipe, so old token files are never reused
LANGUAGE_VERSION = 1
ORACLE_VERSION = 1
SPEC_FIELDS = ("vocab", "rank", "order", "kind", "profile", "zipf", "entropy", "seed")


@dataclass(frozen=True)
class SyntheticRun(PretrainedRun):
    """A width × seed pretrained on a synthetic language's stream."""

    language: Stage
    oracle: Stage

    def own_stages(self) -> list[Stage]:
        return [self.language, self.oracle, self.pretrain]


def train_tokens(config: Mapping[str, Any]) -> int:
    """The train stream's length when `synthetic.train_tokens` is null: every training sequence
    a fresh one (steps × batch × seq_len targets, one more token to start; the most any width
    reads), so no run repeats data and a late rise can only be saturation, never overfitting."""
    train = config["train"]
    runs = [resolve_train(entry, train) for entry in [{}, *config["synthetic"]["widths"]]]
    return max(run["steps"] * run["batch_size"] for run in runs) * train["seq_len"] + 1


def oracle_dims(config: Mapping[str, Any], rank: int, vocab: int) -> list[int]:
    """The widths the oracle is computed at: `synthetic.oracle_dims`, or the trained widths and
    r* − 2 … r* + 2 (the kink), each at most V."""
    synthetic = config["synthetic"]
    dims = set(synthetic["oracle_dims"]) or {
        *(entry["width"] for entry in synthetic["widths"]),
        *range(max(rank - 2, 1), rank + 3),
    }
    return sorted(d for d in dims if d <= vocab)


def language_recipe(config: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe of a language's stage; `config` is the synthetic runs' (`synthetic_config`)."""
    synthetic = config["synthetic"]
    train = synthetic["train_tokens"]
    return {
        "language": {field: entry[field] for field in SPEC_FIELDS if field in entry},
        "document_length": synthetic["document_length"],
        "tokens": {
            "train": train_tokens(config) if train is None else train,
            "val": synthetic["val_tokens"],
            "test": synthetic["test_tokens"],
        },
        "version": LANGUAGE_VERSION,
    }


def synthetic_runs(shared: SharedStages) -> Iterator[SyntheticRun]:
    """Every synthetic language × `synthetic.widths` × `train.seeds`, trained with
    `synthetic.train` and `synthetic.model` on top of `train` and `model`."""
    config = synthetic_config(shared.config)
    shared = replace(shared, config=config)
    for entry in config["synthetic"]["languages"]:
        name = entry["name"]
        language = shared.stage("language", language_recipe(config, entry), name)
        dims = oracle_dims(config, entry["rank"], entry["vocab"])
        oracle = shared.stage(
            "oracle", {"language": language.id, "dims": dims, "version": ORACLE_VERSION}, name
        )
        for width_entry in config["synthetic"]["widths"]:
            for seed in config["train"]["seeds"]:
                yield trained_run(
                    shared, width_entry, seed, language, language, f"{name}-",
                    run_class=SyntheticRun, attributes={"language": name},
                    language=language, oracle=oracle,
                )  # fmt: skip
