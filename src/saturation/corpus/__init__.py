"""A deterministic train/val/test text corpus built from configured sources.

`sources` turns each configured source into documents and fingerprints; `build` assigns each
document its split from its id and writes the split files.
"""

from saturation.corpus.build import assign_split, build_corpus, read_documents
from saturation.corpus.documents import SPLITS, CorpusError, Document
from saturation.corpus.sources import iter_documents, source_fingerprint, sources_from_fingerprints
from saturation.corpus.sources.builtin import BUILTIN_SOURCES

__all__ = [
    "BUILTIN_SOURCES",
    "SPLITS",
    "CorpusError",
    "Document",
    "assign_split",
    "build_corpus",
    "iter_documents",
    "read_documents",
    "source_fingerprint",
    "sources_from_fingerprints",
]
