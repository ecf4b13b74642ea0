"""Running lm-evaluation-harness on a checkpoint, and its results as plain metrics.

lm-eval, transformers and torch are imported inside the functions, so importing this module
costs nothing before an evaluation starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from saturation.evaluate.tasks import TASK_ALIASES

# Enough resamples for a rough stderr of the bootstrapped metrics (perplexity); lm-eval's
# default of 100k costs seconds per metric and checkpoint. Mean metrics (acc) use a closed form.
BOOTSTRAP_ITERS = 100


def load_lm(
    checkpoint_dir: Path, batch_size: int = 8, device: str = "cpu", max_length: int | None = None
) -> Any:
    """An lm-eval `HFLM` around a checkpoint folder's model (fp32, eval mode) and tokenizer.

    Built from objects rather than a path so lm-eval never consults the hub. Its context length
    is `max_length`, by default the model's `max_position_embeddings` (the training `seq_len`):
    longer contexts are cut from the left, rolling perplexity uses disjoint windows of that
    length, and a continuation longer than it fails lm-eval's assertion.
    """
    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import saturation.model.hf_heads  # noqa: F401 - registers our heads' model type

    model = AutoModelForCausalLM.from_pretrained(checkpoint_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir)
    return HFLM(
        pretrained=model.to(device).eval(),
        tokenizer=tokenizer,
        batch_size=batch_size,
        max_length=max_length,
    )


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Environment variables set for one block only (lm-eval reads some at call time)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class RequestsBuiltOnce:
    """A task's `build_all_requests`, building its requests (documents through the prompt
    templates: jinja compiled per document) on the first call with given arguments only.

    lm-eval's `evaluate` rebuilds every task's requests on each call, the same requests for
    every model: a cost that grows with the task's documents, paid per checkpoint (0.06–0.17 s
    for the default's 324 items; benchmarks/evaluation_overhead.py). Later calls get copies of
    the built instances (no responses), so nothing a previous model answered carries over.
    lm-eval's own `cache_requests` keys its disk cache by the task's name only, not its data.
    """

    def __init__(self, task: Any) -> None:
        self.task = task
        self.build = task.build_all_requests  # lm-eval's method, bound to the task
        self.built: dict[str, list[Any]] = {}

    def __call__(self, **arguments: Any) -> None:
        key = repr(sorted(arguments.items()))
        if key not in self.built:
            self.build(**arguments)
            self.built[key] = list(self.task.instances)
        self.task._instances = [
            dataclasses.replace(instance, resps=[], filtered_resps={})
            for instance in self.built[key]
        ]


class TaskRunner:
    """lm-eval's task objects, built once (index, datasets, documents, requests) and run on any
    number of models: a job evaluating a run's checkpoints pays for them once, not per checkpoint.

    Tasks are found in `task_yaml_dirs`; `include_defaults=True` lets a name fall back to
    lm-eval's built-in task (its data from the hub; indexing the built-in tasks costs ~11 s).
    A generated task names its data relative to its YAML's folder (tasks._local_dataset), so
    each task is loaded from inside the folder of its YAML. Zero-shot unless a task's YAML says
    otherwise, few-shot sampling seeded with 0, as `simple_evaluate` sets them; global RNGs are
    left alone: scoring is deterministic, and lm-eval's bootstrap seeds its own generators.
    """

    def __init__(
        self, task_yaml_dirs: list[Path], tasks: list[str], include_defaults: bool = False
    ) -> None:
        from lm_eval.tasks import TaskManager

        dirs = [str(Path(d).resolve()) for d in task_yaml_dirs]
        manager = TaskManager(include_path=dirs or None, include_defaults=include_defaults)
        names = {task: TASK_ALIASES.get(task, task) for task in tasks}
        if missing := sorted(t for t, name in names.items() if name not in manager.all_tasks):
            raise ValueError(f"tasks {missing} not found in {dirs}")
        self.loaded: dict[str, dict[str, Any]] = {}
        for task, name in names.items():
            yaml_path = manager.task_index[name].yaml_path
            with contextlib.chdir(Path(yaml_path).parent if yaml_path else Path.cwd()):
                self.loaded[task] = manager.load([name])
            for task_obj in self.loaded[task]["tasks"].values():
                if task_obj.get_config("num_fewshot") is None:
                    task_obj.set_config(key="num_fewshot", value=0)
                task_obj.set_fewshot_seed(seed=0)
                task_obj.build_all_requests = RequestsBuiltOnce(task_obj)

    def names(self, task: str) -> set[str]:
        """The names lm-eval reports `task`'s results under (a group's and its members')."""
        return set(self.loaded[task]["tasks"]) | set(self.loaded[task]["groups"])

    def run(
        self,
        lm: Any,
        tasks: list[str] | None = None,
        limit: int | None = None,
        log_samples: bool = False,
    ) -> dict[str, Any]:
        """lm-eval's `evaluate` output for `tasks` (all by default) on `lm`.

        `DISABLE_MULTIPROC` keeps the bootstrap in this process instead of a pool of
        `cpu_count()` workers, which ignores the cores a job was given.
        """
        from lm_eval.evaluator import evaluate

        merged: dict[str, dict[str, Any]] = {"tasks": {}, "groups": {}, "group_map": {}}
        for task in tasks if tasks is not None else list(self.loaded):
            for part, items in merged.items():
                items.update(self.loaded[task].get(part, {}))
        with _environ(DISABLE_MULTIPROC="1"):
            return evaluate(
                lm=lm,
                task_dict=merged,
                limit=limit,
                bootstrap_iters=BOOTSTRAP_ITERS,
                log_samples=log_samples,
            )


