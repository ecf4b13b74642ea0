"""One workflow at a time per results folder.

Snakemake locks its working directory (`.snakemake/locks`), but the results folder is a config
value: two workflows started from two working directories with one `results` would both train the
same runs, and the cleanup of the one that fails would delete outputs the other had finished. So
the workflow also takes `results/.lock` when it starts (Snakemake's `onstart`, after the DAG is
built and before any job) and gives it back when it ends. A dry run takes none.

The lock file says who holds it (pid, host, working directory, since when). A lock left by a
workflow that was killed is stale: on the same host its pid no longer runs, and it is taken over
with a warning; from another host that cannot be known, so the message says how to clear it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"


class ResultsLockedError(RuntimeError):
    """Another workflow holds the results folder."""


def _holder() -> dict[str, object]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "workdir": os.getcwd(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it runs
        return True
    return True


def _read(lock: Path) -> dict[str, object] | None:
    try:
        return json.loads(lock.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable: half-written by a holder killed mid-write; judged stale below


def acquire(results: str | Path) -> Path:
    """Take `results/.lock` for this process, or raise ResultsLockedError in one line."""
    lock = Path(results) / LOCK_NAME
    lock.parent.mkdir(parents=True, exist_ok=True)
    me = _holder()
    for _ in range(3):  # a stale lock removed, then taken; a race lost, then judged again
        try:
            with open(lock, "x") as handle:
                json.dump(me, handle)
            return lock
        except FileExistsError:
            holder = _read(lock)
            if holder is None:
                continue  # released in between
            if holder and (holder.get("host") != me["host"] or _running(int(holder["pid"]))):
                if holder.get("pid") == me["pid"] and holder.get("host") == me["host"]:
                    return lock  # ours already
                raise ResultsLockedError(
                    f"results folder {results} is in use by the workflow of pid {holder['pid']} on "
                    f"{holder['host']} (working directory {holder.get('workdir')}, since "
                    f"{holder.get('since')}); if that workflow is gone, delete {lock}"
                ) from None
            logger.warning("%s: taking over a stale lock (%s)", lock, holder or "unreadable")
            lock.unlink(missing_ok=True)
    raise ResultsLockedError(f"{lock}: could not be taken (other workflows keep taking it)")


def release(results: str | Path) -> None:
    """Give the lock back, if this process holds it (a workflow refused never removes another's)."""
    lock = Path(results) / LOCK_NAME
    holder = _read(lock)
    me = _holder()
    if holder and holder.get("pid") == me["pid"] and holder.get("host") == me["host"]:
        lock.unlink(missing_ok=True)
