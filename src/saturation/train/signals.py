"""Stopping on request: SLURM's warning before a time limit or a preemption becomes a checkpoint."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

log = logging.getLogger(__name__)

STOPPED_EXIT_CODE = 75  # EX_TEMPFAIL: stopped on request after a checkpoint; rerun to resume


class TrainingStopped(RuntimeError):
    """Training stopped early on request, after a resumable checkpoint at `step`."""

    def __init__(self, step: int) -> None:
        super().__init__(f"training stopped at step {step}; rerun to resume from there")
        self.step = step


class StopSignals:
    """SIGTERM and SIGUSR1 (SLURM's warning before a time limit or a preemption) ask the loop to
    checkpoint at the step it is on and stop, instead of dying between checkpoints."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # only it receives signals
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
