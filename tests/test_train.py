"""Pretraining: deterministic data order, checkpoints that load with from_pretrained, exact resume."""

from __future__ import annotations

import json
import logging
import random
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, GPTNeoXForCausalLM

from saturation.checkpoints import CorruptCheckpointError, harvest, list_checkpoint_dirs
from saturation.model.shape import parameter_count
from saturation.train.data import TokenBatches
from saturation.train.metrics_log import truncate_metrics
from saturation.train.recipe import TrainConfig
from saturation.train.resume import PrecisionMismatchError
from saturation.train.signals import TrainingStopped
from saturation.train.speed import choose_speed_path
from tests.conftest import metrics_lines, start_training, tiny_recipe, train_tiny


def test_data_order_is_a_pure_function_of_seed_and_step() -> None:
    tokens = np.arange(1000, dtype=np.uint16)
    a, b = TokenBatches(tokens, 10, 8, seed=3), TokenBatches(tokens, 10, 8, seed=3)
    assert torch.equal(a.batch(57), b.batch(57))  # fresh instance, any order of calls
    assert not torch.equal(a.batch(57), TokenBatches(tokens, 10, 8, seed=4).batch(57))
    batch = a.batch(0)
    assert batch.shape == (8, 11)
    assert torch.equal(batch[:, 1:], batch[:, :-1] + 1)  # contiguous windows of the stream


def test_every_chunk_once_per_epoch() -> None:
    batches = TokenBatches(np.arange(161, dtype=np.uint16), seq_len=10, batch_size=4, seed=0)
    assert batches.n_chunks == 16
    first_epoch = np.concatenate([batches.chunk_ids(step) for step in range(4)])
    assert sorted(first_epoch) == list(range(16))
    second_epoch = np.concatenate([batches.chunk_ids(step) for step in range(4, 8)])
    assert sorted(second_epoch) == list(range(16))
    assert not np.array_equal(first_epoch, second_epoch)


def test_checkpoints_on_schedule_and_loadable(tiny_run: Path, tiny_data: dict) -> None:
    steps = [step for step, _ in list_checkpoint_dirs(tiny_run / "checkpoints")]
    assert steps == [0, 1, 2, 4, 8, 12]
    final = tiny_run / "checkpoints" / "step12"
    model = GPTNeoXForCausalLM.from_pretrained(final).eval()
    tokenizer = AutoTokenizer.from_pretrained(final)
    assert model.config.use_parallel_residual and not model.config.tie_word_embeddings
    assert model.config.rope_parameters["partial_rotary_factor"] == 0.25
    assert model.config.vocab_size % 128 == 0 and model.config.vocab_size >= len(tokenizer)
    expected = parameter_count(16, 1, model.config.vocab_size)  # the formula in SCIENCE-NOTES
    assert sum(p.numel() for p in model.parameters()) == expected
    ids = tokenizer("In the beginning", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.isfinite(model(ids).logits).all()
    summary = json.loads((tiny_run / "train.json").read_text())
    assert [c["step"] for c in summary["checkpoints"]] == steps
    assert summary["tokens_seen"] == 12 * 4 * 16
    assert summary["precision"] == "fp32"  # `auto` on CPU, resolved


def test_metrics_log_and_loss_goes_down(tiny_run: Path) -> None:
    records = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6, 8, 10, 12]
    assert set(records[0]) >= {"step", "loss", "lr", "grad_norm", "tokens_per_s"}
    assert records[-1]["loss"] < records[0]["loss"]


