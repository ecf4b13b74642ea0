"""The items of the generated tasks, drawn from a held-out corpus split: last-word cloze passages
(`sat_cloze`) and whole documents (`sat_wordperplexity`).

Every choice is a seeded hash of document ids and passage indices, never of positions in the
file, so the items depend on the split's contents only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

from saturation.corpus import read_documents as read_corpus_documents

# Words of context before each cloze target (LAMBADA passages have ~75): 50 words are ~80 tokens
# of the default 4096-token BPE (median; max 131 on the default test split), so passages fit the
# default models' 128-token context.
CLOZE_CONTEXT_WORDS = 50

_WORD = re.compile(r"\S+")
# A cloze target: a word of letters (inner apostrophes allowed) that ends a sentence or clause;
# the punctuation after it is dropped, as in LAMBADA.
_TARGET = re.compile(r"([A-Za-z]+(?:'[A-Za-z]+)*)[.!?;:]+")


def _rank(seed: int, key: str) -> str:
    """A seeded pseudo-random sort key that depends on an id only, never on a position."""
    return hashlib.sha256(f"{seed}/{key}".encode()).hexdigest()


def read_documents(split_jsonl: Path) -> list[dict[str, str]]:
    """The `{"id", "source", "text"}` records of a corpus split; ids must be unique."""
    documents = [asdict(doc) for doc in read_corpus_documents(Path(split_jsonl))]
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
