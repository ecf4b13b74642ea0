"""From a validated config to every stage of the workflow and its id, before Snakemake builds
its DAG (workflow/rules/common.smk)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from saturation.config import ConfigError
from saturation.corpus import CorpusError, source_fingerprint
from saturation.plan.pretrained import pretrained_runs
from saturation.plan.runs import Run, SharedStages
from saturation.plan.stages import Stage, pattern
from saturation.plan.suites import suite_runs
from saturation.plan.synthetic import SyntheticRun, synthetic_runs

# Every source of runs, each a function of the shared stages (and through them the config).
RUN_SOURCES = (pretrained_runs, synthetic_runs, suite_runs)


@dataclass(frozen=True)
class Plan:
    """Every stage of a config: the shared ones, each run's, and an index from a stage's id to the
    stage and its run, through which a job finds what it belongs to."""

    results: str
    corpus: Stage
    tokenizer: Stage
    tokens: Stage
    evaltasks: Mapping[str, Stage]  # task -> the folder of its YAML (generated tasks share one)
    runs: Mapping[str, Run]
    tables: Stage
    summary: Stage
    scaling: Stage | None  # the scaling-law extrapolation, when `scaling.enabled`
    ngram: Stage | None  # the data's dimensionality, when `ngram.enabled` and runs train on text
    figures: Stage
    _owners: dict[str, tuple[Stage, Run | None]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        owners = {s.id: (s, run) for run in self.runs.values() for s in run.stages()}
        for stage in self.stages():
            owners.setdefault(stage.id, (stage, None))
        object.__setattr__(self, "_owners", owners)

    def stages(self) -> list[Stage]:
        evaltasks = {stage.id: stage for stage in self.evaltasks.values()}  # generated: one
        # a stage several runs share (a synthetic language) once
        per_run = {stage.id: stage for run in self.runs.values() for stage in run.stages()}
        optional = [stage for stage in (self.scaling, self.ngram) if stage is not None]
        return [self.corpus, self.tokenizer, self.tokens, *evaltasks.values(), *per_run.values(),
                self.tables, self.summary, *optional, self.figures]  # fmt: skip

    @property
    def text_runs(self) -> dict[str, Run]:
        """The runs measured on the corpus's text (trained here, or published and measured with
        their own tokenizer), not on a synthetic language: what a scaling law may fit."""
        return {name: run for name, run in self.runs.items() if not isinstance(run, SyntheticRun)}

    def find(self, stage_id: str) -> tuple[Stage, Run | None]:
        """The stage with this id, and the run it belongs to (None for shared stages)."""
        try:
            return self._owners[stage_id]
        except KeyError:
            raise KeyError(f"no stage of this plan has id {stage_id}") from None

    def ids(self, kind: str, source: str | None = None) -> str:
        """The ids of every stage of a kind (of one source's runs only) as a regular expression
        of alternatives: a wildcard constraint ("-", which no id is, when there are none)."""
        return "|".join(
            s.id for s, run in self._owners.values()
            if s.stage == kind and (source is None or (run is not None and run.source == source))
        ) or "-"  # fmt: skip

    def pattern(self, kind: str, role: str, **fields: Any) -> str:
        """A file of every stage of a kind, the id a wildcard: what a rule declares as output."""
        return pattern(self.results, kind, role, **fields)

    def index_rows(self) -> list[dict[str, str]]:
        return [
            {"stage": s.stage, "id": s.id, "name": s.name, "path": s.dir} for s in self.stages()
        ]


def _evaltask_stages(config: Mapping[str, Any], corpus: Stage, results: str) -> dict[str, Stage]:
    """Where each evaluation task's YAML comes from: generated from the held-out split, local
    files in the hub's format, or (absent from the dict) lm-eval's built-in task on the hub."""
    from saturation.evaluate import GENERATED_TASKS, HELDOUT_TASKS_VERSION
    from saturation.io import sha256_file

    evaluation = config["evaluation"]
    generated = Stage(
        "evaltasks",
        {
            "corpus": corpus.id,
            "split": "test",
            "cloze_items": evaluation["cloze_items"],
            "perplexity_documents": evaluation["perplexity_documents"],
            "seed": evaluation["seed"],
            "version": HELDOUT_TASKS_VERSION,
        },
        name="heldout-tasks",
        results=results,
    )
    stages = {}
    for task in evaluation["tasks"]:
        if task in GENERATED_TASKS:
            stages[task] = generated
        elif task in evaluation["local_data"]:
            files = {
                split: [path, sha256_file(path)]
                for split, path in sorted(evaluation["local_data"][task].items())
            }
            stages[task] = Stage(
                "evaltasks", {"task": task, "data_files": files}, name=task, results=results
            )
    return stages


def _fingerprint(index: int, source: Mapping[str, Any]) -> dict[str, Any]:
    """source_fingerprint, its error naming the config key (a pattern that matches no file)."""
    try:
        return source_fingerprint(source)
    except CorpusError as error:
        kind = next(iter(source), "")  # one key per source (the schema)
        raise CorpusError(f"corpus.sources[{index}].{kind}: {error}") from error


def _tokenizer_recipe(config: Mapping[str, Any], corpus: Stage) -> dict[str, Any]:
    tokenizer = config["tokenizer"]
    if tokenizer["pretrained"]:  # its files, not its path, make its id
        from saturation.tokenizer import tokenizer_fingerprint

        return {"pretrained": tokenizer_fingerprint(tokenizer["pretrained"])}
    return {
        "corpus": corpus.id,
        "vocab_size": tokenizer["vocab_size"],
        "min_frequency": tokenizer["min_frequency"],
    }


def _check_scaling_runs(config: Mapping[str, Any], runs: list[Run]) -> None:
    """The law needs text runs to be fitted on, of at least two sizes (`min_parameters`, counted
    from the weights, is checked by the job)."""
    threshold = config["scaling"]["min_width"]
    if not config["scaling"]["enabled"] or threshold is None:
        return
    fitted = sorted({run.width for run in runs if run.width >= threshold})
    if len(fitted) < 2:
        raise ConfigError(
            f"scaling.min_width: {threshold} leaves widths {fitted}; fitting A and α needs at "
            "least two model sizes"
        )


def make_plan(config: Mapping[str, Any]) -> Plan:
    """All stage ids of a validated config (see saturation.config.validate_config, which also
    makes every `number` of the schema a float, so `1` and `1.0` give one id)."""
    results = config["results"]
    corpus_cfg = config["corpus"]
    corpus = Stage(
        "corpus",
        {
            "sources": [_fingerprint(i, s) for i, s in enumerate(corpus_cfg["sources"])],
            "val_fraction": corpus_cfg["val_fraction"],
            "test_fraction": corpus_cfg["test_fraction"],
            "min_chars": corpus_cfg["min_chars"],
            "max_documents": corpus_cfg["max_documents"],
            "decontaminate_words": corpus_cfg["decontaminate_words"],
        },
        name="corpus",
        results=results,
    )
    tokenizer = Stage("tokenizer", _tokenizer_recipe(config, corpus), "tokenizer", results)
    tokens = Stage(
        "tokens", {"corpus": corpus.id, "tokenizer": tokenizer.id}, name="tokens", results=results
    )
    shared = SharedStages(config, results, corpus, tokenizer, tokens,
                          _evaltask_stages(config, corpus, results))  # fmt: skip
    runs: dict[str, Run] = {}
    for run in (run for source in RUN_SOURCES for run in source(shared)):
        if run.name in runs:
            raise ConfigError(f"run {run.name!r} is configured twice ({run.source})")
        runs[run.name] = run
    if not runs:
        raise ConfigError(
            "widths: no runs to measure (list widths, synthetic languages, or models under suites)"
        )
    _check_scaling_runs(config, [r for r in runs.values() if not isinstance(r, SyntheticRun)])
    tables = Stage(
        "tables",
        {
            "runs": {
                name: {
                    "source": run.source,
                    "attributes": dict(run.attributes),
                    "analyze": run.analyze.id,
                    "evaluate": run.evaluate.id if run.evaluate else None,
                }
                | ({"heads": run.heads.id} if run.heads else {})
                for name, run in runs.items()
            },
            # each synthetic language's oracle, for the bottleneck table (saturation.tables)
            "oracles": {
                run.attributes["language"]: {
                    "oracle": run.oracle.id,
                    "rank": run.language.recipe["language"]["rank"],
                }
                for run in runs.values()
                if isinstance(run, SyntheticRun)
            },
        },
        name="tables",
        results=results,
    )
    summary = Stage(
        "summary",
        {"tables": tables.id, "summary": dict(config["summary"])},
        name="summary",
        results=results,
    )
    scaling = None
    if config["scaling"]["enabled"]:
        settings = {k: v for k, v in config["scaling"].items() if k != "enabled"}
        scaling = Stage("scaling", {"tables": tables.id, "scaling": settings}, "scaling", results)
    ngram = _ngram_stage(config, tokens, runs.values(), results)
    figures = Stage(
        "figures",
        {
            "tables": tables.id,
            # saturation.figures.FigureOptions
            "options": {
                "head": config["figures"]["head"],
                "confidence": config["summary"]["confidence"],
            },
        }
        | ({"scaling": scaling.id} if scaling else {})
        | ({"ngram": ngram.id} if ngram else {}),
        name="figures",
        results=results,
    )
    return Plan(results, corpus, tokenizer, tokens, shared.evaltasks, runs, tables, summary,
                scaling, ngram, figures)  # fmt: skip


def _ngram_stage(
    config: Mapping[str, Any], tokens: Stage, runs: Iterable[Run], results: str
) -> Stage | None:
    """The data's dimensionality on the shared text tokens: only where a run trains on them, so
    a config of suites or synthetic languages alone never builds the corpus's tokens for it."""
    settings = dict(config["ngram"])
    if not settings.pop("enabled") or not any(run.tokens.id == tokens.id for run in runs):
        return None
    return Stage("ngram", {"tokens": tokens.id} | settings, "ngram", results)