def test_resume_is_bit_identical(tiny_run: Path, tiny_data: dict, tmp_path: Path) -> None:
    """Stop after the step-4 checkpoint (what a kill leaves behind), resume, compare bytes."""
    run_dir = tmp_path / "interrupted"
    with pytest.raises(TrainingStopped):
        train_tiny(run_dir, tiny_data, stop_at_step=4)
    assert not (run_dir / "train.json").exists()
    kept = {p: p.stat().st_mtime_ns for p in (run_dir / "checkpoints").rglob("*")}
    summary = train_tiny(run_dir, tiny_data)
    assert summary["resumed_from"] == 4
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # nothing rewritten
    for step in (8, 12):
        ours = (run_dir / f"checkpoints/step{step}/model.safetensors").read_bytes()
        uninterrupted = (tiny_run / f"checkpoints/step{step}/model.safetensors").read_bytes()
        assert ours == uninterrupted, f"step {step} differs after resume"
    assert (run_dir / "metrics.jsonl").read_text() != ""
    steps = [
        json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [2, 4, 6, 8, 10, 12]  # no duplicated log lines after the resume


def test_resume_between_log_lines_logs_the_uninterrupted_curve(
    tiny_run: Path, tiny_data: dict, tmp_path: Path
) -> None:
    """Stopped at step 3 with log_every 2, the step-4 line must still average steps 3 and 4; and a
    line cut off by the crash (a full disk) must not stop the resume."""
    run_dir = tmp_path / "interrupted"
    with pytest.raises(TrainingStopped):
        train_tiny(run_dir, tiny_data, stop_at_step=3)
    with open(run_dir / "state" / "metrics.jsonl", "a") as live:
        live.write('{"step": 4, "tokens": 256, "lo')  # no newline: the process died here
    assert train_tiny(run_dir, tiny_data)["resumed_from"] == 3
    assert metrics_lines(run_dir) == metrics_lines(tiny_run)


def test_truncate_metrics_drops_later_and_cut_off_lines_atomically(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": step, "loss": 1.0}) + "\n" for step in (2, 4, 6)]
    path.write_text("".join(lines) + '{"step": 8, "lo')
    inode = path.stat().st_ino
    with caplog.at_level(logging.WARNING, logger="saturation.train"):
        truncate_metrics(path, 4)
    assert path.read_text() == "".join(lines[:2])
    assert path.stat().st_ino != inode  # a new file renamed over the old: a kill keeps one whole
    assert f"{path} line 4 is not a metrics record" in caplog.text


def test_corrupt_newest_checkpoint_is_moved_aside_and_written_anew(
    tiny_run: Path, tiny_data: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Its state was the only one left, so the run retrains from step 0; reaching the corrupt
    step it must write it again (not keep it), or harvest would fail on every rerun."""
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingStopped):
        train_tiny(run_dir, tiny_data, stop_at_step=4)
    weights = run_dir / "checkpoints" / "step4" / "model.safetensors"
    truncated = weights.read_bytes()[:-100]
    weights.write_bytes(truncated)
    with caplog.at_level(logging.WARNING, logger="saturation.train"):
        summary = train_tiny(run_dir, tiny_data)
    aside = run_dir / "checkpoints" / "step4.corrupt"
    assert summary["resumed_from"] is None
    assert (aside / "model.safetensors").read_bytes() == truncated  # kept for a post-mortem
    assert f"moved the checkpoint to {aside}" in caplog.text
    assert weights.read_bytes() == (tiny_run / "checkpoints/step4/model.safetensors").read_bytes()
    assert [e.step for e in harvest(run_dir / "checkpoints", [0, 1, 2, 4, 8, 12])] == [
        0, 1, 2, 4, 8, 12
    ]  # fmt: skip


def test_truncated_state_file_resumes_from_an_older_point(
    tiny_run: Path, tiny_data: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingStopped):
        train_tiny(run_dir, tiny_data, stop_at_step=4)
    state = run_dir / "state" / "step4.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="saturation.train"):
        summary = train_tiny(run_dir, tiny_data)
    assert summary["resumed_from"] is None  # step 4's was the only state: from step 0
    assert f"ignoring the resume state {state}" in caplog.text
    final = "checkpoints/step12/model.safetensors"
    assert (run_dir / final).read_bytes() == (tiny_run / final).read_bytes()
    assert metrics_lines(run_dir) == metrics_lines(tiny_run)


def test_a_stop_at_an_existing_checkpoint_resumes_there(
    tiny_run: Path, tiny_data: dict, tmp_path: Path
) -> None:
    """A run retraining over its own checkpoints (its newest state was unreadable) and stopped
    at one of them must resume there next time, not from step 0 again: under repeated
    preemption it would never get further. The kept folder is the very one written first."""
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingStopped):
        train_tiny(run_dir, tiny_data, stop_at_step=8)
    (run_dir / "state" / "step8.pt").write_bytes(b"truncated")
    step4 = run_dir / "checkpoints" / "step4"
    written = {p.name: p.stat().st_mtime_ns for p in step4.iterdir()}
    with pytest.raises(TrainingStopped):
        train_tiny(run_dir, tiny_data, stop_at_step=4)  # from step 0, over step 4's folder
    assert {p.name: p.stat().st_mtime_ns for p in step4.iterdir()} == written  # kept as it was
    summary = train_tiny(run_dir, tiny_data)
    assert summary["resumed_from"] == 4
    final = "checkpoints/step12/model.safetensors"
    assert (run_dir / final).read_bytes() == (tiny_run / final).read_bytes()


def test_a_corrupt_older_checkpoint_is_repaired_by_retraining_over_the_run(
    tiny_run: Path, tiny_data: dict, tmp_path: Path
) -> None:
    """The README's repair for a corrupt checkpoint other than the newest (only the newest keeps
    an optimizer state): with `train.json` and `state/` moved away, `pretrain` trains again from
    step 0 over the run's folders. The corrupt one is moved aside, never deleted, and written
    anew; intact ones are kept untouched; harvest passes and every checkpoint is the original."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    checkpoints = run_dir / "checkpoints"
    weights = checkpoints / "step4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    steps = [0, 1, 2, 4, 8, 12]
    with pytest.raises(CorruptCheckpointError, match="step4"):
        harvest(checkpoints, steps)
    intact = {p: p.stat().st_mtime_ns for p in (checkpoints / "step8").iterdir()}
    (run_dir / "train.json").rename(tmp_path / "train.json.old")
    (run_dir / "state").rename(tmp_path / "state.old")
    summary = train_tiny(run_dir, tiny_data)
    assert summary["resumed_from"] is None
    assert (checkpoints / "step4.corrupt" / "model.safetensors").stat().st_size == 100
    assert {p: p.stat().st_mtime_ns for p in (checkpoints / "step8").iterdir()} == intact
    harvest(checkpoints, steps)
    for step in steps:
        name = f"checkpoints/step{step}/model.safetensors"
        assert (run_dir / name).read_bytes() == (tiny_run / name).read_bytes(), step


def test_checkpoints_of_another_precision_are_superseded(
    tiny_run: Path, tiny_data: dict, tmp_path: Path
) -> None:
    """Without a readable state, nothing says which precision a run started in; retraining it
    in another one must not leave its checkpoints mixed: folders holding other weights are
    moved aside (never deleted) and written anew."""
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingStopped):
        train_tiny(run_dir, tiny_data, tiny_recipe(precision="bf16"), stop_at_step=4)
    (run_dir / "state" / "step4.pt").write_bytes(b"truncated")
    bf16 = (run_dir / "checkpoints/step4/model.safetensors").read_bytes()
    train_tiny(run_dir, tiny_data)  # `auto` on CPU: fp32, from step 0
    assert (run_dir / "checkpoints/step4.superseded/model.safetensors").read_bytes() == bf16
    for step in (0, 1, 2, 4, 8, 12):  # tiny_run: a pure fp32 run of the same recipe
        name = f"checkpoints/step{step}/model.safetensors"
        assert (run_dir / name).read_bytes() == (tiny_run / name).read_bytes(), step


def test_resume_refuses_another_precision(tiny_data: dict, tmp_path: Path) -> None:
    """A bf16 start (a GPU's `auto`; here bf16 autocast on CPU) must not be finished in fp32."""
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingStopped):
        train_tiny(run_dir, tiny_data, tiny_recipe(precision="bf16"), stop_at_step=4)
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    with pytest.raises(PrecisionMismatchError) as refused:
        train_tiny(run_dir, tiny_data)  # `auto` on CPU: fp32
    message = str(refused.value)
    assert "\n" not in message and str(run_dir) in message
    assert "started in bf16, would resume in fp32" in message
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == before  # nothing touched
    assert train_tiny(run_dir, tiny_data, tiny_recipe(precision="bf16"))["resumed_from"] == 4


