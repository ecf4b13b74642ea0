"""What the plan leaves on disk: each stage's recipe.json and the results folder's index.csv."""

from __future__ import annotations

import csv
from pathlib import Path

from saturation.io import write_json_atomic, write_text_atomic
from saturation.plan.build import Plan

INDEX_FIELDS = ("stage", "id", "name", "path")


def write_plan_records(plan: Plan) -> None:
    """Write each stage's recipe.json (once: its content is fixed by its id) and results/index.csv.

    The index keeps the rows of earlier configs too, so a result made by an old config stays
    findable by name after the config moved on.
    """
    for stage in plan.stages():
        recipe = Path(stage.dir) / "recipe.json"
        if not recipe.exists():
            write_json_atomic(recipe, stage.recipe_record())
    index = Path(plan.results) / "index.csv"
    rows = {(r["stage"], r["id"], r["name"]): r for r in plan.index_rows()}
    if index.exists():
        with open(index, newline="") as handle:
            rows |= {(r["stage"], r["id"], r["name"]): r for r in csv.DictReader(handle)}
    lines = [",".join(INDEX_FIELDS)]
    lines += [",".join(row[f] for f in INDEX_FIELDS) for _, row in sorted(rows.items())]
    text = "\n".join(lines) + "\n"
    if not index.exists() or index.read_text() != text:
        write_text_atomic(index, text)
