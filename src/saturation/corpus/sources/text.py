"""Local UTF-8 files, ``{"text": "pattern" | ["pattern", ...]}``: one document per file.

Glob patterns (with recursive ``**``) are resolved against the working directory; a file
matched twice in one source is read once, and its BOM and surrounding whitespace are dropped.
A document's id is ``text/<path>``, with one spelling per file whatever the pattern (see
`_canonical_path`), so its split does not depend on how the config spells it.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from saturation.corpus.documents import CorpusError, Document
from saturation.corpus.sources.kind import SourceKind, hashed_files


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
    text by `saturation.corpus.build`.
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


def _load(patterns: list[str]) -> Iterator[Document]:
    """The files' documents; patterns are resolved now, so a typo fails before iteration."""
    files = _text_files(patterns)
    return (Document(id=f"text/{path}", text=_read_text(path), source="text") for path in files)


def _content(patterns: list[str]) -> dict[str, Any]:
    return {"files": hashed_files(_text_files(patterns))}


KIND = SourceKind(name="text", label="text", check=_patterns, load=_load, content=_content)
