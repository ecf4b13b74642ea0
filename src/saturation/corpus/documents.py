"""What every corpus module shares: the document, the split names, the error type, and the
whitespace rule of the builtin cleaners."""

from __future__ import annotations

import re
from dataclasses import dataclass

SPLITS = ("train", "val", "test")


class CorpusError(ValueError):
    """A corpus configuration or its data cannot give a usable corpus (one-line message)."""


@dataclass(frozen=True)
class Document:
    """One unit of text; `id` is globally unique and decides the document's split."""

    id: str
    text: str
    source: str


_SPACES = re.compile(r"[ \t]+")


def collapse_spaces(text: str) -> str:
    """Runs of spaces and tabs as one space, ends stripped: the builtin cleaners' last step."""
    return _SPACES.sub(" ", text).strip()
