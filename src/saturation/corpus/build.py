"""Split, de-duplicate and write the corpus.

A document's split is a pure function of its id (a hash), never of its position, so adding or
reordering sources never moves an existing document to another split: results stay comparable
across corpus versions.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from saturation.corpus.documents import SPLITS, CorpusError, Document
from saturation.corpus.sources import iter_documents
from saturation.io import atomic_path


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise CorpusError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} must be >= 0 "
            "and sum to less than 1"
        )


def assign_split(doc_id: str, val_fraction: float, test_fraction: float) -> str:
    """Split of a document from the sha256 of its id alone.

    Position never matters, so adding documents never reshuffles existing ones.
    """
    _check_fractions(val_fraction, test_fraction)
    digest = hashlib.sha256(doc_id.encode("utf-8")).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    if point < val_fraction:
        return "val"
    if point < val_fraction + test_fraction:
        return "test"
    return "train"


def _text_digest(text: str) -> bytes:
    """A 128-bit content key: collisions are negligible and a set of them stays small."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _empty_stats() -> dict[str, int]:
    return {"documents": 0, "characters": 0}


def _count(stats: dict[str, int], document: Document) -> None:
    stats["documents"] += 1
    stats["characters"] += len(document.text)


def _source_label(source: Mapping[str, Any]) -> str:
    """A readable, unique name for a source: its canonical JSON."""
    return json.dumps(dict(source), sort_keys=True, ensure_ascii=False, default=str)


def _kept_documents(
    sources: Sequence[Mapping[str, Any]],
    min_chars: int,
    source_stats: dict[str, dict[str, int]],
) -> Iterator[Document]:
    """Documents of all sources in order; short ones and repeated texts dropped (and counted).

    A repeated id is an error naming both sources: it means the same document was configured
    twice (one file under two patterns) or a source's ids are not unique. A repeated text under
    a new id (the same exact text, in any source) is dropped instead, keeping the first copy:
    exact duplicates are common in real data (boilerplate, mirrored rows, a file copied into
    two folders), so rejecting them would force a separate cleaning step, while keeping both
    would put the same text in train and test whenever their ids hash to different splits.
    Which copy survives depends on source order; the text is in exactly one split either way.
    Memory grows by one 16-byte digest per kept document. Near duplicates are not caught here;
    the held-out evaluation tasks are decontaminated by n-gram overlap (`saturation.evaluate`).
    """
    first_source: dict[str, str] = {}
    texts: set[bytes] = set()
    for source in sources:
        label = _source_label(source)
        stats = source_stats.setdefault(label, {**_empty_stats(), "dropped": 0, "duplicates": 0})
        for document in iter_documents(source):
            if len(document.text) < min_chars:
                stats["dropped"] += 1
                continue
            if document.id in first_source:
                first = first_source[document.id]
                where = f"source {label}" if first == label else f"sources {first} and {label}"
                raise CorpusError(
                    f"duplicate document id {document.id!r} in {where}; give each document one "
                    "source and sources distinct ids (e.g. hf id_field)"
                )
            first_source[document.id] = label
            digest = _text_digest(document.text)
            if digest in texts:
                stats["duplicates"] += 1
                continue
            texts.add(digest)
            _count(stats, document)
            yield document


def _open_atomic(stack: contextlib.ExitStack, path: Path) -> TextIO:
    """A text handle on a temporary that replaces `path` when `stack` closes without error."""
    return stack.enter_context(stack.enter_context(atomic_path(path)).open("w", encoding="utf-8"))


def _write_line(handle: TextIO, document: Document) -> None:
    record = {"id": document.id, "source": document.source, "text": document.text}
    handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def build_corpus(
    sources: Sequence[Mapping[str, Any]],
    out_dir: Path,
    val_fraction: float,
    test_fraction: float,
    min_chars: int = 1,
    max_documents: int | None = None,
    decontaminate_words: int | None = None,
) -> dict[str, Any]:
    """Write train/val/test JSONL under `out_dir` and return per-split and per-source counts.

    Documents are streamed, so memory holds their ids and text digests, never their texts
    (duplicates are handled by `_kept_documents`, counted per source). The three files are
    written atomically and only if every split is non-empty, because every downstream stage
    needs all three. With `decontaminate_words`, val documents sharing a word n-gram that long
    with train are then dropped (`decontaminate_val`), counted under `decontamination`.
    """
    _check_fractions(val_fraction, test_fraction)
    out_dir = Path(out_dir)
    stats: dict[str, Any] = {split: _empty_stats() for split in SPLITS}
    stats["sources"] = {}
    with contextlib.ExitStack() as stack:
        handles = {split: _open_atomic(stack, out_dir / f"{split}.jsonl") for split in SPLITS}
        documents = _kept_documents(sources, min_chars, stats["sources"])
        for document in itertools.islice(documents, max_documents):
            split = assign_split(document.id, val_fraction, test_fraction)
            _write_line(handles[split], document)
            _count(stats[split], document)
        _check_nonempty(stats, val_fraction, test_fraction)
    if decontaminate_words is not None:
        stats["decontamination"] = decontaminate_val(out_dir, decontaminate_words)
        stats["val"] = {
            key: stats["val"][key] - stats["decontamination"][key] for key in stats["val"]
        }
        _check_nonempty(stats, val_fraction, test_fraction, after=" after decontamination")
    return stats


def _check_nonempty(
    stats: dict[str, Any], val_fraction: float, test_fraction: float, after: str = ""
) -> None:
    for split in SPLITS:
        if stats[split]["documents"] == 0:
            raise CorpusError(
                f"corpus split {split!r} is empty{after} (val_fraction={val_fraction}, "
                f"test_fraction={test_fraction}, {sum(stats[s]['documents'] for s in SPLITS)} "
                "documents); every split needs at least one document"
            )


def decontaminate_val(out_dir: Path, words: int) -> dict[str, Any]:
    """Drop from `val.jsonl` every document sharing a `words`-word n-gram with `train.jsonl`.

    Splits are drawn by id, so parallel passages leak: in the default corpus 20 of 85 val
    chapters (23 % of its characters) repeat 13 words or more of a train chapter (Psalms 108 and
    57, Jeremiah 52 and 2 Kings 25, the law's repeated formulae). The held-out loss is then in
    part a loss on text the model was trained on. Whole documents go, as benchmark items do in
    the generated tasks (`saturation.evaluate.decontamination`, GPT-3's rule): cutting passages
    out would score tokens on a context that never occurs. Test is left as it is: the
    generated tasks decontaminate their own items. Returns what was dropped."""
    from saturation.evaluate.decontamination import SharedNgrams  # numpy only

    out_dir = Path(out_dir)
    val = list(read_documents(out_dir / "val.jsonl"))
    train = (document.text for document in read_documents(out_dir / "train.jsonl"))
    shared = SharedNgrams((document.text for document in val), train, n=words)
    dropped = _empty_stats()
    with atomic_path(out_dir / "val.jsonl") as tmp, tmp.open("w", encoding="utf-8") as handle:
        for document in val:
            if shared.overlaps(document.text):
                _count(dropped, document)
            else:
                _write_line(handle, document)
    return {"words": words, **dropped}


def read_documents(path: Path) -> Iterator[Document]:
    """Documents of one split file written by `build_corpus`, in file order."""
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                yield Document(id=record["id"], text=record["text"], source=record["source"])
