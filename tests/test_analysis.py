"""Held-out loss and the per-checkpoint record, against a manual forward pass of the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import GPTNeoXForCausalLM

from saturation.analysis import analyze_checkpoint, heldout_windows
from saturation.spectra import load_head, singular_entropy
from saturation.tokens import open_tokens


def test_windows_are_fixed_and_spread() -> None:
    tokens = np.arange(10_000)
    windows = heldout_windows(tokens, seq_len=16, n_tokens=320)
    assert windows.shape == (20, 17)
    np.testing.assert_array_equal(windows, heldout_windows(tokens, 16, 320))
    assert windows[0, 0] == 0 and windows[-1, -1] == len(tokens) - 1
    with pytest.raises(ValueError, match="fewer than seq_len"):
        heldout_windows(np.arange(5), 16, 320)


def test_analyze_matches_a_manual_forward_pass(
    tiny_run: Path, tiny_data: dict, tmp_path: Path
) -> None:
    checkpoint = tiny_run / "checkpoints" / "step12"
    record = analyze_checkpoint(
        checkpoint, tiny_data["val"], seq_len=16, val_tokens=256, batch_size=3,
        metrics_out=tmp_path / "metrics.json", sigma_out=tmp_path / "sigma.npy",
    )  # fmt: skip
    windows = torch.from_numpy(heldout_windows(open_tokens(tiny_data["val"]), 16, 256))
    model = GPTNeoXForCausalLM.from_pretrained(checkpoint).eval()
    with torch.no_grad():  # HF's own shifted loss over the whole sample at once
        manual = model(input_ids=windows, labels=windows).loss.item()
    metrics = record["metrics"]
    assert metrics["val_loss"] == pytest.approx(manual, rel=1e-5)
    assert json.loads((tmp_path / "metrics.json").read_text()) == record
    sigma = np.load(tmp_path / "sigma.npy")
    head = load_head(checkpoint)
    real_rows = record["info"]["head_rows"]
    assert head.shape[0] == 384 and real_rows == 300  # padded rows sliced away before the SVD
    assert sigma.shape == (16,) and np.all(np.diff(sigma) <= 0)
    assert metrics["singular_entropy"] == pytest.approx(singular_entropy(sigma))
    assert 0 <= metrics["singular_entropy"] <= np.log(16)