def test_sigterm_checkpoints_at_a_random_step_and_resumes_exactly(
    tiny_data: dict, tmp_path: Path
) -> None:
    """What SLURM does before a time limit or a preemption: SIGTERM, then a requeued rerun."""
    recipe = tiny_recipe(steps=1500)
    interrupted, reference = tmp_path / "interrupted", tmp_path / "reference"
    job = start_training(interrupted, tiny_data, recipe)
    while not (interrupted / "checkpoints" / "step8" / "checkpoint.json").exists():
        assert job.poll() is None, job.stderr.read()
        time.sleep(0.01)
    time.sleep(random.uniform(0.0, 0.5))  # a random step past the last scheduled checkpoint
    job.send_signal(signal.SIGTERM)
    _, stderr = job.communicate(timeout=120)
    assert job.returncode != 0 and "TrainingStopped" in stderr
    assert not (interrupted / "train.json").exists()
    stopped_at = max(step for step, _ in list_checkpoint_dirs(interrupted / "checkpoints"))
    assert 8 < stopped_at < 1500, f"stopped at step {stopped_at}"

    summary = train_tiny(interrupted, tiny_data, recipe)
    assert summary["resumed_from"] == stopped_at
    train_tiny(reference, tiny_data, recipe)
    final = "checkpoints/step1500/model.safetensors"
    assert (interrupted / final).read_bytes() == (reference / final).read_bytes()


