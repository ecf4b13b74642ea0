"""Pretraining of one run (width × seed): resumable, deterministic, checkpointed on a schedule.

Determinism is by construction: the initial weights are a pure function of the seed, the data
order a pure function of (seed, step), the learning rate a pure function of the step. A resumed
run reloads the exact fp32 weights, optimizer moments and RNG state of its newest checkpoint, so
on CPU it ends bit-identical to a run that was never interrupted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from saturation import checkpoints as ckpt
from saturation import distributed
from saturation.distributed import World
from saturation.fast_neox import FastGPTNeoX, loss_chunk_for
from saturation.io import atomic_path, write_json_atomic, write_text_atomic
from saturation.model import ModelShape, build_model, padded_vocab
from saturation.schedule import learning_rate
from saturation.tokens import open_tokens, read_header

log = logging.getLogger(__name__)

STATE_DIR = "state"
STOPPED_EXIT_CODE = 75  # EX_TEMPFAIL: stopped on request after a checkpoint; rerun to resume
CHECKPOINTS_DIR = "checkpoints"
STATE_KEYS = {"step", "tokens_seen", "optimizer", "torch_rng", "cuda_rng"}


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation recipe of a run: every field changes the trained weights."""

    seed: int
    steps: int
    batch_size: int
    seq_len: int
    lr: float
    min_lr_ratio: float
    warmup_steps: int
    betas: tuple[float, float]
    eps: float
    weight_decay: float
    grad_clip: float
    checkpoint_steps: tuple[int, ...]
    precision: str = "auto"  # auto | fp32 | bf16
    compile: str = "auto"  # auto | on | off

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        values = dict(values)
        values["betas"] = tuple(values["betas"])
        values["checkpoint_steps"] = tuple(values["checkpoint_steps"])
        return cls(**values)


@dataclass(frozen=True)
class Runtime:
    """How to run, not what to compute: none of it enters a result's id."""

    device: str = "auto"
    threads: int | None = None
    log_every: int = 10
    progress: bool = True
    stop_at_step: int | None = None  # checkpoint there and stop, resumable (as on SIGTERM)
    activation_checkpointing: bool = False  # recompute each layer in backward: memory for compute


