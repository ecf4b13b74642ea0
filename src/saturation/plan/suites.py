"""Runs whose checkpoints someone else published: the Pythia suite and any causal LM on the hub or
on disk (`suites` in the config), measured by the same stages as the runs trained here.

A suite run is one model; its revisions (Pythia's `step{N}` branches) are its checkpoints. Its
stages: `tokenizer` (the model's own tokenizer, copied from its snapshot: workflow/rules/suites.smk),
`tokens` (the corpus's held-out splits in that tokenizer: the shared `tokenize` rule), `harvest`
(each revision resolved to a snapshot of the HF cache, downloaded first where allowed, its files
hashed into the one manifest format), then the shared measurement stages.

Nothing here downloads or imports torch: the plan reads at most a cached config.json, for the
model's family, width and depth (Pythia's come from a table until it is cached; the two agree for
the real suite).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from saturation.checkpoints import read_config, weight_files
from saturation.config import ConfigError
from saturation.plan.runs import Run, SharedStages
from saturation.plan.stages import Stage

# Pythia (Biderman et al., 2023; ../docs/SCIENCE-NOTES.md): size -> (layers, width, heads)
PYTHIA_SHAPES = {
    "14m": (6, 128, 4), "31m": (6, 256, 8), "70m": (6, 512, 8), "160m": (12, 768, 12),
    "410m": (24, 1024, 16), "1b": (16, 2048, 8), "1.4b": (24, 2048, 16), "2.8b": (32, 2560, 32),
    "6.9b": (32, 4096, 32), "12b": (36, 5120, 40),
}  # fmt: skip
PYTHIA_HEAD_ROWS = 50_304  # 50,277 tokens, padded
PYTHIA_TOKENS_PER_STEP = 1024 * 2048  # batch 1024 sequences of 2048 tokens
PYTHIA_LAST_STEP = 143_000
PYTHIA_CONTEXT = 2048
_STEP_REVISION = re.compile(r"^step(\d+)$")


def pythia_schedule() -> list[int]:
    """The 154 published checkpoints: 0, 1, 2, 4, …, 512, then every 1000 steps to 143,000."""
    return [0] + [2**i for i in range(10)] + list(range(1000, PYTHIA_LAST_STEP + 1, 1000))


def pythia_parameters(size: str) -> int:
    """All parameters of a Pythia model, padded head rows included: 2·V·d + L·(12d² + 13d) + 2d."""
    layers, d, _ = PYTHIA_SHAPES[size]
    return 2 * PYTHIA_HEAD_ROWS * d + layers * (12 * d * d + 13 * d) + 2 * d


def pythia_steps(pythia: Mapping[str, Any]) -> list[int]:
    """The configured subset of the schedule: `steps`, the multiples of `every` (and the last
    step), or all 154."""
    schedule = pythia_schedule()
    if pythia["steps"] is not None:
        return sorted(set(pythia["steps"]))
    if pythia["every"] is not None:
        return [s for s in schedule if s % pythia["every"] == 0 or s == PYTHIA_LAST_STEP]
    return schedule


@dataclass(frozen=True)
class Revision:
    """One checkpoint of a suite run: where it is (a hub revision, or a folder) and when."""

    revision: str  # the hub revision (branch, tag or commit); "" for a local folder
    step: int
    tokens: int  # tokens seen at this step (0 where the suite does not say)


@dataclass(frozen=True)
class SuiteRun(Run):
    """A published model whose revisions are the checkpoints (source "suite")."""

    source: ClassVar[str] = "suite"
    harvest_rule: ClassVar[str] = "harvest_suite"

    repo: str | None  # hub repo id, or None for a local folder
    path: str | None
    revisions: tuple[Revision, ...]
    tokenizer: Stage  # the model's tokenizer, which makes `tokens`

    def own_stages(self) -> list[Stage]:
        """Its tokenizer and token files (shared by runs of one tokenizer: one id, one job)."""
        return [self.tokenizer, self.tokens]

    @property
    def checkpoint_steps(self) -> list[int]:
        return [r.step for r in self.revisions]


def cache_dir(config: Mapping[str, Any]) -> str | None:
    return config["suites"]["cache_dir"]


def downloads_allowed(config: Mapping[str, Any]) -> bool:
    """`suites.download`, unless huggingface_hub is told to stay offline (HF_HUB_OFFLINE)."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}
    return config["suites"]["download"] and not offline


