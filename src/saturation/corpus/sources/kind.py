"""What a source kind is: the operations the registry (`saturation.corpus.sources`) calls."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from saturation.corpus.documents import Document
from saturation.io import sha256_file


@dataclass(frozen=True)
class SourceKind:
    """One kind of source, written ``{name: spec}`` in the config.

    A fingerprint stores the checked spec under the kind's name, beside what identifies its
    content, so the spec comes back from the fingerprint alone (a recipe holds only those).
    """

    name: str
    label: str  # as listed among the allowed sources in errors
    check: Callable[[Any], Any]  # spec as configured -> canonical spec, or a CorpusError
    load: Callable[[Any], Iterator[Document]]  # canonical spec -> documents
    content: Callable[[Any], dict[str, Any]]  # canonical spec -> cheap identity of its content

    def documents(self, spec: Any) -> Iterator[Document]:
        """Documents of a configured spec; a bad spec fails here, before iteration."""
        return self.load(self.check(spec))

    def fingerprint(self, spec: Any) -> dict[str, Any]:
        """The canonical spec under the kind's name, then the identity of its content."""
        canonical = self.check(spec)
        return {self.name: canonical, **self.content(canonical)}

    def spec(self, fingerprint: Mapping[str, Any]) -> Any:
        """The canonical spec back from a `fingerprint` of this kind."""
        return fingerprint[self.name]


def hashed_files(files: Iterable[str]) -> list[list[str]]:
    """``[path, sha256]`` per distinct file, sorted: the content part of a local fingerprint."""
    return [[path, sha256_file(path)] for path in sorted(set(files))]
