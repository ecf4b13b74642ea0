"""The logged training curve (metrics.jsonl) and the progress bar: what a run shows as it goes.

A resumed run writes the same log as one never interrupted: lines past the resume point are
dropped (`truncate_metrics`), and the open window of steps since the last line is saved with
every checkpoint (`LogWindow`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from saturation.io import write_text_atomic
from saturation.train import distributed
from saturation.train.distributed import World

log = logging.getLogger(__name__)


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop log lines past the resume point (the resumed run writes them again) and lines cut off
    by a crash or a full disk; atomically, so a kill in here cannot lose the log."""
    if not path.exists():
        return
    kept, text = [], path.read_text()
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            step = json.loads(line)["step"]
        except (ValueError, KeyError, TypeError) as err:
            log.warning("%s line %d is not a metrics record (%s): dropped", path, number, err)
            continue
        if step <= last_step:
            kept.append(line + "\n")
    if "".join(kept) != text:
        write_text_atomic(path, "".join(kept))


class LogWindow:
    """The steps since the last metrics line: their summed loss (on the device), count and time.

    Saved with every checkpoint, so a run resumed between two log lines writes the same next
    line as one never interrupted: its mean covers the whole window, not the steps since resume.
    Each rank's own sum is saved and restored, since the mean over ranks of a restored mean
    would round differently from that of the ranks' own sums.
    """

    def __init__(self, world: World, device: torch.device, saved: dict[str, Any] | None = None):
        saved = saved or {"loss_sums": [0.0] * world.size, "steps": 0, "seconds": 0.0}
        sums = saved["loss_sums"]
        own = sums[world.rank] if len(sums) == world.size else sum(sums) / len(sums)
        self.loss_sum = torch.tensor(own, dtype=torch.float32, device=device)
        self.steps: int = saved["steps"]
        self.start = time.perf_counter() - saved["seconds"]

    def add(self, loss: torch.Tensor) -> None:
        self.loss_sum += loss
        self.steps += 1

    def close(self, world: World) -> tuple[float, float, int]:
        """(mean loss over the window and the ranks, seconds, steps) and start the next window."""
        mean = distributed.mean_over_ranks(world, self.loss_sum / self.steps).item()
        seconds, steps = time.perf_counter() - self.start, self.steps
        self.loss_sum.zero_()
        self.steps, self.start = 0, time.perf_counter()
        return mean, seconds, steps

    def saved(self, world: World) -> dict[str, Any]:
        """What a resume needs; every rank calls it (the ranks' sums are gathered)."""
        return {"loss_sums": distributed.gather_from_ranks(world, self.loss_sum),
                "steps": self.steps, "seconds": time.perf_counter() - self.start}  # fmt: skip


@contextlib.contextmanager
def progress_bar(total: int, initial: int, enabled: bool) -> Iterator[tqdm]:
    """Steps, loss and tokens/s on stderr (the job's log): often when watched, every 10 s not."""
    interactive = sys.stderr.isatty()
    bar = tqdm(
        total=total,
        initial=initial,
        unit="step",
        disable=not enabled,
        dynamic_ncols=True,
        mininterval=0.2 if interactive else 10.0,
        file=sys.stderr,
    )
    try:
        yield bar
    finally:
        bar.close()
