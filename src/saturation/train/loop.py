"""The training loop of one run: build or restore the model, step through the schedule, log,
checkpoint, and stop cleanly on request."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from saturation import checkpoints as ckpt
from saturation.io import atomic_path, remove_temporaries, write_json_atomic
from saturation.model.losses import loss_chunk_for
from saturation.model.neox import FastGPTNeoX
from saturation.model.shape import ModelShape, build_model
from saturation.runtime import Runtime, resolve_device
from saturation.schedule import learning_rate
from saturation.tokens import open_tokens
from saturation.train import distributed
from saturation.train.data import TokenBatches
from saturation.train.distributed import World
from saturation.train.metrics_log import LogWindow, progress_bar, truncate_metrics
from saturation.train.recipe import TrainConfig
from saturation.train.resume import RunFolder, check_precision, restore, save_checkpoint
from saturation.train.signals import StopSignals, TrainingStopped
from saturation.train.speed import choose_speed_path
from saturation.train.step import make_optimizer, optimizer_step

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunFiles:
    """What a pretraining job reads and writes."""

    run_dir: Path  # its checkpoints/ and state/ (never declared outputs: a failed job keeps them)
    tokens: Path  # the train split's token file, its JSON header beside it
    tokenizer: Path
    metrics_out: Path  # the finished run's metrics.jsonl
    summary_out: Path  # train.json, written last

    @classmethod
    def from_dict(cls, paths: dict[str, Any]) -> RunFiles:
        return cls(**{key: Path(value) for key, value in paths.items()})

    def to_dict(self) -> dict[str, str]:
        return {key: str(value) for key, value in asdict(self).items()}


def train_run(files: RunFiles, shape: ModelShape, cfg: TrainConfig, runtime: Runtime) -> dict:
    """Train (or resume) one run to `cfg.steps`, checkpointing on `cfg.checkpoint_steps`."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per run is ours; no per-save shard bars
    started = time.perf_counter()
    world = World.from_env()
    run = RunFolder(files.run_dir)
    run.state.mkdir(parents=True, exist_ok=True)
    if world.is_main:  # this job is the run's one writer (Snakemake's lock, the results lock)
        for folder in (run.checkpoints, run.state):
            for tmp in remove_temporaries(folder) if folder.is_dir() else []:
                log.warning("removed %s, left by a write that was killed", tmp)
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    device = world.device(resolve_device(runtime.device))
    distributed.init_process_group(world, device)
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        return _train(run, files, shape, cfg, runtime, world, device, started)
    finally:  # choose_speed_path sets TF32 for this run's precision; it ends with the run
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        distributed.destroy_process_group(world)


def _train(
    run: RunFolder,
    files: RunFiles,
    shape: ModelShape,
    cfg: TrainConfig,
    runtime: Runtime,
    world: World,
    device: torch.device,
    started: float,
) -> dict[str, Any]:
    from transformers import AutoTokenizer

    speed = choose_speed_path(cfg, device, torch.get_num_threads())
    if world.parallel:
        speed.notes.append(f"data parallel over {world.size} processes")
    if runtime.activation_checkpointing:
        speed.notes.append("activation checkpointing: each layer recomputed in backward")
    log.info("speed path: %s", asdict(speed))

    tokenizer = AutoTokenizer.from_pretrained(files.tokenizer, local_files_only=True)
    batches = TokenBatches(open_tokens(files.tokens), cfg.seq_len, cfg.batch_size, cfg.seed)
    start_step, tokens_seen, resumed_from = 0, 0, None
    point = run.resume_point()
    window = LogWindow(world, device, point.state.get("log_window") if point else None)
    if point is not None:
        check_precision(run, point.state, speed.precision)
        model, optimizer, tokens_seen = restore(point, cfg)
        start_step = resumed_from = point.step
        log.info("resuming from %s (step %d)", point.folder, start_step)
    else:
        model = build_model(shape, cfg.seed)
        optimizer = make_optimizer(model, cfg, fused=False)
    if world.is_main:
        truncate_metrics(run.live_metrics, start_step)

    model.to(device)
    if speed.fused_adamw:  # rebuild on the device so the fused kernel applies; moments move too
        state = optimizer.state_dict()
        optimizer = make_optimizer(model, cfg, fused=True)
        optimizer.load_state_dict(state)
    fast = FastGPTNeoX(model, loss_chunk_for(device), runtime.activation_checkpointing)
    fast.to(device)  # same parameters as `model`
    trained = distributed.wrap(fast, world, device)  # gradients averaged over ranks
    step_fn = torch.compile(trained) if speed.compiled else trained
    schedule = set(cfg.checkpoint_steps)
    tokens_per_step = cfg.batch_size * cfg.seq_len
    rows = world.rows(cfg.batch_size)

    def checkpoint(step: int, tokens: int) -> None:
        extra = {"precision": speed.precision, "log_window": window.saved(world)}
        if world.is_main:
            save_checkpoint(run, model, optimizer, tokenizer, step, tokens, extra)
        distributed.barrier(world)  # no rank moves on (or resumes) before the files exist

    if start_step == 0 and 0 in schedule:
        checkpoint(0, 0)
    model.train()
    with (
        open(run.live_metrics if world.is_main else os.devnull, "a") as metrics,
        progress_bar(cfg.steps, start_step, runtime.progress and world.is_main) as bar,
        StopSignals() as signals,
    ):
        for update in range(start_step, cfg.steps):
            lr = learning_rate(update, cfg.steps, cfg.lr, cfg.warmup_steps, cfg.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = batches.batch(update)[rows].to(device, non_blocking=True)
            loss, grad_norm = optimizer_step(
                step_fn, optimizer, batch, cfg.grad_clip, speed.autocast_dtype
            )
            step, tokens_seen = update + 1, tokens_seen + tokens_per_step
            window.add(loss.detach())
            bar.update(1)

            if step % runtime.log_every == 0 or step == cfg.steps:
                mean_loss, elapsed, window_steps = window.close(world)  # one host sync a window
                record = {
                    "step": step,
                    "tokens": tokens_seen,
                    "loss": mean_loss,
                    "lr": lr,
                    "grad_norm": float(grad_norm),
                    "tokens_per_s": window_steps * tokens_per_step / elapsed,
                }
                metrics.write(json.dumps(record) + "\n")
                metrics.flush()
                bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
            signalled = distributed.any_rank(world, signals.received is not None, device)
            stopping = step < cfg.steps and (step == runtime.stop_at_step or signalled)
            if step in schedule or stopping:
                checkpoint(step, tokens_seen)
            if stopping:
                raise TrainingStopped(step)

    if not world.is_main:
        return {}
    entries = ckpt.harvest(run.checkpoints, sorted(schedule))
    with atomic_path(files.metrics_out) as tmp:
        tmp.write_bytes(run.live_metrics.read_bytes())
    summary = {
        "steps": cfg.steps,
        "precision": speed.precision,  # resolved: the recipe may say auto
        "tokens_seen": tokens_seen,
        "resumed_from": resumed_from,
        "wall_s": round(time.perf_counter() - started, 3),
        "speed_path": asdict(speed),
        "versions": _versions(),
        "checkpoints": [asdict(e) | {"path": os.path.relpath(e.path, run.root)} for e in entries],
    }
    write_json_atomic(files.summary_out, summary)
    return summary


def _versions() -> dict[str, str]:
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}