def cached_file(repo: str, revision: str, filename: str, cache: str | None) -> str | None:
    """The file of a repo's revision in the local HF cache, or None: never the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, cache_dir=cache, revision=revision)
    return found if isinstance(found, str) else None


def missing_revisions(runs: Mapping[str, Run], cache: str | None) -> list[tuple[str, str]]:
    """(repo, revision) of every configured hub revision absent from the cache."""
    return [
        (run.repo, r.revision)
        for run in runs.values()
        if isinstance(run, SuiteRun) and run.repo
        for r in run.revisions
        if cached_file(run.repo, r.revision, "config.json", cache) is None
    ]


# config.json keys of the hidden size and depth, across families
_WIDTH_KEYS = ("hidden_size", "n_embd", "d_model")
_LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")


def _shape_of(model_config: Mapping[str, Any]) -> dict[str, Any]:
    shape = {"family": model_config.get("model_type", "unknown")}
    for name, keys in (("width", _WIDTH_KEYS), ("layers", _LAYER_KEYS)):
        value = next((model_config[k] for k in keys if k in model_config), None)
        if value is not None:
            shape[name] = value
    return shape


def _entry_steps(where: str, entry: Mapping[str, Any], revisions: list[str]) -> list[int]:
    if "steps" in entry:
        if len(entry["steps"]) != len(revisions):
            raise ConfigError(
                f"{where}.steps: {len(entry['steps'])} steps for {len(revisions)} revisions"
            )
        return list(entry["steps"])
    named = [_STEP_REVISION.match(r) for r in revisions]
    if all(named):
        return [int(m.group(1)) for m in named]
    return list(range(len(revisions)))


def local_folder_recipe(where: str, path: str) -> dict[str, Any]:
    """What identifies a local checkpoint folder without hashing its weights at every parse: its
    config.json's sha256 and each weight file's name, size and modification time (the harvest
    job hashes the weights themselves into the manifest)."""
    from saturation.io import sha256_file

    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{where}.path: {path!r} holds no config.json (not a model folder)")
    try:
        weights = weight_files(folder)
    except (FileNotFoundError, ValueError) as error:
        raise ConfigError(f"{where}.path: {error}") from error
    return {
        "path": str(folder.resolve()),
        "config": sha256_file(folder / "config.json"),
        "weights": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in weights],
    }


@dataclass(frozen=True)
class _Model:
    """One configured model, before its stages: the plan's view of a `suites` entry."""

    name: str
    where: str  # its config key, for errors
    repo: str | None
    folder: dict[str, Any] | None  # local_folder_recipe, for a `path` entry
    revisions: tuple[Revision, ...]
    attributes: dict[str, Any]
    seq_len: int
    tokenizer_revision: str  # the revision whose tokenizer tokenizes its held-out text
    tokenizer_repo: str | None


