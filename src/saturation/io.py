"""Atomic writes: a finished result is never half-written and never overwritten in place."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto `final` only if the block succeeds.

    Works for files and folders alike (the caller decides what to create at the yielded path).
    A file replaces its predecessor atomically; a folder never replaces an existing one.
    A failure leaves `final` as it was and removes the temporary.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    tmp.rmdir()  # the caller creates a file or a folder here
    try:
        yield tmp
        if tmp.is_dir() and final.exists():
            raise FileExistsError(
                f"{final}: already exists; finished results are never overwritten"
            )
        os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def remove_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove what `atomic_path` left in `folder` when a kill stopped a write mid-way (`.<name>.
    <random>.tmp`). Only for a folder whose one writer is the caller (a run's own checkpoints),
    as another writer's temporary may still be in use. Returns what was removed."""
    removed = []
    for tmp in sorted(Path(folder).glob(".*.tmp")):
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
