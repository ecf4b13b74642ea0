"""A Hugging Face `datasets` dataset, ``{"hf": {"path": ..., ...}}``: one document per row.

`path` is a hub name, a builder such as "json", or a local folder (a `save_to_disk` folder is
read with `load_from_disk`). A row's id is ``hf/<path>[/<name>]/<split>/<row index>``, or the
value of `id_field` verbatim when set, so the split follows the row's own identity wherever the
dataset is loaded from.
"""

from __future__ import annotations

import glob
import itertools
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from saturation.corpus.documents import CorpusError, Document
from saturation.corpus.sources.kind import SourceKind, hashed_files

_DEFAULTS: dict[str, Any] = {
    "name": None,
    "split": "train",
    "data_files": None,
    "revision": None,
    "text_field": "text",
    "id_field": None,
    "streaming": False,
    "max_documents": None,
}


def _options(spec: Any) -> dict[str, Any]:
    """The hf options with defaults filled in, so equal configurations compare equal."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("path"), str):
        raise CorpusError(f"hf source needs a mapping with a 'path' string, got {spec!r}")
    unknown = sorted(set(spec) - set(_DEFAULTS) - {"path"})
    if unknown:
        allowed = ", ".join(["path", *_DEFAULTS])
        raise CorpusError(f"hf source has unknown option(s) {unknown}; allowed: {allowed}")
    return {"path": spec["path"], **_DEFAULTS, **spec}


def _is_saved_dataset(path: str) -> bool:
    """Whether `path` is a folder written by `Dataset(Dict).save_to_disk`."""
    folder = Path(path)
    saved_dataset = (folder / "state.json").is_file() and (folder / "dataset_info.json").is_file()
    return saved_dataset or (folder / "dataset_dict.json").is_file()


def _open(options: dict[str, Any]) -> Iterable[Mapping[str, Any]]:
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


def _row_text(row: Mapping[str, Any], field: str, options: dict[str, Any]) -> str:
    value = row.get(field)
    if not isinstance(value, str):
        raise CorpusError(
            f"hf source {options['path']!r}: field {field!r} is not a string in a row with "
            f"fields {sorted(row)}"
        )
    return value.strip()


def _row_id(row: Mapping[str, Any], index: int, options: dict[str, Any]) -> str:
    """The row's own id if `id_field` is set, else its position within path/name/split."""
    if options["id_field"] is not None:
        if row.get(options["id_field"]) is None:
            raise CorpusError(
                f"hf source {options['path']!r}: rows lack id field {options['id_field']!r}"
            )
        return str(row[options["id_field"]])
    parts = [options["path"], options["name"], options["split"], str(index)]
    return "hf/" + "/".join(part for part in parts if part is not None)


def _load(options: dict[str, Any]) -> Iterator[Document]:
    """The rows' documents; the dataset is opened only when iteration starts."""
    rows = itertools.islice(_open(options), options["max_documents"])
    for index, row in enumerate(rows):
        yield Document(
            id=_row_id(row, index, options),
            text=_row_text(row, options["text_field"], options),
            source="hf",
        )


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


def _content(options: dict[str, Any]) -> dict[str, Any]:
    """Hashes of local inputs; a hub dataset is identified by its options only."""
    candidates = [options["path"], *_data_file_strings(options["data_files"])]
    files = [path for candidate in candidates for path in _local_files(candidate)]
    return {"files": hashed_files(files)}


KIND = SourceKind(name="hf", label="hf", check=_options, load=_load, content=_content)