def run_tasks(
    lm: Any,
    task_yaml_dirs: list[Path],
    tasks: list[str],
    limit: int | None = None,
    log_samples: bool = False,
    include_defaults: bool = False,
) -> dict[str, Any]:
    """lm-eval's output for `tasks` found in `task_yaml_dirs` (see TaskRunner), on one model."""
    runner = TaskRunner(task_yaml_dirs, tasks, include_defaults=include_defaults)
    return runner.run(lm, limit=limit, log_samples=log_samples)


def _metric_name(key: str) -> str:
    """`acc,none` → `acc`; another filter is kept as a suffix (`exact_match_strict-match`)."""
    metric, _, filter_name = key.partition(",")
    stderr = metric.endswith("_stderr")
    base = metric.removesuffix("_stderr")
    if filter_name and filter_name != "none":
        base = f"{base}_{filter_name}"
    return base + ("_stderr" if stderr else "")


def tidy_results(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """lm-eval's per-task results, metrics only (keys `metric,filter`), numeric, plain names.

    Dropped: bookkeeping such as `sample_len` and the "N/A" lm-eval writes for a missing stderr.
    """
    return {
        task: {
            _metric_name(key): float(value)
            for key, value in metrics.items()
            if "," in key and isinstance(value, int | float) and not isinstance(value, bool)
        }
        for task, metrics in results.items()
    }


def evaluate_checkpoint(
    checkpoint_dir: Path,
    task_yaml_dirs: list[Path],
    tasks: list[str],
    batch_size: int = 8,
    limit: int | None = None,
    device: str = "cpu",
    max_length: int | None = None,
    include_defaults: bool = False,
) -> dict[str, dict[str, float]]:
    """`{task: {metric: value, metric_stderr: value}}` for one checkpoint, zero-shot.

    Stderrs come from lm-eval: closed form for means (acc), a `BOOTSTRAP_ITERS` bootstrap for
    perplexity; metrics without one (word_perplexity, bits_per_byte) have no `_stderr` key.
    `max_length` and `include_defaults` are explained at `load_lm` and `run_tasks`.
    """
    lm = load_lm(checkpoint_dir, batch_size=batch_size, device=device, max_length=max_length)
    output = run_tasks(lm, task_yaml_dirs, tasks, limit=limit, include_defaults=include_defaults)
    return tidy_results(output["results"])


def task_recipe(stage_recipe: dict[str, Any], task: str) -> dict[str, Any]:
    """What one task's result on a checkpoint depends on, from the run's evaluate recipe: the
    key of its stored record (saturation.measure.store), so a task added to the config, or a
    changed checkpoint selection, leaves every other record valid."""
    return {
        "task": task,
        "tasks": stage_recipe["tasks"][task],  # its YAML's stage id, or "hub"
        "limit": stage_recipe["limit"],
        "batch_size": stage_recipe["batch_size"],
    }


def evaluate_run(
    manifest: str | Path,
    steps: list[int],
    stage_recipe: dict[str, Any],
    task_dirs: dict[str, Path],
    results: str | Path,
    events: str | Path,
    device: str = "cpu",
    reuse: bool = True,
) -> dict[int, dict[str, Path]]:
    """Every task of `stage_recipe` on the manifest's checkpoints at `steps`, in one process:
    `{step: {task: its record.json}}`. A task without a folder in `task_dirs` is lm-eval's
    built-in one. lm-eval's tasks are built only when a record is missing, then once."""
    from saturation.measure.series import manifest_entries, measure_series
    from saturation.measure.store import RECORD, MeasurementStore

    tasks = sorted(stage_recipe["tasks"])
    runner: TaskRunner | None = None

    def measure(folder: Path, missing: list[str]) -> dict[str, Any]:
        nonlocal runner
        if runner is None:
            dirs = sorted({Path(d) for d in task_dirs.values()})
            runner = TaskRunner(dirs, tasks, include_defaults=bool(set(tasks) - set(task_dirs)))
        lm = load_lm(folder, batch_size=stage_recipe["batch_size"], device=device)
        output = tidy_results(runner.run(lm, missing, limit=stage_recipe["limit"])["results"])
        return {
            task: ({"results": {k: v for k, v in output.items() if k in runner.names(task)}}, {})
            for task in missing
        }

    found = measure_series(
        manifest,
        manifest_entries(manifest, steps),
        MeasurementStore(Path(results), "evaluation", reuse),
        {task: task_recipe(stage_recipe, task) for task in tasks},
        measure,
        events,
        label="evaluate",
    )
    return {step: {task: folder / RECORD for task, folder in records.items()}
            for step, records in found.items()}  # fmt: skip
