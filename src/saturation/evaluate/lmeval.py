"""Running lm-evaluation-harness on a checkpoint, and its results as plain metrics.

lm-eval, transformers and torch are imported inside the functions, so importing this module
costs nothing before an evaluation starts.
"""

from __future__ import annotations

import contextlib
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


def run_tasks(
    lm: Any,
    task_yaml_dirs: list[Path],
    tasks: list[str],
    limit: int | None = None,
    log_samples: bool = False,
    include_defaults: bool = False,
) -> dict[str, Any]:
    """lm-eval's `simple_evaluate` output for `tasks` found in `task_yaml_dirs` (zero-shot).

    Global RNGs are left alone (seeds None): scoring is deterministic, and lm-eval's bootstrap
    seeds its own generators. `DISABLE_MULTIPROC` keeps the bootstrap in this process instead of
    a pool of `cpu_count()` workers, which ignores the cores a job was given.
    `include_defaults=True` lets names fall back to lm-eval's built-in tasks: their data comes
    from the hub, and indexing them costs ~11 s.
    """
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    tasks = [TASK_ALIASES.get(task, task) for task in tasks]
    task_yaml_dirs = [Path(d).resolve() for d in task_yaml_dirs]  # read after the chdir below
    manager = TaskManager(
        include_path=[str(d) for d in task_yaml_dirs], include_defaults=include_defaults
    )
    missing = sorted(set(tasks) - set(manager.all_tasks))
    if missing:
        raise ValueError(f"tasks {missing} not found in {[str(d) for d in task_yaml_dirs]}")
    # a generated task names its data relative to its YAML's folder (tasks._local_dataset)
    here = task_yaml_dirs[0] if len(task_yaml_dirs) == 1 else Path.cwd()
    with _environ(DISABLE_MULTIPROC="1"), contextlib.chdir(here):
        return simple_evaluate(
            model=lm,
            tasks=tasks,
            task_manager=manager,
            limit=limit,
            bootstrap_iters=BOOTSTRAP_ITERS,
            log_samples=log_samples,
            random_seed=None,
            numpy_random_seed=None,
            torch_random_seed=None,
            fewshot_random_seed=0,
        )


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
