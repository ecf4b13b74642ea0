"""Data-parallel training of one run on N processes (N GPUs of a node, or N CPU processes).

The global batch, its data order and the checkpoint schedule do not depend on N: step s of the
run is the same B sequences (saturation.train.data.TokenBatches), rank r trains on rows
[r·B/N, (r+1)·B/N) of them and DDP averages the gradients, which is the gradient of the mean loss
over the whole batch. Only rank 0 writes files. Results therefore match single-process training
within floating-point reduction order, and a run may be resumed with a different N.

Launch: `torchrun` (torch.distributed.run) sets RANK/WORLD_SIZE/LOCAL_RANK; see `launch`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    """This process's place among the processes that train one run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1

    @classmethod
    def from_env(cls) -> World:
        """The world torchrun describes in the environment; a plain process is a world of one."""
        env = os.environ
        rank, size = int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1))
        return cls(rank, size, int(env.get("LOCAL_RANK", 0)))

    def device(self, requested: torch.device) -> torch.device:
        """One GPU per process: rank r of a node takes cuda:LOCAL_RANK."""
        if self.parallel and requested.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return requested

    def rows(self, batch_size: int) -> slice:
        """This rank's rows of the global batch."""
        if batch_size % self.size:
            raise ValueError(f"batch size {batch_size} is not divisible by {self.size} processes")
        per_rank = batch_size // self.size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)


def init_process_group(world: World, device: torch.device) -> None:
    if world.parallel and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def destroy_process_group(world: World) -> None:
    if world.parallel and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.parallel:
        dist.barrier()


def any_rank(world: World, flag: bool, device: torch.device) -> bool:
    """True on every rank when it is true on one, so all ranks stop at the same step."""
    if not world.parallel:
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def mean_over_ranks(world: World, value: torch.Tensor) -> torch.Tensor:
    if world.parallel:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= world.size
    return value


def gather_from_ranks(world: World, value: torch.Tensor) -> list[float]:
    """Every rank's scalar `value`, in rank order, on every rank."""
    if not world.parallel:
        return [value.item()]
    parts = [torch.zeros_like(value) for _ in range(world.size)]
    dist.all_gather(parts, value)
    return [part.item() for part in parts]


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """The module to run forward/backward through: DDP averages gradients in backward."""
    if not world.parallel:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


# Seconds torchrun waits for its workers after passing on a SIGTERM before it kills them: they
# are writing the stop checkpoint (weights and optimizer state, GBs for wide models). torchrun's
# default of 30 s is shorter than the 300 s warning the README's SLURM setup asks for.
SHUTDOWN_TIMEOUT_S = 300


def torchrun_command(processes: int, arguments: list[str]) -> list[str]:
    """`torchrun --standalone` on this node: a free rendezvous port, so runs can share a node."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={processes}", f"--shutdown-timeout={SHUTDOWN_TIMEOUT_S}",
        "-m", "saturation.train.launch", *arguments,
    ]  # fmt: skip


def launch(processes: int, arguments: list[str]) -> None:
    """Run saturation.train.launch's entry point with `arguments` on `processes` processes and
    wait for it.

    SIGTERM/SIGUSR1 received here (SLURM's warning) reach torchrun as SIGTERM (it has no handler
    for SIGUSR1), which passes it to its workers, which checkpoint at the step they are on and
    exit non-zero.
    """
    command = torchrun_command(processes, arguments)
    log.info("launching %d processes: %s", processes, " ".join(command[:8]))
    # the handler is in place before torchrun starts; a signal that comes before Popen returns
    # is passed on as soon as it has
    launched: dict[str, Any] = {"child": None, "pending": False}

    def forward(_signum: int, _frame: Any) -> None:
        if launched["child"] is None:
            launched["pending"] = True
        else:
            launched["child"].send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        launched["child"] = child = subprocess.Popen(command)
        if launched["pending"]:
            child.send_signal(signal.SIGTERM)
        returncode = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if returncode != 0:
        raise RuntimeError(f"data-parallel training ({processes} processes) exited {returncode}")