class StopSignals:
    """SIGTERM and SIGUSR1 (SLURM's warning before a time limit or a preemption) ask the loop to
    checkpoint at the step it is on and stop, instead of dying between checkpoints."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if (
            threading.current_thread() is threading.main_thread()
        ):  # signals reach the main thread only
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._record)
        return self

    def _record(self, signum: int, _frame: Any) -> None:
        self.received = signum
        log.warning(
            "received %s: checkpointing at the current step, then stopping",
            signal.Signals(signum).name,
        )

    def __exit__(self, *_exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class PrecisionMismatchError(RuntimeError):
    """A run would continue in another precision than it started in (fp32 and bf16 steps mixed)."""


class TrainingStopped(RuntimeError):
    """Training stopped early on request, after a resumable checkpoint at `step`."""

    def __init__(self, step: int) -> None:
        super().__init__(f"training stopped at step {step}; rerun to resume from there")
        self.step = step


@dataclass
class SpeedPath:
    """The fast paths this run took, logged so a slow run explains itself."""

    device: str
    precision: str  # resolved: fp32 | bf16
    autocast_dtype: str | None
    compiled: bool
    fused_adamw: bool
    threads: int
    notes: list[str] = field(default_factory=list)


class TokenBatches:
    """Training sequences as a pure function of (seed, step).

    The token stream is cut into `n_chunks` windows of `seq_len + 1` tokens (stride `seq_len`,
    so every token is a target once per epoch). Sample g = step·B + b is chunk
    perm_e[g mod n_chunks] of epoch e = g // n_chunks, with perm_e drawn from (seed, e).
    """

    def __init__(self, tokens: np.ndarray, seq_len: int, batch_size: int, seed: int) -> None:
        self.tokens = tokens
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.seed = seed
        self.n_chunks = (len(tokens) - 1) // seq_len
        if self.n_chunks < 1:
            raise ValueError(f"{len(tokens)} training tokens are fewer than seq_len + 1")

    @lru_cache(maxsize=4)  # noqa: B019 - one instance per run; a few epochs' permutations
    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n_chunks)

    def chunk_ids(self, step: int) -> np.ndarray:
        samples = step * self.batch_size + np.arange(self.batch_size)
        epochs, positions = np.divmod(samples, self.n_chunks)
        return np.array(
            [self._permutation(int(e))[p] for e, p in zip(epochs, positions, strict=True)]
        )

    def batch(self, step: int) -> torch.Tensor:
        starts = self.chunk_ids(step) * self.seq_len
        rows = [self.tokens[s : s + self.seq_len + 1] for s in starts]
        return torch.from_numpy(np.stack(rows).astype(np.int64))  # (B, T + 1)


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def resolve_precision(requested: str, device: torch.device) -> str:
    """`auto` is bf16 autocast on a GPU and fp32 elsewhere: the recipe (and so the id) says `auto`,
    the run records what it resolved to, and a resume must resolve to the same."""
    if requested == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return requested


def choose_speed_path(cfg: TrainConfig, device: torch.device, threads: int) -> SpeedPath:
    on_gpu = device.type == "cuda"
    precision = resolve_precision(cfg.precision, device)
    autocast = "bfloat16" if precision == "bf16" else None
    # auto compiles on CPU too: 1.07-1.60x per step over eager at the default shapes, for 5-25 s
    # of compiling; about even over the default's 400 steps, a gain beyond (benchmarks/RESULTS.md)
    compiled = cfg.compile == "on" or (cfg.compile == "auto" and device.type in ("cuda", "cpu"))
    path = SpeedPath(str(device), precision, autocast, compiled, fused_adamw=on_gpu,
                     threads=threads)  # fmt: skip
    if compiled and cfg.compile == "auto":
        import torch._dynamo as dynamo  # `import torch._dynamo` would make `torch` local here

        dynamo.config.suppress_errors = True  # no compiler on this node: train eagerly
        path.notes.append("torch.compile, eager fallback on compiler errors")
    if on_gpu:  # TF32 rounds fp32 matmul inputs to 10 mantissa bits: fine under bf16, not fp32
        tf32 = precision != "fp32"
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        if tf32:
            path.notes.append("tf32 matmuls")
    return path


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, fused: bool) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (GPT-NeoX/Pythia: not on biases and norms)."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=fused)


def next_token_loss(
    step_fn: torch.nn.Module, batch: torch.Tensor, autocast: str | None
) -> torch.Tensor:
    """Mean cross-entropy of predicting batch[:, 1:] from batch[:, :-1], in fp32.

    `step_fn` is a FastGPTNeoX (maybe DDP-wrapped, maybe compiled): the fused head + loss.
    """
    dtype = getattr(torch, autocast) if autocast else None
    with torch.autocast(batch.device.type, dtype=dtype, enabled=autocast is not None):
        return step_fn(batch[:, :-1], batch[:, 1:])


def optimizer_step(
    step_fn: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: torch.Tensor,
    grad_clip: float,
    autocast: str | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One update: loss, backward, global-norm clip, AdamW. Returns (loss, grad norm), unsynced."""
    loss = next_token_loss(step_fn, batch, autocast)
    loss.backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach(), grad_norm


@dataclass(frozen=True)
class ResumePoint:
    """A checkpoint to resume from: its step, its verified folder and its loaded resume state."""

    step: int
    folder: Path
    state: dict[str, Any]


def read_state(path: Path, step: int) -> dict[str, Any] | None:
    """The resume state saved with checkpoint `step`, or None (with a warning) if unreadable.

    It is written atomically, but a disk fault or a bad copy can still truncate it, and then
    torch.load would fail on every retry: the run resumes as if that checkpoint had no state.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        first_line = (str(err).splitlines() or [""])[0].split(". ")[0]  # torch's run on for lines
        reason = f"{type(err).__name__}: {first_line}"
    else:
        if isinstance(state, dict) and state.get("step") == step and set(state) >= STATE_KEYS:
            return state
        reason = f"not the resume state of step {step}"
    log.warning(
        "ignoring the resume state %s (%s): resuming from an older checkpoint with a state, "
        "or from step 0",
        path,
        reason,
    )
    return None


class RunFolder:
    """Where a run keeps its checkpoints, its resume state and its in-progress metrics."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.checkpoints = root / CHECKPOINTS_DIR
        self.state = root / STATE_DIR
        self.live_metrics = self.state / "metrics.jsonl"

    def state_file(self, step: int) -> Path:
        return self.state / f"step{step}.pt"

    def resume_point(self) -> ResumePoint | None:
        """The newest checkpoint that has intact weights and a readable resume state."""
        for step, folder in reversed(ckpt.list_checkpoint_dirs(self.checkpoints)):
            if not self.state_file(step).is_file():
                continue
            try:
                ckpt.verify_checkpoint(folder)
            except ckpt.CorruptCheckpointError as err:
                log.warning("not resuming from %s: %s", folder, err)
                continue
            if (state := read_state(self.state_file(step), step)) is not None:
                return ResumePoint(step, folder, state)
        return None


