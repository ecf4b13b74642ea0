"""Content-addressed stage folders: every kind of stage, the files it writes, and its ids.

A stage's output folder is `results/<kind>/<id>/`, where the id hashes its recipe: its own config
slice (defaults applied), the ids of the stages it reads and the kind's format version, bumped
whenever what the stage writes changes meaning (docs/DESIGN-NOTES.md lists each bump). Equal
recipes share results; any change to a recipe gets a new folder, so nothing finished is ever
overwritten.

Each kind names its files once, here, as templates relative to the folder. Rules declare their
outputs with `Plan.pattern` (the id and any other field a wildcard) and input functions ask a
concrete `Stage.file`: both read the same template, so a path is written in one place.
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

ID_LENGTH = 12


@dataclass(frozen=True)
class StageKind:
    """One kind of stage: its folder name under results/, format version and files."""

    name: str
    version: int
    files: Mapping[str, str]  # role -> template relative to the stage folder; {field}: a wildcard

    def template(self, role: str) -> str:
        try:
            return self.files[role]
        except KeyError:
            raise KeyError(
                f"stage {self.name!r} writes no {role!r} (it writes {list(self.files)})"
            ) from None


KINDS: dict[str, StageKind] = {
    kind.name: kind
    for kind in (
        StageKind("corpus", 3, {"split": "{split}.jsonl", "stats": "stats.json"}),
        StageKind("tokenizer", 1, {"tokenizer": "tokenizer"}),
        StageKind("tokens", 3, {"bin": "{split}.bin", "header": "{split}.json"}),
        StageKind("evaltasks", 1, {"tasks": "tasks"}),
        # a synthetic language (saturation.synthetic): its tokenizer and token files, laid out
        # as the tokenizer and tokens stages' so runs read them alike; and its oracle table
        StageKind(
            "language",
            1,
            {
                "tokenizer": "tokenizer",
                "bin": "{split}.bin",
                "header": "{split}.json",
                "info": "language.json",
            },
        ),
        StageKind("oracle", 1, {"table": "oracle.csv"}),
        # our own pretraining: the checkpoints and the resume state are not declared outputs, so
        # Snakemake's cleanup of a failed job never deletes them
        StageKind(
            "pretrain",
            3,
            {"summary": "train.json", "metrics": "metrics.jsonl", "checkpoints": "checkpoints"},
        ),
        # every source's harvest writes the manifest; a suite's also where each revision resolved to
        StageKind("harvest", 2, {"manifest": "manifest.csv", "revisions": "revisions.json"}),
        # a run's measurements, one job each: its tables here, every checkpoint's record in
        # results/measurements/ (saturation.measure.store), kept when a rerun deletes these
        StageKind(
            "analyze",
            6,
            {"table": "metrics.csv", "spectra": "spectra.csv", "windows": "windows.csv"},
        ),
        StageKind("evaluate", 2, {"table": "metrics.csv"}),
        StageKind("tables", 8, {"table": "{table}.{ext}"}),
        StageKind("summary", 3, {"table": "{table}.{ext}"}),
        StageKind("scaling", 1, {"table": "scaling.{ext}", "fit": "fit.json"}),
        StageKind("ngram", 1, {"table": "wcurve.{ext}", "info": "ngram.json"}),
        # a run's rank-constrained heads on frozen checkpoints (saturation.measure.head_sweep):
        # its tables here; the cached states and every head's record in results/measurements/
        StageKind("heads", 2, {"table": "heads.csv", "curves": "curves.csv"}),
        StageKind("figures", 7, {"figure": "{figure}.{ext}"}),
    )
}
FORMAT_VERSIONS = {name: kind.version for name, kind in KINDS.items()}
# The per-checkpoint records of the measurement store (saturation.measure.store), bumped when what
# a record holds changes meaning: part of every record's key, and of the recipe of the stage that
# tabulates them (analyze, evaluate), so a bump remakes the records and the tables read from them.
RECORD_VERSIONS = {"analysis": 6, "evaluation": 1, "states": 1, "heads": 1}


class _Wildcards(dict):
    """Format fields left unfilled stay `{field}`: Snakemake's wildcards."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(template: str, **fields: Any) -> str:
    """`template` with the given fields filled in and the others kept as wildcards."""
    return string.Formatter().vformat(template, (), _Wildcards(fields))


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def stage_id(stage: str, recipe: dict[str, Any]) -> str:
    payload = {"stage": stage, "format_version": FORMAT_VERSIONS[stage], "recipe": recipe}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:ID_LENGTH]


@dataclass(frozen=True)
class Stage:
    """One content-addressed output folder: results/<stage>/<id>/.

    The recipe is kept in canonical form (keys sorted, JSON types), so the rules that pass it to
    their jobs as a param see the same text exactly when the id is the same, whatever the order
    or spelling of the config it came from.
    """

    stage: str
    recipe: dict[str, Any]
    name: str
    results: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "recipe", json.loads(canonical_json(self.recipe)))

    @cached_property
    def id(self) -> str:
        """Hashed once: the workflow asks for ids per job, thousands of times in a sweep."""
        return stage_id(self.stage, self.recipe)

    @property
    def dir(self) -> str:
        return folder(self.results, self.stage, self.id)

    def file(self, role: str, **fields: Any) -> str:
        """The path of one of the stage's files; fields not given stay wildcards."""
        return f"{self.dir}/{fill(KINDS[self.stage].template(role), **fields)}"

    def recipe_record(self) -> dict[str, Any]:
        """What recipe.json holds: enough to trace a folder back to the config that made it."""
        return {
            "stage": self.stage,
            "id": self.id,
            "name": self.name,
            "format_version": FORMAT_VERSIONS[self.stage],
            "recipe": self.recipe,
        }


def folder(results: str, kind: str, stage_id: str) -> str:
    """Where a stage's files live: results/<kind>/<id>."""
    return f"{results}/{kind}/{stage_id}"


def pattern(results: str, kind: str, role: str, **fields: Any) -> str:
    """A file of every stage of a kind: the id is the wildcard `{<kind>_id}` (rules' outputs)."""
    template = KINDS[kind].template(role)
    return f"{folder(results, kind, '{' + kind + '_id}')}/{fill(template, **fields)}"
