"""A run is a source of checkpoints, and the measurements taken on them.

Harvest, analysis, evaluation, tables and figures see only what every run has: a name (unique:
the key of every table row), attributes (family, width, seed, …: what tables and figures may
group or colour by, never a key), the held-out tokens it is scored on, the context length of its
windows, the harvest stage that lists its checkpoints, and the measurement stages built from that
list. Where the checkpoints come from is the run's source: our own pretraining (`pretrained.py`)
is one; each source brings its own stages and its own harvest rule (`harvest_rule`), which writes
the one manifest format every run shares (saturation.checkpoints).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from saturation.plan.stages import RECORD_VERSIONS, Stage


@dataclass(frozen=True)
class Run:
    """One series of checkpoints and the stages that measure it."""

    source: ClassVar[str]  # the kind of source, as in the tables' runs table
    harvest_rule: ClassVar[str]  # the Snakemake checkpoint rule that writes its manifest

    name: str
    attributes: Mapping[str, Any]  # family, width, seed, … (table columns, never a key)
    tokens: Stage  # the token files it is scored on (its tokenizer's)
    harvest: Stage
    analyze: Stage
    evaluate: Stage | None  # every task on a selection of its checkpoints (None: no tasks)
    heads: Stage | None  # rank-constrained heads on frozen checkpoints (None: not swept)

    @property
    def seq_len(self) -> int:
        """Tokens of context of its held-out windows (part of the analysis recipe)."""
        return self.analyze.recipe["seq_len"]

    @property
    def checkpoint_steps(self) -> list[int]:
        """The steps of the checkpoints it is planned to have (its harvest lists them)."""
        raise NotImplementedError

    @property
    def width(self) -> int:
        return self.attributes["width"]

    @property
    def seed(self) -> int:
        return self.attributes["seed"]

    def own_stages(self) -> list[Stage]:
        """The stages the source itself adds before harvest (none for a ready-made series)."""
        return []

    def stages(self) -> list[Stage]:
        optional = [stage for stage in (self.evaluate, self.heads) if stage is not None]
        return [*self.own_stages(), self.harvest, self.analyze, *optional]


@dataclass(frozen=True)
class SharedStages:
    """What every run's stages are built on: the config and the stages shared by all runs."""

    config: Mapping[str, Any]
    results: str
    corpus: Stage
    tokenizer: Stage
    tokens: Stage
    evaltasks: Mapping[str, Stage]  # task -> the folder of its YAML (generated tasks share one)

    def stage(self, kind: str, recipe: dict[str, Any], name: str) -> Stage:
        return Stage(kind, recipe, name=name, results=self.results)

    def measurements(
        self,
        name: str,
        harvest: Stage,
        tokens: Stage,
        seq_len: int,
        trained_on_tokens: bool,
        text_width: int | None,
    ) -> dict[str, Any]:
        """The run's measurement stages, as keyword arguments of its Run; `seq_len` is the
        context of its held-out windows; `trained_on_tokens`: whether `tokens`' train split is
        what the run trained on (then a sample of it is scored too: `analysis.train_tokens`);
        `text_width`: the width of a run on the corpus's text (None for a synthetic language),
        whose checkpoints may get a head sweep (`heads`)."""
        evaluation = self.config["evaluation"]
        analysis = dict(self.config["analysis"])
        if not trained_on_tokens:
            analysis["train_tokens"] = 0
        analyze = self.stage(
            "analyze",
            {"harvest": harvest.id, "tokens": tokens.id, "seq_len": seq_len,
             "record_version": RECORD_VERSIONS["analysis"]} | analysis,
            name,
        )  # fmt: skip
        heads = self.head_sweep(name, harvest, tokens, seq_len, text_width, analyze)
        if not evaluation["tasks"]:
            return {"analyze": analyze, "evaluate": None, "heads": heads}
        selection = dict(evaluation["checkpoints"])
        evaluate = self.stage(
            "evaluate",
            {
                "harvest": harvest.id,
                "tasks": {
                    task: self.evaltasks[task].id if task in self.evaltasks else "hub"
                    for task in evaluation["tasks"]
                },
                "limit": evaluation["limit"],
                "batch_size": evaluation["batch_size"],
                "checkpoints": selection,
                "record_version": RECORD_VERSIONS["evaluation"],
            }
            # the lowest-loss checkpoint is found in the run's analysis
            | ({"analyze": analyze.id} if "best" in selection["include"] else {}),
            name,
        )
        return {"analyze": analyze, "evaluate": evaluate, "heads": heads}

    def head_sweep(
        self,
        name: str,
        harvest: Stage,
        tokens: Stage,
        seq_len: int,
        width: int | None,
        analyze: Stage,
    ) -> Stage | None:
        """The heads stage of a run on text whose width `heads.widths` selects (None: every
        width), its rank grid resolved for the width (saturation.measure.head_sweep)."""
        from saturation.measure.rank_heads import ranks_for

        settings = self.config["heads"]
        if not settings["enabled"] or width is None:
            return None
        if settings["widths"] is not None and width not in settings["widths"]:
            return None
        include = list(settings["checkpoints"])
        return self.stage(
            "heads",
            {
                "harvest": harvest.id,
                "tokens": tokens.id,
                "seq_len": seq_len,
                "checkpoints": include,
                "states": {k: settings[k] for k in ("fit_tokens", "heldout_tokens", "batch_size")},
                "ranks": ranks_for(width, settings["ranks"]),
                "inits": list(settings["inits"]),
                "lrs": list(settings["lrs"]),
                "train": dict(settings["train"]),
                "record_versions": {k: RECORD_VERSIONS[k] for k in ("states", "heads")},
            }
            # the lowest-loss checkpoint is found in the run's analysis
            | ({"analyze": analyze.id} if "best" in include else {}),
            name,
        )
