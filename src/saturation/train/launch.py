"""The pretrain stage's entry point: a recipe from the plan, run as given, in this process or,
data parallel, in one torchrun process per GPU (`python -m saturation.train.launch`)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from saturation.model.shape import shape_from_recipe
from saturation.runtime import Runtime
from saturation.tokens import read_header
from saturation.train import distributed
from saturation.train.distributed import World
from saturation.train.loop import RunFiles, train_run
from saturation.train.recipe import TrainConfig
from saturation.train.signals import STOPPED_EXIT_CODE, TrainingStopped

log = logging.getLogger(__name__)


def train_from_recipe(recipe: dict[str, Any], files: RunFiles, runtime: Runtime) -> dict[str, Any]:
    """Train (or resume) the run of a pretrain recipe (saturation.plan.pretrained).

    With `runtime.processes` > 1 (and not already inside a torchrun world) the run is trained
    data parallel by that many torchrun processes, one GPU each on a GPU node, the job's threads
    shared among them (saturation.train.distributed).
    """
    if runtime.processes > 1 and not World.from_env().parallel:
        threads = max(1, runtime.threads // runtime.processes) if runtime.threads else None
        distributed.launch(runtime.processes, [
            "--recipe", json.dumps(recipe), "--files", json.dumps(files.to_dict()),
            "--runtime", runtime.replace(threads=threads).to_json(),
        ])  # fmt: skip
        return json.loads(files.summary_out.read_text())
    header = read_header(files.tokens.with_suffix(".json"))
    cfg = TrainConfig.from_dict(recipe["train"])
    shape = shape_from_recipe(recipe["model"], cfg.seq_len, header.vocab_size, header.eos_id)
    return train_run(files, shape, cfg, runtime)


def main(argv: list[str] | None = None) -> None:
    """What each torchrun process runs (see distributed.launch)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--recipe", required=True, help="the pretrain recipe, as JSON")
    parser.add_argument("--files", required=True, help="RunFiles, as JSON")
    parser.add_argument("--runtime", required=True, help="the Runtime, as JSON")
    args = parser.parse_args(argv)
    world = World.from_env()
    logging.basicConfig(
        level=logging.INFO if world.is_main else logging.WARNING,
        format=f"%(asctime)s rank{world.rank} %(name)s %(levelname)s: %(message)s",
    )
    try:
        train_from_recipe(json.loads(args.recipe), RunFiles.from_dict(json.loads(args.files)),
                          Runtime.from_json(args.runtime))  # fmt: skip
    except TrainingStopped as stopped:
        log.warning("%s", stopped)
        sys.exit(STOPPED_EXIT_CODE)


if __name__ == "__main__":
    main()