def save_checkpoint(
    run: RunFolder,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    tokenizer: Any,
    step: int,
    tokens_seen: int,
    extra: dict[str, Any],
) -> None:
    """State first, then the weights folder by atomic rename; older states go last.

    If the process dies anywhere in here, the newest checkpoint folder still has its state.
    A folder already at this step (a run retrained from an older point) is kept, untouched, if
    it holds these very weights, and moved aside (`ckpt.move_aside`, never deleted) if it is
    corrupt or holds others (another precision, a nondeterministic GPU): a run's checkpoints all
    come from one training history. The state is written either way, so a stop here resumes
    here. `extra` (the precision, the open log window) goes into the state as it is.
    """
    folder = run.checkpoints / ckpt.step_dir_name(step)
    state = {
        "step": step,
        "tokens_seen": tokens_seen,
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    } | extra
    with atomic_path(run.state_file(step)) as tmp:
        torch.save(state, tmp)
    try:
        with atomic_path(folder) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            record = ckpt.write_checkpoint_record(tmp, step, tokens_seen)
            if folder.exists():
                _make_way(folder, record)
    except _SameWeights:
        log.info("checkpoint %s already exists with these weights: kept as it is", folder)
    for old in run.state.glob("step*.pt"):
        if old != run.state_file(step):
            old.unlink()


class _SameWeights(Exception):
    """The folder at this step already holds the weights just written: keep it, drop the copy."""


def _make_way(folder: Path, record: dict[str, Any]) -> None:
    """Move an existing checkpoint folder aside unless it is intact and holds `record`'s weights
    (then raise _SameWeights)."""
    try:
        ckpt.verify_checkpoint(folder)
    except ckpt.CorruptCheckpointError as err:
        log.warning("%s; moved the checkpoint to %s and writing it anew", err,
                    ckpt.move_aside(folder, "corrupt"))  # fmt: skip
        return
    if ckpt.read_checkpoint_record(folder)["sha256"] == record["sha256"]:
        raise _SameWeights
    log.warning("%s holds other weights than this run's at that step (another precision or a "
                "nondeterministic device); moved it to %s and writing it anew", folder,
                ckpt.move_aside(folder, "superseded"))  # fmt: skip


def restore(point: ResumePoint, cfg: TrainConfig) -> tuple[torch.nn.Module, torch.optim.AdamW, int]:
    """The model, optimizer and RNG exactly as they were when checkpoint `step` was written."""
    from transformers import GPTNeoXForCausalLM

    model = GPTNeoXForCausalLM.from_pretrained(point.folder, dtype=torch.float32)
    optimizer = make_optimizer(model, cfg, fused=False)
    state = point.state
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return model, optimizer, int(state["tokens_seen"])


def check_precision(run: RunFolder, state: dict[str, Any], precision: str) -> None:
    """Refuse to resume in another resolved precision: one run's steps are all fp32 or all bf16.

    `auto` resolves by device, so the same recipe (the same id) resumed on CPU after a GPU start
    would otherwise mix them. A state from before precision was recorded is not checked.
    """
    started = state.get("precision")
    if started is not None and started != precision:
        raise PrecisionMismatchError(
            f"{run.root}: started in {started}, would resume in {precision}; a run must not mix "
            f"precisions: resume it where train.precision resolves to {started} "
            "(auto: bf16 on a GPU, fp32 elsewhere)"
        )


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
def _progress(total: int, initial: int, enabled: bool) -> Iterator[tqdm]:
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


