"""What the plan leaves on disk: each stage's recipe.json and the results folder's index.csv."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

from saturation.io import write_json_atomic, write_text_atomic
from saturation.plan.build import Plan

INDEX_FIELDS = ("stage", "id", "name", "path")
logger = logging.getLogger(__name__)


def write_plan_records(plan: Plan) -> None:
    """Write each stage's recipe.json (once: its content is fixed by its id) and results/index.csv.

    The index keeps the rows of earlier configs too, so a result made by an old config stays
    findable by name after the config moved on. It is derived, never trusted: the current plan's
    rows win over what the file says, and a file that cannot be read is rebuilt from the
    recipe.json files, with a warning naming it.
    """
    for stage in plan.stages():
        recipe = Path(stage.dir) / "recipe.json"
        if not recipe.exists():
            write_json_atomic(recipe, stage.recipe_record())
    index = Path(plan.results) / "index.csv"
    rows = _read_index(index) if index.exists() else {}
    rows |= {(r["stage"], r["id"], r["name"]): r for r in plan.index_rows()}
    lines = [",".join(INDEX_FIELDS)]
    lines += [",".join(row[f] for f in INDEX_FIELDS) for _, row in sorted(rows.items())]
    text = "\n".join(lines) + "\n"
    if not index.exists() or index.read_text(errors="replace") != text:
        write_text_atomic(index, text)


def _read_index(index: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    try:
        with open(index, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != INDEX_FIELDS:
                raise ValueError(f"columns {reader.fieldnames}, not {list(INDEX_FIELDS)}")
            rows = list(reader)
            if any(None in row or None in row.values() for row in rows):
                raise ValueError("a row with a missing or an extra field")
            return {(r["stage"], r["id"], r["name"]): r for r in rows}
    except (UnicodeDecodeError, csv.Error, ValueError) as error:
        logger.warning("%s is unreadable (%s): rebuilt from the recipe.json files", index, error)
        return _rows_from_recipes(index.parent)


def _rows_from_recipes(results: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    """Every stage folder's row, from the recipe.json each holds."""
    rows = {}
    for recipe in sorted(results.glob("*/*/recipe.json")):
        try:
            record = json.loads(recipe.read_text())
            row = {"stage": record["stage"], "id": record["id"], "name": record["name"],
                   "path": str(recipe.parent)}  # fmt: skip
        except (OSError, ValueError, KeyError):
            logger.warning("%s is unreadable: left out of the index", recipe)
            continue
        rows[(row["stage"], row["id"], row["name"])] = row
    return rows
