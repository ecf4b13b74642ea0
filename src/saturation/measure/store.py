"""Per-checkpoint measurements, stored once by content: `results/measurements/<kind>/<key>/`.

A run's analysis and evaluation are one job each (one process: torch, transformers and lm-eval
imported once, the held-out windows and the task objects built once), yet every checkpoint's
result stays a file of its own. Its key hashes what the number depends on, and nothing else: the
checkpoint's content (`checkpoint_fingerprint`), the measurement's recipe and the record format's
version. So a run job finds what earlier jobs measured, whatever run, stage id or config they
belonged to: a checkpoint added to a suite, a task added to the evaluation or a changed checkpoint
selection measures only the new (checkpoint, recipe) pairs, and a killed job loses at most the
checkpoint it was on (each record appears by an atomic rename of its folder).

A record is never overwritten; `runtime.remeasure: [analysis]` (or `evaluation`) measures anew
and replaces it (the old folder moved aside first, then removed), for a user who distrusts a stored number.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from saturation.checkpoints import CHECKPOINT_RECORD, weight_files
from saturation.io import sha256_file, write_json_atomic
from saturation.plan.stages import RECORD_VERSIONS, canonical_json

MEASUREMENTS = "measurements"  # under the results folder
RECORD = "record.json"  # in every record's folder: its key's recipe, then the measurement
KEY_LENGTH = 20
_HOST = socket.gethostname().replace(".", "_")
_WRITER = f"{_HOST}-{os.getpid()}"  # in temporary names: whose they are
_BLOB = re.compile(r"^[0-9a-f]{64}$")  # a HF cache blob's name: its content's sha256


def _content_digest(file: Path) -> str:
    """A file's sha256: read from its HF cache blob's name (verified when the suite was
    harvested; a snapshot's files are links to blobs), else hashed."""
    blob = Path(os.path.realpath(file)).name
    return blob if _BLOB.match(blob) else sha256_file(file)


def checkpoint_fingerprint(folder: str | Path, first_weights_sha256: str) -> str:
    """What a checkpoint's measurements depend on, without reading its weights: the manifest's
    sha256 of the first weight file (verified before the checkpoint is ever measured), further
    shards' and every other file's digest (config, tokenizer), except `checkpoint.json`, which
    records the step: identical weights measure identically at any step."""
    folder = Path(folder)
    weights = weight_files(folder)
    digests = {weights[0].name: first_weights_sha256}
    digests |= {file.name: _content_digest(file) for file in weights[1:]}
    others = {
        file.name: _content_digest(file)
        for file in sorted(folder.iterdir())
        if file.is_file() and file.name != CHECKPOINT_RECORD and file not in weights
    }
    payload = canonical_json({"weights": digests, "files": others})
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class MeasurementStore:
    """The records of one kind of measurement under one results folder."""

    results: Path
    kind: str  # a key of RECORD_VERSIONS
    reuse: bool = True  # False: measure anew and replace what is stored

    @property
    def root(self) -> Path:
        return Path(self.results) / MEASUREMENTS / self.kind

    def key(self, fingerprint: str, recipe: Mapping[str, Any]) -> str:
        payload = {
            "kind": self.kind,
            "version": RECORD_VERSIONS[self.kind],
            "checkpoint": fingerprint,
            "recipe": dict(recipe),
        }
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:KEY_LENGTH]

    def folder(self, key: str) -> Path:
        return self.root / key

    def find(self, key: str) -> Path | None:
        """The record's folder when it is stored (and to be reused), else None."""
        folder = self.folder(key)
        return folder if self.reuse and (folder / RECORD).is_file() else None

    def read(self, key: str) -> dict[str, Any]:
        return json.loads((self.folder(key) / RECORD).read_text())

    def write(
        self, key: str, record: dict[str, Any], arrays: Mapping[str, np.ndarray] | None = None
    ) -> Path:
        """Store a record (JSON) and its arrays (`<name>.npy`) under `key`: written into a
        temporary folder, which is then renamed into place."""
        final = self.folder(key)
        tmp = final.with_name(f".{key}.{_WRITER}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            for name, array in (arrays or {}).items():
                with open(tmp / f"{name}.npy", "wb") as handle:
                    np.save(handle, array)
            write_json_atomic(tmp / RECORD, record)
            if final.exists():  # replaced on request (reuse off), or a concurrent job's equal one
                aside = final.with_name(f".{key}.{_WRITER}.old.tmp")
                final.rename(aside)
                shutil.rmtree(aside)
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def remove_leftovers(self) -> list[Path]:
        """Temporary folders of writers on this host that no longer run (a killed job's)."""
        removed = []
        for tmp in sorted(self.root.glob(f".*.{_HOST}-*.tmp")):
            pid = tmp.name.split(f".{_HOST}-", 1)[1].split(".", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(tmp, ignore_errors=True)
                removed.append(tmp)
        return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
