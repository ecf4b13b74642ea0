"""Published checkpoints on the job side: each (repo, revision) resolved to a folder of the HF
cache, downloaded first where the config allows, and its weights hashed into the manifest.

The cache is huggingface_hub's own (`models--org--name/snapshots/<commit>/`), so a cluster's
pre-filled cache, a laptop's and the one `snapshot_download` fills are all read the same way, and
a download interrupted half-way resumes from its `.incomplete` blobs. Only the files a
measurement reads are fetched (`SNAPSHOT_FILES`): config, weights, tokenizer.

`python -m saturation.hub estimate --configfile FILE …` says what a config would download, and
how much, before anything is.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from saturation.checkpoints import (
    WEIGHT_FORMATS,
    CheckpointEntry,
    CorruptCheckpointError,
    weight_files,
)
from saturation.io import sha256_file, write_json_atomic

if TYPE_CHECKING:
    from saturation.plan.runs import Run

logger = logging.getLogger(__name__)

CONFIG_FILES = ["config.json", "generation_config.json"]
WEIGHT_FILES = [p for single, pattern in WEIGHT_FORMATS for p in (pattern, f"{single}.index.json")]
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json"]  # fmt: skip
SNAPSHOT_FILES = CONFIG_FILES + WEIGHT_FILES + TOKENIZER_FILES
_SHA256_HEX = 64


class MissingRevisionError(FileNotFoundError):
    """A revision the config names is not in the local cache, and may not be downloaded."""


def resolve_snapshot(
    repo: str,
    revision: str,
    cache_dir: str | None,
    download: bool,
    files: Sequence[str] = SNAPSHOT_FILES,
    workers: int = 4,
) -> Path:
    """The snapshot folder of `repo` at `revision`: from the cache alone, or downloaded (only
    `files`, resumably, `workers` files at a time, with huggingface_hub's progress bars)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    if download:
        files = one_weight_format(repo, revision, files)
    try:
        folder = snapshot_download(
            repo, revision=revision, cache_dir=cache_dir, local_files_only=not download,
            allow_patterns=list(files), max_workers=workers,
        )  # fmt: skip
    except LocalEntryNotFoundError as error:
        raise MissingRevisionError(
            f"{repo} revision {revision!r} is not in the HF cache ({cache_dir or 'default'}) and "
            "suites.download is off (or HF_HUB_OFFLINE is set)"
        ) from error
    return Path(folder)


def one_weight_format(repo: str, revision: str, files: Sequence[str]) -> list[str]:
    """Many repos hold the same weights twice (safetensors and pytorch_model.bin, GPT-2 also TF
    and Flax): fetch the safetensors alone where the revision has them (asks the hub)."""
    from huggingface_hub import list_repo_files

    if not any(pattern.startswith("pytorch_model") for pattern in files):
        return list(files)
    listed = list_repo_files(repo, revision=revision)
    if any(name.endswith(".safetensors") for name in listed):
        return [pattern for pattern in files if not pattern.startswith("pytorch_model")]
    return list(files)


def commit_of(snapshot: Path) -> str:
    """The commit a cache snapshot holds: the folder's name (not a hash for a plain folder)."""
    return snapshot.name


def hash_weights(folder: Path) -> dict[str, str]:
    """sha256 of every weight file. In the HF cache an LFS file's blob is named by its sha256:
    a file whose content no longer matches its blob's name is refused, naming it."""
    digests = {}
    for file in weight_files(folder):
        digest = sha256_file(file)
        blob = file.resolve().name
        if file.is_symlink() and len(blob) == _SHA256_HEX and blob != digest:
            raise CorruptCheckpointError(
                f"{file}: sha256 {digest[:12]}… differs from its cache blob {blob[:12]}… "
                "(modified or truncated after download)"
            )
        digests[file.name] = digest
    return digests


@dataclass(frozen=True)
class Harvested:
    entry: CheckpointEntry
    record: dict[str, Any]  # what revisions.json keeps of it


def harvest_revision(
    folder: Path, revision: str, step: int, tokens: int, repo: str | None
) -> Harvested:
    """One checkpoint folder as a manifest entry; its digest is the first weight file's (the
    whole set is kept in revisions.json)."""
    digests = hash_weights(folder)
    record = {"repo": repo, "revision": revision, "commit": commit_of(folder) if repo else None,
              "step": step, "tokens": tokens, "path": str(folder), "sha256": digests}  # fmt: skip
    return Harvested(CheckpointEntry(step, tokens, str(folder), next(iter(digests.values()))),
                     record)  # fmt: skip


def harvest_suite(
    recipe: Mapping[str, Any], cache_dir: str | None, download: bool, workers: int
) -> list[Harvested]:
    """Every revision of a suite run's harvest recipe (saturation.plan.suites), in step order."""
    harvested = []
    for revision, step, tokens in sorted(recipe["revisions"], key=lambda r: r[1]):
        if "hub" in recipe:
            repo = recipe["hub"]
            folder = resolve_snapshot(repo, revision, cache_dir, download, workers=workers)
        else:
            repo, folder = None, Path(recipe["folder"]["path"])
        harvested.append(harvest_revision(folder, revision, step, tokens, repo))
        logger.info("step %d: %s", step, folder)
    return harvested


def write_revisions(path: Path, harvested: Sequence[Harvested]) -> None:
    write_json_atomic(path, {"revisions": [h.record for h in harvested]})


def copy_tokenizer(recipe: Mapping[str, Any], out_dir: Path, cache_dir: str | None,
                   download: bool) -> None:  # fmt: skip
    """A suite model's tokenizer (tokenizer stage recipe) saved into the results folder."""
    from saturation.tokenizer import copy_pretrained_tokenizer

    if "hub" in recipe:
        repo, revision = recipe["hub"]
        folder = resolve_snapshot(repo, revision, cache_dir, download, TOKENIZER_FILES)
    else:
        folder = Path(recipe["folder"]["path"])
    copy_pretrained_tokenizer(str(folder), out_dir)


# --- what a config would download --------------------------------------------------------------

_BYTES_PER_PARAMETER = 2  # the Pythia suite stores fp16 weights
_GB = 1e9


def pythia_revision_bytes(size: str) -> int:
    """One Pythia revision's weight files, computed: fp16 parameters plus the causal-mask buffer
    (2048 × 2048 bytes) each layer's file carries. pythia-70m: 166 MB, as the hub lists."""
    from saturation.plan.suites import PYTHIA_CONTEXT, PYTHIA_SHAPES, pythia_parameters

    layers = PYTHIA_SHAPES[size][0]
    return _BYTES_PER_PARAMETER * pythia_parameters(size) + layers * PYTHIA_CONTEXT**2


def download_estimate(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per suite run: its revisions, how many the cache lacks, and the bytes those weigh:
    computed for Pythia, asked of the hub (file sizes) for other models when downloads are
    allowed, else unknown (None)."""
    from saturation.plan import make_plan
    from saturation.plan.suites import PYTHIA_SHAPES, SuiteRun, cached_file, downloads_allowed

    plan = make_plan(config)
    cache = config["suites"]["cache_dir"]
    rows = []
    for run in plan.runs.values():
        if not isinstance(run, SuiteRun) or not run.repo:
            continue
        missing = [r.revision for r in run.revisions
                   if cached_file(run.repo, r.revision, "config.json", cache) is None]  # fmt: skip
        size = run.repo.removeprefix("EleutherAI/pythia-").removesuffix("-deduped")
        if size in PYTHIA_SHAPES and run.repo.startswith("EleutherAI/pythia-"):
            per_revision: int | None = pythia_revision_bytes(size)
        elif downloads_allowed(config) and missing:
            per_revision = _hub_revision_bytes(run.repo, missing[-1], cache)
        else:
            per_revision = None
        rows.append({
            "run": run.name, "repo": run.repo, "revisions": len(run.revisions),
            "missing": len(missing), "measurements": checkpoint_measurements(run, config),
            "download_gb": None if per_revision is None else len(missing) * per_revision / _GB,
            "disk_gb": None if per_revision is None else len(run.revisions) * per_revision / _GB,
        })  # fmt: skip
    return rows


def checkpoint_measurements(run: Run, config: Mapping[str, Any]) -> int:
    """Per-checkpoint measurements of a run (its analysis and evaluation jobs take them one
    after another): one analysis per revision, and each selected revision × task evaluated;
    "best" counted as one more checkpoint, at most."""
    from saturation.plan.select import planned_evaluations

    evaluated = planned_evaluations(config["evaluation"]["checkpoints"], run.checkpoint_steps)
    tasks = len(run.evaluate.recipe["tasks"]) if run.evaluate else 0
    return len(run.checkpoint_steps) + evaluated * tasks


def _hub_revision_bytes(repo: str, revision: str, cache: str | None) -> int:
    """The files a harvest would fetch of one revision, as the hub lists them (no download)."""
    from huggingface_hub import snapshot_download

    patterns = one_weight_format(repo, revision, SNAPSHOT_FILES)
    listed = snapshot_download(repo, revision=revision, cache_dir=cache, dry_run=True,
                               allow_patterns=patterns)  # fmt: skip
    return sum(item.file_size for item in listed)


def _format_estimate(rows: Sequence[Mapping[str, Any]]) -> str:
    def gb(value: float | None) -> str:
        return "?" if value is None else f"{value:,.1f}"

    lines = [f"{'run':<14} {'repo':<30} {'revisions':>9} {'missing':>8} {'download GB':>12} "
             f"{'disk GB':>9} {'measures':>8}"]  # fmt: skip
    for row in rows:
        lines.append(f"{row['run']:<14} {row['repo']:<30} {row['revisions']:>9} "
                     f"{row['missing']:>8} {gb(row['download_gb']):>12} {gb(row['disk_gb']):>9} "
                     f"{row['measurements']:>8}")  # fmt: skip
    known = [r for r in rows if r["download_gb"] is not None]
    unknown = len(rows) - len(known)
    lines.append(
        f"total: {sum(r['download_gb'] for r in known):,.1f} GB to download"
        + (
            f" (+ {unknown} models of unknown size: only Pythia's is computed offline)"
            if unknown
            else ""
        )
        + f", {sum(r['measurements'] for r in rows):,} checkpoint measurements (analysis,"
        " evaluation; one job per run for each)"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from saturation.config import ConfigError, load_config

    parser = argparse.ArgumentParser(prog="python -m saturation.hub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    estimate = commands.add_parser("estimate", help="what a config's suites would download")
    estimate.add_argument("--configfile", nargs="+", type=Path, default=[])
    estimate.add_argument("--json", action="store_true", help="rows as JSON")
    args = parser.parse_args(argv)
    try:
        rows = download_estimate(load_config(*args.configfile))
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(rows, indent=2) if args.json else _format_estimate(rows))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