def _pythia_models(config: Mapping[str, Any]) -> Iterator[_Model]:
    pythia = config["suites"]["pythia"]
    if not pythia["sizes"]:
        return
    steps = pythia_steps(pythia)
    schedule = set(pythia_schedule())
    if off := sorted(set(steps) - schedule):
        raise ConfigError(f"suites.pythia.steps: {off} are not Pythia checkpoints (0, 1, 2, 4, …, "
                          f"512, then every 1000 to {PYTHIA_LAST_STEP})")  # fmt: skip
    suffix = "-deduped" if pythia["deduped"] else ""
    cache = config["suites"]["cache_dir"]
    revisions = tuple(Revision(f"step{s}", s, s * PYTHIA_TOKENS_PER_STEP) for s in steps)
    first = f"EleutherAI/pythia-{pythia['sizes'][0]}{suffix}"
    for size in pythia["sizes"]:
        repo = f"EleutherAI/pythia-{size}{suffix}"
        layers, width, _ = PYTHIA_SHAPES[size]
        attributes = {"family": "gpt_neox", "width": width, "layers": layers}
        cached = cached_file(repo, revisions[-1].revision, "config.json", cache)
        attributes |= (_shape_of(read_config(Path(cached).parent)) if cached else {}) | {"seed": 0}
        # the sizes share one tokenizer: the held-out text is tokenized once, with the first
        # size's, and each checkpoint's own tokenizer is checked against it when it is measured
        yield _Model(f"pythia-{size}{suffix}", "suites.pythia", repo, None, revisions,
                     attributes, min(config["suites"]["seq_len"], PYTHIA_CONTEXT),
                     revisions[-1].revision, first)  # fmt: skip


def _listed_models(config: Mapping[str, Any]) -> Iterator[_Model]:
    suites = config["suites"]
    for i, entry in enumerate(suites["models"]):
        where = f"suites.models[{i}]"
        if ("hf" in entry) == ("path" in entry):
            raise ConfigError(f"{where}: give exactly one of hf (a hub repo) or path (a folder)")
        if "path" in entry and "revisions" in entry:
            raise ConfigError(f"{where}.revisions: a local folder has no revisions")
        repo = entry.get("hf")
        names = list(entry.get("revisions", ["main"])) if repo else [""]
        steps = _entry_steps(where, entry, names)
        per_step = entry.get("tokens_per_step", 0)
        revisions = tuple(Revision(r, s, s * per_step) for r, s in zip(names, steps, strict=True))
        if len({r.step for r in revisions}) != len(revisions):
            raise ConfigError(f"{where}: two revisions at one step ({steps})")
        folder = local_folder_recipe(where, entry["path"]) if not repo else None
        if folder:
            model_config = read_config(entry["path"])
        else:
            found = cached_file(repo, names[-1], "config.json", suites["cache_dir"])
            model_config = read_config(Path(found).parent) if found else {}
        attributes = {"family": "unknown"} | _shape_of(model_config)
        attributes |= {k: entry[k] for k in ("width", "layers") if k in entry} | {"seed": 0}
        if "width" not in attributes:
            raise ConfigError(
                f"{where}.width: {repo} is not in the HF cache, so its hidden size is unknown "
                "before it is downloaded; state it"
            )
        seq_len = entry.get("seq_len", suites["seq_len"])
        yield _Model(entry["name"], where, repo, folder, revisions, attributes, seq_len,
                     names[-1], repo)  # fmt: skip


def suite_runs(shared: SharedStages) -> Iterator[SuiteRun]:
    """Every configured suite model, each scored on the corpus's held-out text in its own
    tokenizer."""
    for model in (*_pythia_models(shared.config), *_listed_models(shared.config)):
        if model.folder:
            tokenizer_recipe = {"folder": model.folder}
            source: dict[str, Any] = {"folder": model.folder}
        else:
            tokenizer_recipe = {"hub": [model.tokenizer_repo, model.tokenizer_revision]}
            source = {"hub": model.repo}
        tokenizer = shared.stage("tokenizer", tokenizer_recipe, model.name)
        tokens = shared.stage(
            "tokens", {"corpus": shared.corpus.id, "tokenizer": tokenizer.id}, model.name
        )
        harvest = shared.stage(
            "harvest",
            source | {"revisions": [[r.revision, r.step, r.tokens] for r in model.revisions]},
            model.name,
        )
        yield SuiteRun(
            name=model.name,
            attributes=model.attributes,
            tokens=tokens,
            harvest=harvest,
            **shared.measurements(
                model.name, harvest, tokens, model.seq_len, False, model.attributes["width"]
            ),
            repo=model.repo,
            path=model.folder["path"] if model.folder else None,
            revisions=model.revisions,
            tokenizer=tokenizer,
        )
