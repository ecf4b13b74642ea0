"""Which harvested checkpoints of a run are evaluated (`evaluation.checkpoints`): benchmarks are the
costliest measurement, so they run on a chosen subset."""

from __future__ import annotations

from pathlib import Path


def select_checkpoints(
    steps: list[int],
    every_k: int | None,
    last_n: int | None,
    include: list[str],
    best_step: int | None = None,
) -> list[int]:
    """The harvested steps to evaluate, ascending; the final step is always among them.

    `every_k`: every k-th harvested checkpoint counting from the first (step 0, the
    initialisation, gives the chance-level baseline); `last_n`: the last n; `include`: "final",
    "best" or explicit step numbers. "best" is the step of lowest held-out loss, which only the
    loss table knows: the caller reads it there and passes `best_step`.
    """
    harvested = sorted(set(steps))
    if not harvested:
        raise ValueError("no harvested checkpoints to select from")
    if (every_k is not None and every_k < 1) or (last_n is not None and last_n < 1):
        raise ValueError(f"every_k and last_n must be at least 1; got {every_k}, {last_n}")
    chosen = {harvested[-1]}
    chosen |= set(harvested[::every_k]) if every_k else set()
    chosen |= set(harvested[-last_n:]) if last_n else set()
    for entry in include:
        chosen.add(_included_step(entry, harvested, best_step))
    return sorted(chosen)


def _included_step(entry: str, harvested: list[int], best_step: int | None) -> int:
    if entry == "final":
        return harvested[-1]
    if entry == "best":
        if best_step is None:
            raise ValueError("'best' needs best_step, the lowest-loss step from the loss table")
        step = best_step
    elif entry.isdigit():
        step = int(entry)
    else:
        raise ValueError(f"include entry {entry!r} is not 'final', 'best' or a step number")
    if step not in harvested:
        raise ValueError(f"step {step} ({entry!r}) is not a harvested checkpoint")
    return step


def selected_steps(
    selection: dict, steps: list[int], analysis_table: str | Path | None = None
) -> list[int]:
    """`select_checkpoints` for an `evaluation.checkpoints` section, "best" read from the run's
    analysis table (its lowest held-out loss; required when the selection includes it)."""
    best = None
    if "best" in selection["include"]:
        if analysis_table is None:
            raise ValueError("'best' needs the run's analysis table")
        from saturation.summary import best_step
        from saturation.tables import read_tidy_table

        best = best_step(read_tidy_table(analysis_table))
    return select_checkpoints(
        steps, selection["every_k"], selection["last_n"], selection["include"], best_step=best
    )


def planned_evaluations(selection: dict, steps: list[int]) -> int:
    """How many of `steps` a selection evaluates, known before the analysis: "best" counted as
    one more checkpoint, at most."""
    fixed = [entry for entry in selection["include"] if entry != "best"]
    chosen = len(select_checkpoints(steps, selection["every_k"], selection["last_n"], fixed))
    return chosen + ("best" in selection["include"] and chosen < len(set(steps)))