def test_compiled_cpu_training_matches_eager_and_resumes_exactly(
    tiny_data: dict, tmp_path: Path
) -> None:
    """`train.compile: auto` compiles on CPU: same curve as eager within fp32 reordering, and a
    resumed compiled run ends bit-identical to an uninterrupted one."""
    eager, compiled = tiny_recipe(), tiny_recipe(compile="on")
    train_tiny(tmp_path / "eager", tiny_data, eager, log_every=1)
    summary = train_tiny(tmp_path / "compiled", tiny_data, compiled, log_every=1)
    assert summary["speed_path"]["compiled"]
    with pytest.raises(TrainingStopped):
        train_tiny(tmp_path / "resumed", tiny_data, compiled, log_every=1, stop_at_step=5)
    assert train_tiny(tmp_path / "resumed", tiny_data, compiled, log_every=1)["resumed_from"] == 5

    def losses(run: str) -> list[float]:
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["loss"] for line in lines]

    assert max(abs(a - b) for a, b in zip(losses("eager"), losses("compiled"), strict=True)) < 1e-4
    assert losses("resumed") == losses("compiled")
    final = "checkpoints/step12/model.safetensors"
    assert (tmp_path / "resumed" / final).read_bytes() == (
        tmp_path / "compiled" / final
    ).read_bytes()


@pytest.mark.parametrize("compile_mode", ["off", "auto", "on"])
def test_gpu_speed_path_is_chosen_without_a_gpu(compile_mode: str) -> None:
    """Choosing the GPU path only sets flags, so CI checks it too: a compile-off GPU run once
    failed inside choose_speed_path, on an H100 and nowhere else."""
    import torch._dynamo as dynamo

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             dynamo.config.suppress_errors)  # fmt: skip
    try:
        cfg = TrainConfig.from_dict(tiny_recipe(compile=compile_mode)["train"])
        path = choose_speed_path(cfg, torch.device("cuda"), threads=1)
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         dynamo.config.suppress_errors) = saved  # fmt: skip
    assert path.precision == "bf16" and path.autocast_dtype == "bfloat16" and path.fused_adamw
    assert path.compiled == (compile_mode != "off")
    assert "tf32 matmuls" in path.notes


def test_fp32_on_a_gpu_keeps_tf32_off() -> None:
    """`precision: fp32` means fp32 matmuls: TF32 (10 mantissa bits) only under bf16."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        cfg = TrainConfig.from_dict(tiny_recipe(precision="fp32")["train"])
        path = choose_speed_path(cfg, torch.device("cuda"), threads=1)
        flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    assert path.precision == "fp32" and path.autocast_dtype is None
    assert flags == (False, False) and "tf32 matmuls" not in path.notes


def test_activation_checkpointing_trains_bit_identical_weights(
    tmp_path: Path, tiny_data: dict[str, Path]
) -> None:
    """runtime.activation_checkpointing is how to run, not what: it stays out of the run's id, so
    it must not change a single weight (fp32 CPU)."""
    plain = train_tiny(tmp_path / "plain", tiny_data)
    recomputed = train_tiny(tmp_path / "recomputed", tiny_data, activation_checkpointing=True)
    assert any("activation checkpointing" in note for note in recomputed["speed_path"]["notes"])
    assert [c["sha256"] for c in recomputed["checkpoints"]] == [
        c["sha256"] for c in plain["checkpoints"]
    ]


def test_temporaries_of_a_killed_write_are_removed_when_the_run_resumes(
    tiny_run: Path, tiny_data: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_dir = shutil.copytree(tiny_run, tmp_path / "run")
    half_written = run_dir / "checkpoints" / ".step12.k1ll3d.tmp"
    half_written.mkdir()
    (half_written / "model.safetensors").write_bytes(b"partial")
    state_tmp = run_dir / "state" / ".step12.pt.x7.tmp"
    state_tmp.write_bytes(b"partial")
    before = {p: p.read_bytes() for p in (run_dir / "checkpoints").rglob("*") if p.is_file()}
    with caplog.at_level(logging.WARNING):
        train_tiny(run_dir, tiny_data)  # finished: resumes at the last step, trains nothing
    assert not half_written.exists() and not state_tmp.exists()
    assert "left by a write that was killed" in caplog.text
    kept = {p: p.read_bytes() for p in (run_dir / "checkpoints").rglob("*") if p.is_file()}
    assert kept == {p: b for p, b in before.items() if half_written not in p.parents}
