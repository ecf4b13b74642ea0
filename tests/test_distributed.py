"""Data-parallel training (torchrun + DDP, gloo on CPU) against single-process training."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest
import torch

from saturation.checkpoints import list_checkpoint_dirs
from saturation.train.distributed import World
from tests.conftest import metrics_lines, start_training, tiny_recipe, train_tiny

STEPS = 50
# fp32 on CPU: two half-batch gradients averaged by all-reduce differ from the full-batch gradient
# only in summation order; after 50 AdamW steps the losses agree far below this.
LOSS_TOLERANCE = 1e-5


def losses(run_dir: Path) -> list[float]:
    return [
        json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]


def test_rows_split_the_global_batch() -> None:
    rows = [World(rank, 4).rows(8) for rank in range(4)]
    assert [(r.start, r.stop) for r in rows] == [(0, 2), (2, 4), (4, 6), (6, 8)]
    with pytest.raises(ValueError, match="not divisible by 3"):
        World(0, 3).rows(8)


@pytest.fixture(scope="module")
def single_and_parallel(
    tmp_path_factory: pytest.TempPathFactory, tiny_data: dict
) -> tuple[Path, Path]:
    recipe = tiny_recipe(steps=STEPS, batch_size=8, checkpoint_steps=[0, 25, STEPS])
    single = tmp_path_factory.mktemp("single")
    parallel = tmp_path_factory.mktemp("parallel")
    train_tiny(single, tiny_data, recipe, log_every=1)
    train_tiny(parallel, tiny_data, recipe, log_every=1, processes=2)  # through torchrun
    return single, parallel


def test_two_processes_match_one_within_fp32_tolerance(single_and_parallel) -> None:
    single, parallel = single_and_parallel
    one, two = losses(single), losses(parallel)
    assert len(one) == len(two) == STEPS  # rank 0 alone wrote the log
    worst = max(abs(a - b) for a, b in zip(one, two, strict=True))
    print(f"2×(batch/2) vs 1×batch over {STEPS} steps: max |Δloss| = {worst:.2e}")
    assert worst < LOSS_TOLERANCE
    summary = json.loads((parallel / "train.json").read_text())
    assert "data parallel over 2 processes" in summary["speed_path"]["notes"]
    assert summary["tokens_seen"] == json.loads((single / "train.json").read_text())["tokens_seen"]


def test_parallel_checkpoints_load_with_from_pretrained(single_and_parallel) -> None:
    from transformers import GPTNeoXForCausalLM

    single, parallel = single_and_parallel
    steps = [e["step"] for e in json.loads((parallel / "train.json").read_text())["checkpoints"]]
    assert steps == [0, 25, STEPS]
    final = parallel / "checkpoints" / f"step{STEPS}"
    reference = GPTNeoXForCausalLM.from_pretrained(single / "checkpoints" / f"step{STEPS}")
    model = GPTNeoXForCausalLM.from_pretrained(final)
    expected, got = reference.state_dict(), model.state_dict()
    for name, a in expected.items():
        b = got[name]
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)


def test_sigterm_to_the_launcher_stops_every_rank_at_one_step_and_resumes_exactly(
    tiny_data: dict, tmp_path: Path
) -> None:
    """SLURM signals the job's processes; the launcher passes SIGTERM through torchrun to the
    ranks, which agree on a step, checkpoint it once (rank 0) and exit for a requeue."""
    steps = 400
    recipe = tiny_recipe(steps=steps, batch_size=8, checkpoint_steps=[0, 25, steps])
    interrupted, reference = tmp_path / "interrupted", tmp_path / "reference"
    job = start_training(interrupted, tiny_data, recipe, processes=2)
    while not (interrupted / "checkpoints" / "step25" / "checkpoint.json").exists():
        assert job.poll() is None, job.stderr.read()
        time.sleep(0.01)
    time.sleep(random.uniform(0.0, 0.5))
    job.send_signal(signal.SIGTERM)
    _, stderr = job.communicate(timeout=120)
    stopped_at = max(step for step, _ in list_checkpoint_dirs(interrupted / "checkpoints"))
    assert job.returncode != 0 and f"training stopped at step {stopped_at}" in stderr, stderr
    assert 25 < stopped_at < steps, f"stopped at step {stopped_at}"

    summary = train_tiny(interrupted, tiny_data, recipe, processes=2)
    assert summary["resumed_from"] == stopped_at
    train_tiny(reference, tiny_data, recipe, processes=2)
    final = f"checkpoints/step{steps}/model.safetensors"
    assert (interrupted / final).read_bytes() == (reference / final).read_bytes()
    # a stop between log lines: each rank's share of the open window was saved and restored
    assert metrics_lines(interrupted) == metrics_lines(reference)


def test_a_data_parallel_resume_between_log_lines_logs_the_uninterrupted_curve(
    tiny_data: dict, tmp_path: Path
) -> None:
    """Each rank restores its own share of the open log window: restoring their mean instead
    rounded differently at steps 8 and 16 after stops at 3 and 13 (found by review)."""
    recipe = tiny_recipe(steps=16, batch_size=8, checkpoint_steps=[0, 16])
    reference = tmp_path / "reference"
    train_tiny(reference, tiny_data, recipe, log_every=8, processes=2)
    for stop in (3, 13):
        interrupted = tmp_path / f"stopped-at-{stop}"
        with pytest.raises(Exception):  # noqa: B017 - torchrun's ChildFailedError
            train_tiny(interrupted, tiny_data, recipe, log_every=8, processes=2, stop_at_step=stop)
        assert max(step for step, _ in list_checkpoint_dirs(interrupted / "checkpoints")) == stop
        train_tiny(interrupted, tiny_data, recipe, log_every=8, processes=2)
        assert metrics_lines(interrupted) == metrics_lines(reference), stop
