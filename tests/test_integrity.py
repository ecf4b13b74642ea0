"""A corrupted input is refused, never measured (issue: integrity), through the real `snakemake`
on configs/micro.yaml: a byte flipped in a harvested checkpoint or in the held-out token file
stops the run before any job, naming the file, and every finished result stays as it was."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.conftest import MICRO, snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("integrity")
    snakemake(workdir, "--configfile", str(MICRO))
    return workdir


def results_digest(results: Path) -> dict[Path, str]:
    """Every result file's sha256 (logs and the index are bookkeeping)."""
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in results.rglob("*")
        if p.is_file() and "logs" not in p.parts and p.name != "index.csv"
        and "pretrain" not in p.parts and "tokens" not in p.parts
    }  # fmt: skip


def flip_one_byte(path: Path) -> bytes:
    """Change one byte in the middle (the size stays): what no size check sees. Returns the
    original content."""
    original = path.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return original


def refused(done: subprocess.CompletedProcess[str], named: Path) -> str:
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("input error: ")]
    assert len(errors) == 1, done.stderr
    assert named.name in errors[0] and "sha256" in errors[0]
    assert "rule analyze_checkpoint" not in done.stderr  # no job started
    return errors[0]


@pytest.mark.parametrize("target", ["checkpoint", "held-out tokens"])
def test_a_modified_input_is_refused_and_nothing_is_lost(finished: Path, target: str) -> None:
    results = finished / "results"
    if target == "checkpoint":
        path = sorted(results.glob("pretrain/*/checkpoints/step20/model.safetensors"))[0]
    else:
        (path,) = results.glob("tokens/*/val.bin")
    before = results_digest(results)
    original = flip_one_byte(path)
    try:
        line = refused(snakemake(finished, "--configfile", str(MICRO), check=False), path)
        assert results_digest(results) == before, line
    finally:
        path.write_bytes(original)
    # restored (but newer than the results): verified, then measured again, to the same numbers
    snakemake(finished, "--configfile", str(MICRO))
    after = results_digest(results)
    measured = {p: d for p, d in before.items() if p.name in ("metrics.json", "metrics.csv")}
    assert {p: after[p] for p in measured} == measured
