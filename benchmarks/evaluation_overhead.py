"""What evaluating a run's checkpoints costs beyond scoring them, measured with the tasks of `make run`.

1. **Requests built once.** lm-eval's `evaluate` builds every task's requests (each document through
   its prompt templates) on each call: for every checkpoint, the same requests. `TaskRunner` builds
   them on the first call only (`saturation.evaluate.lmeval.RequestsBuiltOnce`). For each run with
   an evaluation stage, its evaluated checkpoints (the selection `evaluate_run` makes) are scored on
   every task by one fresh `TaskRunner` both ways, round by round in this process: **rebuilt**
   (lm-eval's own `build_all_requests`, as the job ran before) and **once** (as the job runs now),
   each from its first checkpoint, so the one build a job pays is in. Both ways must give the same
   results, checkpoint by checkpoint. Seconds per checkpoint, the model's load included, the median
   of the rounds; one thread, as the job.
2. **Per-checkpoint overhead at Pythia-70m's shape** (6 layers, d 512, 50,304 head rows; random
   weights, fp16 safetensors as the hub stores them, `make run`'s tokenizer copied in): K such
   checkpoints through `evaluate_run`, the job's function, on `make run`'s tasks, the first
   `--limit` items of each (all of them: 2.5 min per checkpoint on 2 threads). Its
   event log gives each checkpoint's total; the model's forward calls (`HFLM._model_call`) and
   lm-eval's log-softmax over the vocabulary are timed by wrapping them: the scoring compute.
   Overhead = total − scoring compute (the sha256 check, the model's load through transformers,
   tokenizing, batching, lm-eval's bookkeeping and metrics, the record written). The first
   checkpoint also builds the task objects and their requests.

    make run && python benchmarks/evaluation_overhead.py [--results results] [--rounds 3]
                                                         [--checkpoints 3] [--threads 2]
                                                         [--limit 8]
                                                         [--configfile FILE …]

Target (issue 19): overhead ≤ 10 % of the per-checkpoint compute.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest import mock

from run_measurement import Stopwatch  # benchmarks/: this script's folder
from stages import current_plan
from suite_checkpoint import build_checkpoint


def evaluated_folders(run: Any) -> list[Path]:
    """The checkpoint folders `evaluate_run` scores for `run` (its recipe's selection)."""
    from saturation.checkpoints import read_manifest, verify_entry
    from saturation.plan.select import selected_steps

    recipe, manifest = run.evaluate.recipe, run.harvest.file("manifest")
    entries = {entry.step: entry for entry in read_manifest(manifest)}
    analysis = run.analyze.file("table") if "analyze" in recipe else None
    steps = selected_steps(recipe["checkpoints"], sorted(entries), analysis)
    return [verify_entry(entries[step], manifest) for step in steps]


def task_dirs(plan: Any, recipe: dict[str, Any]) -> dict[str, Path]:
    """Each local task of an evaluate recipe → the folder of its YAML (as the job finds them)."""
    return {task: Path(plan.evaltasks[task].file("tasks")) for task in recipe["tasks"]}


def score(plan: Any, run: Any, folders: list[Path], once: bool) -> tuple[list[float], list]:
    """Seconds per checkpoint and the tidy results of scoring `folders` on every task of the
    run's recipe with one fresh `TaskRunner`, its requests built once or on every call."""
    from saturation.evaluate.lmeval import TaskRunner, load_lm, tidy_results

    recipe = run.evaluate.recipe
    tasks = sorted(recipe["tasks"])
    runner = TaskRunner(sorted(set(task_dirs(plan, recipe).values())), tasks)
    if not once:
        for loaded in runner.loaded.values():
            for task in loaded["tasks"].values():
                task.build_all_requests = task.build_all_requests.build  # lm-eval's own
    seconds, results = [], []
    for folder in folders:
        started = time.perf_counter()
        lm = load_lm(folder, batch_size=recipe["batch_size"])
        with contextlib.redirect_stdout(sys.stderr):  # lm-eval prints its bootstrap
            output = runner.run(lm, limit=recipe["limit"])["results"]
        seconds.append(time.perf_counter() - started)
        results.append(tidy_results(output))
    return seconds, results


def requests_once(plan: Any, rounds: int) -> None:
    print("| run | checkpoints | s per checkpoint, rebuilt | s per checkpoint, once | saved | "
          "÷ rebuilt | s by round (rebuilt / once) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---|")
    runs = [run for run in plan.runs.values() if run.evaluate and hasattr(run, "pretrain")]
    for run in runs:
        folders = evaluated_folders(run)
        score(plan, run, folders[:1], once=True)  # warm: imports, datasets' cache
        by_way: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(rounds):
            outcome = {once: score(plan, run, folders, once) for once in (False, True)}
            if outcome[False][1] != outcome[True][1]:
                raise SystemExit(f"{run.name}: the results differ between the two ways")
            for once, (seconds, _) in outcome.items():
                by_way[once].append(sum(seconds) / len(seconds))
        rebuilt, once = statistics.median(by_way[False]), statistics.median(by_way[True])
        by_round = ", ".join(f"{a:.2f} / {b:.2f}" for a, b in zip(*by_way.values(), strict=True))
        print(f"| {run.name} | {len(folders)} | {rebuilt:.3f} | {once:.3f} | "
              f"{rebuilt - once:.3f} | {once / rebuilt:.2f}× | {by_round} |")  # fmt: skip


def pythia_overhead(plan: Any, k: int, limit: int | None) -> None:
    """Section 2 of the module's docstring: one table row per checkpoint, and the mean."""
    import torch
    from lm_eval.models.huggingface import HFLM

    import saturation.measure.series as series
    from saturation.checkpoints import CheckpointEntry, weight_files, write_manifest
    from saturation.evaluate import lmeval
    from saturation.io import sha256_file

    run = next(run for run in plan.runs.values() if run.evaluate)
    recipe = run.evaluate.recipe | {"limit": limit}
    tokenizer = Path(plan.tokenizer.file("tokenizer"))
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        entries = []
        for i in range(k):
            folder = results / "checkpoints" / f"step{i * 1000}"
            build_checkpoint(folder, "70m", seed=i)
            for item in tokenizer.iterdir():
                shutil.copy(item, folder / item.name)
            entries.append(CheckpointEntry(i * 1000, 0, str(folder),
                                           sha256_file(weight_files(folder)[0])))  # fmt: skip
        manifest = results / "harvest" / "bench" / "manifest.csv"
        manifest.parent.mkdir(parents=True)
        write_manifest(manifest, entries)
        watch = Stopwatch()
        events = Path(tmp) / "events.jsonl"
        with ExitStack() as patches:
            for owner, name, label in (
                (HFLM, "_model_call", "forward"),
                (torch.nn.functional, "log_softmax", "log_softmax"),
                (series, "verify_entry", "sha256"),
                (lmeval, "load_lm", "load"),
            ):
                patches.enter_context(
                    mock.patch.object(owner, name, watch.wrap(label, getattr(owner, name)))
                )
            patches.enter_context(contextlib.redirect_stdout(sys.stderr))
            lmeval.evaluate_run(manifest, [e.step for e in entries], recipe,
                                task_dirs(plan, recipe), results, events)  # fmt: skip
        lines = [json.loads(line) for line in events.read_text().splitlines()]
    calls = {label: len(watch.seconds[label]) // k for label in ("forward", "log_softmax")}
    print(f"\n{k} Pythia-70m-shaped checkpoints, tasks {sorted(recipe['tasks'])} (limit "
          f"{limit}, batch {recipe['batch_size']}), {torch.get_num_threads()} threads; "
          f"{calls['forward']} forward calls per checkpoint")  # fmt: skip
    print("\n| step | total s | forward s | log-softmax s | overhead s | overhead % of compute | "
          "of which sha256 / model load s |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---|")
    rows = []
    for i, event in enumerate(lines):
        per = {label: sum(seconds[i * calls[label]:(i + 1) * calls[label]])
               for label, seconds in watch.seconds.items() if label in calls}  # fmt: skip
        row = {"step": event["step"], "total": event["seconds"], **per,
               "sha256": watch.seconds["sha256"][i], "load": watch.seconds["load"][i]}  # fmt: skip
        row["overhead"] = row["total"] - row["forward"] - row["log_softmax"]
        rows.append(row)
    later = rows[1:] or rows  # the first also builds the tasks
    mean = {key: statistics.mean(row[key] for row in later) for key in rows[0] if key != "step"}
    for row in [*rows, {"step": f"**mean of steps {[r['step'] for r in later]}**", **mean}]:
        share = 100 * row["overhead"] / (row["forward"] + row["log_softmax"])
        print(f"| {row['step']} | {row['total']:.2f} | {row['forward']:.2f} | "
              f"{row['log_softmax']:.2f} | {row['overhead']:.2f} | {share:.1f} % | "
              f"{row['sha256']:.2f} / {row['load']:.2f} |")  # fmt: skip


def main() -> None:
    import torch

    from saturation.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--checkpoints", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=8, help="items per task, 0: all")
    parser.add_argument("--configfile", type=Path, nargs="*", default=[])  # as for snakemake
    args = parser.parse_args()
    plan = current_plan(load_config(*args.configfile), args.results)
    torch.set_num_threads(1)
    requests_once(plan, args.rounds)
    torch.set_num_threads(args.threads)
    pythia_overhead(plan, args.checkpoints, args.limit or None)


if __name__ == "__main__":
    main()
