"""Benchmark evaluation of checkpoints through lm-evaluation-harness, fully offline.

Every task is a YAML file that lm-eval's `TaskManager` reads from our own include paths
(`include_defaults=False`, so its ~14k built-in tasks are never indexed and nothing reaches the
hub). Two kinds of tasks:

- generated from our held-out split (`tasks.build_offline_tasks`): `sat_cloze`, a LAMBADA-style
  last-word cloze, and `sat_wordperplexity`, WikiText-style rolling word perplexity, both
  decontaminated against the train split and free of special-token strings;
- standard benchmarks (`tasks.standard_task_override`) whose built-in YAML is copied field for
  field with only the dataset pointed at local JSON(L) files in the hub's schema, so the prompts
  and metrics are exactly lm-eval's.

Modules, one job each:

- `items`: the generated tasks' items drawn from the held-out split (cloze passages, documents);
- `decontamination`: which held-out text to leave out (n-grams shared with train, special tokens);
- `tasks`: the task YAML (generated and standard) and the data formats of the standard tasks,
  with hand-written samples in `samples/`;
- `lmeval`: running lm-eval on a checkpoint and tidying its results.

This module holds constants only: the workflow planner imports it when Snakemake parses the
workflow, where numpy, yaml or lm-eval would cost seconds for nothing (lm-eval, transformers and
torch are imported inside `lmeval`'s functions for the same reason).
"""

from __future__ import annotations

CLOZE_TASK = "sat_cloze"
PERPLEXITY_TASK = "sat_wordperplexity"
GENERATED_TASKS = (CLOZE_TASK, PERPLEXITY_TASK)
# Bump when the generated items or task definitions change meaning (lm-eval reports it as the
# task's version, so results of different generations are never mixed up silently).
# 2: decontaminated against the train split; 3: text holding a special-token string left out;
# 4: data files named relative to the YAML (a results folder can be moved).
HELDOUT_TASKS_VERSION = 4
