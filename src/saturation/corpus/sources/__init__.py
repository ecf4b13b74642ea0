"""The one registry of corpus source kinds, and the functions that dispatch through it.

A source is a one-key mapping as written in the YAML config, ``{kind: spec}``. Each kind is a
`SourceKind` in its own module; adding one is that module plus its entry in `KINDS`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from saturation.corpus.documents import CorpusError, Document
from saturation.corpus.sources import builtin, hf, text
from saturation.corpus.sources.kind import SourceKind

KINDS: dict[str, SourceKind] = {kind.name: kind for kind in (builtin.KIND, text.KIND, hf.KIND)}


def _parse_source(source: Mapping[str, Any]) -> tuple[SourceKind, Any]:
    """(kind, spec) of a one-key source mapping, or a CorpusError naming what is allowed."""
    if isinstance(source, Mapping) and len(source) == 1:
        ((name, spec),) = source.items()
        if name in KINDS:
            return KINDS[name], spec
    allowed = ", ".join(kind.label for kind in KINDS.values())
    raise CorpusError(f"unknown corpus source {source!r}; allowed: one key of {allowed}")


def iter_documents(source: Mapping[str, Any]) -> Iterator[Document]:
    """Documents of one source, in a deterministic order.

    The configuration is checked (and text globs resolved) before this returns, so mistakes
    surface at once rather than at the first `next()`.
    """
    kind, spec = _parse_source(source)
    return kind.documents(spec)


def source_fingerprint(source: Mapping[str, Any]) -> dict[str, Any]:
    """Cheap identity of a source's content, for content-addressed recipe hashes.

    Runs when the workflow is parsed, so it reads package metadata and hashes local files but
    never imports `datasets` or torch.
    """
    kind, spec = _parse_source(source)
    return kind.fingerprint(spec)


def sources_from_fingerprints(fingerprints: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sources behind `source_fingerprint` results (a recipe stores only those), each spec in
    its canonical form: fingerprinting them again gives the same fingerprints."""
    return [_source_of(fingerprint) for fingerprint in fingerprints]


def _source_of(fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    """The one-key source of a fingerprint, given back by the one kind whose name it holds."""
    kinds = [kind for kind in KINDS.values() if kind.name in fingerprint]
    if len(kinds) != 1:
        raise CorpusError(f"not a corpus source fingerprint: {fingerprint!r}")
    (kind,) = kinds
    return {kind.name: kind.spec(fingerprint)}