def train_run(
    run_dir: Path,
    shape: ModelShape,
    cfg: TrainConfig,
    tokens_bin: Path,
    tokenizer_dir: Path,
    runtime: Runtime,
    metrics_out: Path,
    summary_out: Path,
) -> dict[str, Any]:
    """Train (or resume) one run to `cfg.steps`, checkpointing on `cfg.checkpoint_steps`."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per run is ours; no per-save shard bars
    started = time.perf_counter()
    world = World.from_env()
    run = RunFolder(run_dir)
    run.state.mkdir(parents=True, exist_ok=True)
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    device = world.device(resolve_device(runtime.device))
    distributed.init_process_group(world, device)
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        return _train(run, shape, cfg, tokens_bin, tokenizer_dir, runtime, world, device,
                      metrics_out, summary_out, started)  # fmt: skip
    finally:  # choose_speed_path sets TF32 for this run's precision; it ends with the run
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        distributed.destroy_process_group(world)


def _train(
    run: RunFolder,
    shape: ModelShape,
    cfg: TrainConfig,
    tokens_bin: Path,
    tokenizer_dir: Path,
    runtime: Runtime,
    world: World,
    device: torch.device,
    metrics_out: Path,
    summary_out: Path,
    started: float,
) -> dict[str, Any]:
    from transformers import AutoTokenizer

    speed = choose_speed_path(cfg, device, torch.get_num_threads())
    if world.parallel:
        speed.notes.append(f"data parallel over {world.size} processes")
    if runtime.activation_checkpointing:
        speed.notes.append("activation checkpointing: each layer recomputed in backward")
    log.info("speed path: %s", asdict(speed))

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    batches = TokenBatches(open_tokens(tokens_bin), cfg.seq_len, cfg.batch_size, cfg.seed)
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
        _progress(cfg.steps, start_step, runtime.progress and world.is_main) as bar,
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
    with atomic_path(metrics_out) as tmp:
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
    write_json_atomic(summary_out, summary)
    return summary


def _versions() -> dict[str, str]:
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}


def shape_from_recipe(
    model: dict[str, Any], seq_len: int, vocab_size: int, eos_id: int
) -> ModelShape:
    """The model of a pretrain recipe, its head padded as Pythia's (see model.padded_vocab)."""
    return ModelShape(
        width=model["width"],
        layers=model["layers"],
        heads=model["heads"],
        vocab_size=padded_vocab(vocab_size, model["vocab_multiple"]),
        seq_len=seq_len,
        rotary_pct=model["rotary_pct"],
        mlp_ratio=model["mlp_ratio"],
        eos_id=eos_id,
    )


def train_from_recipe(
    recipe: dict[str, Any],
    run_dir: Path,
    tokens_bin: Path,
    tokenizer_dir: Path,
    metrics_out: Path,
    summary_out: Path,
    device: str = "auto",
    threads: int | None = None,
    log_every: int = 10,
    progress: bool = True,
    stop_at_step: int | None = None,
    processes: int = 1,
    activation_checkpointing: bool = False,
) -> dict[str, Any]:
    """The entry point of the pretrain stage: a recipe from saturation.plan, run as given.

    With `processes` > 1 (and not already inside a torchrun world) the run is trained data
    parallel by that many torchrun processes, one GPU each on a GPU node (saturation.distributed).
    """
    if processes > 1 and not World.from_env().parallel:
        per_process = max(1, threads // processes) if threads else None
        options = {
            "run_dir": run_dir, "tokens": tokens_bin, "tokenizer": tokenizer_dir,
            "metrics_out": metrics_out, "summary_out": summary_out, "device": device,
            "threads": per_process, "log_every": log_every, "progress": progress,
            "stop_at_step": stop_at_step, "activation_checkpointing": activation_checkpointing,
        }  # fmt: skip
        distributed.launch(processes, recipe, options)
        return json.loads(Path(summary_out).read_text())
    header = read_header(tokens_bin.with_suffix(".json"))
    cfg = TrainConfig.from_dict(recipe["train"])
    shape = shape_from_recipe(recipe["model"], cfg.seq_len, header.vocab_size, header.eos_id)
    runtime = Runtime(device, threads, log_every, progress, stop_at_step, activation_checkpointing)
    return train_run(
        run_dir, shape, cfg, tokens_bin, tokenizer_dir, runtime, metrics_out, summary_out
    )


def main(argv: list[str] | None = None) -> None:
    """`python -m saturation.train`: what each torchrun process runs (see distributed.launch)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--recipe", required=True, help="the pretrain recipe, as JSON")
    for name in ("run-dir", "tokens", "tokenizer", "metrics-out", "summary-out"):
        parser.add_argument(f"--{name}", type=Path, required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--stop-at-step", type=int)
    parser.add_argument(
        "--activation-checkpointing", action=argparse.BooleanOptionalAction, default=False
    )
    args = parser.parse_args(argv)
    world = World.from_env()
    logging.basicConfig(
        level=logging.INFO if world.is_main else logging.WARNING,
        format=f"%(asctime)s rank{world.rank} %(name)s %(levelname)s: %(message)s",
    )
    try:
        train_from_recipe(
            json.loads(args.recipe), args.run_dir, args.tokens, args.tokenizer,
            args.metrics_out, args.summary_out, device=args.device, threads=args.threads,
            log_every=args.log_every, progress=args.progress, stop_at_step=args.stop_at_step,
            activation_checkpointing=args.activation_checkpointing,
        )  # fmt: skip
    except TrainingStopped as stopped:
        log.warning("%s", stopped)
        sys.exit(STOPPED_EXIT_CODE)


if __name__ == "__main__":
    main()
