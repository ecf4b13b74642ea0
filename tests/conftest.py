"""Shared test helpers: the repository layout and a real `snakemake` run in a scratch folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from saturation.figures import FIGURES

ROOT = Path(__file__).resolve().parents[1]
# The figures every config draws (the scaling figure needs `scaling.enabled`)
# the figures of the micro config: no scaling stage, no synthetic language
DRAWN_FIGURES = [name for name, table in FIGURES.items() if table not in ("scaling", "bottleneck")]
SNAKEFILE = ROOT / "Snakefile"
MICRO = ROOT / "configs" / "micro.yaml"


def snakemake(
    workdir: Path, *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run the real workflow with `workdir` as its working directory (results land there)."""
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE),
        "--directory", str(workdir), "--cores", "2", "--nocolor", *args,
    ]  # fmt: skip
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def write_config(path: Path, overrides: dict) -> Path:
    path.write_text(yaml.safe_dump(overrides))
    return path


@pytest.fixture
def micro_config() -> dict:
    return yaml.safe_load(MICRO.read_text())


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real (small) corpus → BPE tokenizer → token files, built with the package's own code."""
    from saturation.corpus import build_corpus
    from saturation.tokenizer import train_bpe_tokenizer
    from saturation.tokens import tokenize_split

    root = tmp_path_factory.mktemp("tiny_data")
    build_corpus(
        [{"builtin": "kjv"}], root / "corpus", val_fraction=0.1, test_fraction=0.1,
        max_documents=150,
    )  # fmt: skip
    train_bpe_tokenizer(root / "corpus" / "train.jsonl", root / "tokenizer", vocab_size=300)
    paths = {"tokenizer": root / "tokenizer"}
    for split in ("train", "val"):
        paths[split] = root / f"{split}.bin"
        tokenize_split(
            root / "corpus" / f"{split}.jsonl", root / "tokenizer", paths[split],
            root / f"{split}.json", threads=1,
        )  # fmt: skip
    return paths


def tiny_recipe(steps: int = 12, **train: object) -> dict:
    """A pretrain recipe of the shape saturation.plan produces, for a model that trains in seconds."""
    return {
        "model": {"width": 16, "layers": 1, "heads": 2, "rotary_pct": 0.25, "mlp_ratio": 4,
                  "vocab_multiple": 128},
        "train": {"seed": 0, "steps": steps, "batch_size": 4, "seq_len": 16, "lr": 3e-3,
                  "min_lr_ratio": 0.1, "warmup_steps": 2, "betas": [0.9, 0.95], "eps": 1e-8,
                  "weight_decay": 0.1, "grad_clip": 1.0, "precision": "auto", "compile": "off",
                  "checkpoint_steps": [0, 1, 2, 4, 8, steps]} | dict(train),
    }  # fmt: skip


def metrics_lines(run_dir: Path) -> list[dict]:
    """The logged curve without its throughput, the one field that depends on the wall clock."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "tokens_per_s"} for line in lines]


def train_tiny(
    run_dir: Path, data: dict[str, Path], recipe: dict | None = None, **runtime: object
) -> dict:
    """Train (or resume) a tiny run; `runtime` overrides the schema's runtime options."""
    from saturation.runtime import Runtime
    from saturation.train.launch import train_from_recipe
    from saturation.train.loop import RunFiles

    files = RunFiles(run_dir, data["train"], data["tokenizer"], run_dir / "metrics.jsonl",
                     run_dir / "train.json")  # fmt: skip
    options = {"device": "cpu", "threads": 1, "log_every": 2, "progress": False} | runtime
    return train_from_recipe(recipe or tiny_recipe(), files, Runtime.from_config(**options))


def start_training(
    run_dir: Path, data: dict[str, Path], recipe: dict, **runtime: object
) -> subprocess.Popen[str]:
    """`train_tiny` in a child process, so a test can signal it as SLURM would."""
    driver = (
        "import json, sys; from pathlib import Path; from tests.conftest import train_tiny; "
        "train_tiny(Path(sys.argv[1]), {k: Path(v) for k, v in json.loads(sys.argv[2]).items()}, "
        "json.loads(sys.argv[3]), **json.loads(sys.argv[4]))"
    )
    paths = json.dumps({k: str(v) for k, v in data.items()})
    return subprocess.Popen(
        [sys.executable, "-c", driver, str(run_dir), paths, json.dumps(recipe), json.dumps(runtime)],
        cwd=ROOT, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_data: dict[str, Path]) -> Path:
    run_dir = tmp_path_factory.mktemp("tiny_run")
    train_tiny(run_dir, tiny_data)
    return run_dir


@pytest.fixture(scope="session")
def hub_cache(
    tmp_path_factory: pytest.TempPathFactory, tiny_data: dict[str, Path]
):  # -> tests.hub_cache.HubCache (imported lazily: it pulls in torch)
    """An offline HF hub cache of tiny models sharing `tiny_data`'s tokenizer (tests/hub_cache.py)."""
    from saturation.tokens import open_tokens
    from tests.hub_cache import build_hub_cache

    return build_hub_cache(
        tmp_path_factory.mktemp("hub"), tiny_data["tokenizer"], open_tokens(tiny_data["train"])
    )
