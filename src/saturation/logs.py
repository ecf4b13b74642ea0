"""Logging for workflow scripts: everything a job prints lands in its Snakemake log file."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


def log_to_file(path: str | os.PathLike) -> None:
    """Route stderr (Python and C level, tqdm bars included) and `logging` into `path`."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the job
    os.dup2(handle.fileno(), sys.stderr.fileno())
    sys.stderr = handle
    logging.basicConfig(
        stream=handle,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
