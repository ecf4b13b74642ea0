"""Runs whose checkpoints our own pretraining writes: one per configured width × seed.

Its stages: `pretrain` (workflow/rules/train.smk) trains the run and checkpoints it on a schedule;
`harvest` (workflow/rules/harvest.smk) verifies every scheduled checkpoint against the sha256
recorded when it was written and lists them in the run's manifest.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from saturation.config import (
    WIDTH_TRAIN_KEYS,
    gpus_of,
    resolve_head,
    resolve_shape,
    resolve_train,
)
from saturation.model.head_spec import HeadSpec
from saturation.plan.runs import Run, SharedStages
from saturation.plan.stages import Stage
from saturation.schedule import checkpoint_steps

# How the text runs trained here with the linear head are named: figures tell them by colour
# (width) alone and label every other run by name (a published model's, plan/suites.py; a
# synthetic language's; another head's).
OWN_RUN_NAME = re.compile(r"^(?P<model>w\d+)-s\d+$")
# every run trained here: `[{language}-]w{width}[{head suffix}][-{tag}]-s{seed}` (HeadSpec.suffix)
TRAINED_RUN_NAME = re.compile(
    r"^(?P<model>(?:[a-z][a-z0-9]*-)?w\d+(?:-[a-z]+\d*)?(?:-[a-z][a-z0-9]*)?)-s\d+$"
)


def run_name(width: int, seed: int, head: HeadSpec | None = None, tag: str = "") -> str:
    return f"w{width}{(head or HeadSpec()).suffix}{f'-{tag}' if tag else ''}-s{seed}"


def model_name(run: str) -> str:
    """The model a run is one seed of: runs trained here differ by seed only within a width
    and head (`w32-s0`, `w32-s1` → `w32`; `r16-w8-mos4-s1` → `r16-w8-mos4`), so summaries and
    figures pool them; a published run is a model of its own."""
    match = TRAINED_RUN_NAME.match(run)
    return match["model"] if match else run


@dataclass(frozen=True)
class PretrainedRun(Run):
    """A run this workflow pretrains (width × seed)."""

    source: ClassVar[str] = "pretrain"
    harvest_rule: ClassVar[str] = "harvest"

    pretrain: Stage
    gpus: int  # how the pretrain job runs (never in a recipe): GPUs, data-parallel above 1

    @property
    def checkpoint_steps(self) -> list[int]:
        return self.pretrain.recipe["train"]["checkpoint_steps"]

    def own_stages(self) -> list[Stage]:
        return [self.pretrain]


def train_recipe(config: Mapping[str, Any], entry: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The optimisation recipe of one width's run: every field changes the trained weights."""
    train = resolve_train(entry, config["train"])
    marks = train["checkpoints"]
    return {
        "seed": seed,
        "steps": train["steps"],
        "batch_size": train["batch_size"],
        "seq_len": train["seq_len"],
        "lr": train["lr"],
        "min_lr_ratio": train["min_lr_ratio"],
        "warmup_steps": round(train["warmup_fraction"] * train["steps"]),
        "betas": train["betas"],
        "eps": train["eps"],
        "weight_decay": train["weight_decay"],
        "grad_clip": train["grad_clip"],
        "precision": train["precision"],
        "compile": train["compile"],
        "checkpoint_steps": checkpoint_steps(
            train["steps"], marks["log_until"], marks["every"], marks["steps"]
        ),
    }


def pretrained_runs(shared: SharedStages) -> Iterator[PretrainedRun]:
    """Every configured width × seed, on the shared tokenizer and token files."""
    for entry in shared.config["widths"]:
        for seed in shared.config["train"]["seeds"]:
            yield trained_run(shared, entry, seed, shared.tokens, shared.tokenizer, "")


def trained_run(
    shared: SharedStages,
    entry: Mapping[str, Any],
    seed: int,
    tokens: Stage,
    tokenizer: Stage,
    prefix: str,
    run_class: type[PretrainedRun] = PretrainedRun,
    attributes: Mapping[str, Any] | None = None,
    **extra: Any,
) -> PretrainedRun:
    """The run of one width entry and seed, trained on `tokens` (made with `tokenizer`), named
    `{prefix}w{width}-s{seed}`, with `attributes` beside the width's; `extra` are the fields
    `run_class` adds. Runs on text are
    evaluated on the configured tasks; a run on another language (`prefix`) is not: the tasks
    are text of the corpus."""
    config, model = shared.config, shared.config["model"]
    shape, head = resolve_shape(entry, model), resolve_head(entry, model)
    name = prefix + run_name(shape["width"], seed, head, entry.get("tag", ""))
    train = train_recipe(config, entry, seed)
    architecture = shape | {k: model[k] for k in ("rotary_pct", "mlp_ratio", "vocab_multiple")}
    if head != HeadSpec():  # the linear head is the recipe without one: its ids predate heads
        architecture["head"] = head.recipe()
    pretrain = shared.stage(
        "pretrain",
        {"tokens": tokens.id, "tokenizer": tokenizer.id, "model": architecture, "train": train},
        name,
    )
    harvest = shared.stage("harvest", {"pretrain": pretrain.id}, name)
    text_width = None if prefix else shape["width"]
    measurements = shared.measurements(name, harvest, tokens, train["seq_len"], True, text_width)
    if prefix:  # the tasks are the corpus's text
        measurements["evaluate"] = None
    return run_class(
        name=name,
        attributes={
            "family": "gpt_neox",
            "width": shape["width"],
            "layers": shape["layers"],
            "seed": seed,
            "head": head.label,
            "logit_rank": head.logit_rank(shape["width"]),
        }
        | {key: train[key] for key in WIDTH_TRAIN_KEYS}  # what a sweep varies
        | ({"tag": entry["tag"]} if "tag" in entry else {})
        | dict(attributes or {}),
        tokens=tokens,
        harvest=harvest,
        **measurements,
        pretrain=pretrain,
        gpus=gpus_of(entry, config["runtime"]),
        **extra,
    )
