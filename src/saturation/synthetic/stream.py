"""A synthetic language's files, laid out as the text pipeline's (`language` stage): a symbol
tokenizer folder, one token file per split (independent chains, EOS after each), and
`language.json` with what the oracles and the figures compare against."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from saturation.io import write_json_atomic
from saturation.synthetic.language import Language, LanguageSpec, build_language, sample_documents

# each split's stream: the chains of different splits never share a draw, so val and test are
# fresh text for every run, like the train stream itself
SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}


def language_of(recipe: Mapping[str, Any]) -> Language:
    """The language of a `language` stage's recipe (deterministic: rebuilt, never stored)."""
    return build_language(LanguageSpec(**recipe["language"]).validate())


def documents_for(tokens: int, length: int) -> int:
    """Whole documents of `length` symbols + EOS holding at least `tokens` tokens."""
    return max(1, math.ceil(tokens / (length + 1)))


def boundary_cost(language: Language, length: int) -> float:
    """An upper bound on what document boundaries add to the best per-token loss of a model
    that cannot see where a document starts (nats above H*): per document of L symbols + EOS,
    the first symbol is drawn from π (at most H(π) − H* more than a symbol in context), and
    the EOS, at an unknown position, costs at most ln(L + 1) plus the mass reserved for it at
    every other position, at most L · ln(1 + 1/L) ≤ 1. Averaged over the L + 1 tokens."""
    pi = language.stationary[language.stationary > 0]
    first = float(-(pi * np.log(pi)).sum()) - language.entropy
    return (max(first, 0.0) + math.log(length + 1) + 1.0) / (length + 1)


def write_language(recipe: Mapping[str, Any], out_dir: Path) -> dict[str, Any]:
    """Every file of a `language` stage under `out_dir`: `tokenizer/`, `{split}.bin` and
    `{split}.json`, `language.json` (returned)."""
    from saturation.tokenizer import EOS_ID, SYMBOL_OFFSET, save_symbol_tokenizer
    from saturation.tokens import write_documents

    out_dir = Path(out_dir)
    language = language_of(recipe)
    tokenizer = out_dir / "tokenizer"
    save_symbol_tokenizer(language.spec.vocab, tokenizer)
    length = recipe["document_length"]
    splits = {}
    for split, tokens in recipe["tokens"].items():
        documents = documents_for(tokens, length)
        symbols = sample_documents(language, documents, length, seed=SPLIT_SEEDS[split])
        ids = symbols.astype(np.int64) + SYMBOL_OFFSET
        header = write_documents(
            ids, EOS_ID, tokenizer, out_dir / f"{split}.bin", out_dir / f"{split}.json"
        )
        splits[split] = {"documents": documents, "tokens": header.tokens}
    info = {
        "spec": language.spec.to_dict(),
        "scale": language.scale,
        "entropy": language.entropy,  # H*, nats per symbol under the stationary process
        "document_length": length,
        "boundary_cost": boundary_cost(language, length),
        "symbol_offset": SYMBOL_OFFSET,
        "splits": splits,
    }
    write_json_atomic(out_dir / "language.json", info)
    return info
