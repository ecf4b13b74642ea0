"""Per-checkpoint measurements (docs/SCIENCE-NOTES.md): held-out loss, anisotropy at every
depth, and the LM head's spectrum, into one record and the raw singular values."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from saturation.io import atomic_path, write_json_atomic
from saturation.measure import spectra
from saturation.measure.heldout import heldout_windows, measure_loss, measure_loss_and_anisotropy
from saturation.tokenizer import vocabulary_fingerprint
from saturation.tokens import TokenHeader, open_tokens, read_header

SIGMA_ARRAY = "singular_values"  # the head's raw spectrum, beside each record (`<name>.npy`)
SIGMA_CENTRED_ARRAY = "singular_values_centred"  # the row-centred head's (spectra.centred)
# each held-out (val) and train-sample window's mean loss, in window order: the same windows
# for every checkpoint of a run, so the summary can resample them jointly (summary.bootstrap)
WINDOW_ARRAYS = {"val": "window_losses_val", "train": "window_losses_train"}


def anisotropy_metric(depth: int) -> str:
    """Tidy-table name of the anisotropy at a depth (0 = embeddings; the last = final norm: L + 1
    for GPT-NeoX, L for a transformers family, saturation.model.hf_forward)."""
    return f"anisotropy_d{depth:02d}"


def check_tokenizer(header: TokenHeader, val_bin: str | Path, checkpoint_dir: str | Path) -> None:
    """Refuse to score a checkpoint on ids its own tokenizer does not give these tokens: the
    loss would be of another text. Known only where both sides say (a header written before
    `tokenizer` was recorded, or a checkpoint folder without tokenizer files, passes)."""
    theirs = vocabulary_fingerprint(checkpoint_dir)
    if header.tokenizer is not None and theirs is not None and theirs != header.tokenizer:
        raise ValueError(
            f"{val_bin} was tokenized with a different tokenizer than {checkpoint_dir} "
            f"(vocabulary {header.tokenizer[:12]}… ≠ {theirs[:12]}…)"
        )


@dataclass(frozen=True)
class HeldoutSample:
    """The windows every checkpoint of a run is scored on (the held-out split's, or the train
    split's for `train_loss`): built once per job."""

    tokens_bin: Path
    header: TokenHeader
    windows: np.ndarray

    @classmethod
    def load(cls, tokens_bin: str | Path, seq_len: int, n_tokens: int) -> HeldoutSample:
        tokens_bin = Path(tokens_bin)
        header = read_header(tokens_bin.with_suffix(".json"))
        tokens = open_tokens(tokens_bin, verify=True)  # hashed once per job: milliseconds here
        try:
            windows = heldout_windows(tokens, seq_len, n_tokens)
        except ValueError as error:
            raise ValueError(f"{tokens_bin}: {error}") from error
        return cls(tokens_bin, header, windows)


def measure_checkpoint(
    checkpoint_dir: str | Path,
    sample: HeldoutSample,
    batch_size: int,
    device: str = "cpu",
    train: HeldoutSample | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Held-out loss, anisotropy per depth, singular entropy and effective rank of the head and
    of the row-centred head, and the share of the head in its mean row's direction, of one
    checkpoint of any family (saturation.model.hf_forward), its model run on `device` (the
    numbers accumulate on the CPU): (the record, the raw and centred singular values). With a
    `train` sample, also the loss on it (`train_loss`): a late rise of the held-out loss while
    it keeps falling is overfitting, not saturation (summary.late_rise)."""
    from saturation.model.heads import read_head_matrix
    from saturation.model.hf_forward import load_measured_model  # GPT-NeoX: no transformers

    val_bin, header = sample.tokens_bin, sample.header
    check_tokenizer(header, val_bin, checkpoint_dir)
    # the head first: a diverged (non-finite) head fails here, naming its file, before the forward
    head = read_head_matrix(checkpoint_dir, n_rows=header.vocab_size)
    if head.shape[0] < header.vocab_size:
        raise ValueError(
            f"{val_bin}: a vocabulary of {header.vocab_size} ids, more than the "
            f"{head.shape[0]} rows of the head of {checkpoint_dir}"
        )
    sigma = spectra.singular_values(head)
    sigma_centred = spectra.singular_values(spectra.centred(head))
    model = load_measured_model(checkpoint_dir, device)
    measured = measure_loss_and_anisotropy(model, sample.windows, batch_size)
    if not math.isfinite(measured.loss):  # e.g. a NaN in the head's padded rows, or a diverged body
        raise ValueError(f"{checkpoint_dir}: held-out loss is {measured.loss} (non-finite weights)")
    last_depth = max(measured.anisotropy)
    trained = measure_loss(model, train.windows, batch_size) if train is not None else None
    record = {
        "metrics": {
            "val_loss": measured.loss,
            "val_ppl": math.exp(measured.loss),
            "anisotropy_last": measured.anisotropy[last_depth],
            **{anisotropy_metric(d): a for d, a in measured.anisotropy.items()},
            "singular_entropy": spectra.singular_entropy(sigma),
            "singular_entropy_sq": spectra.singular_entropy(sigma, power=2),  # of σ², not σ
            "effective_rank": spectra.effective_rank(sigma),
            "sigma_max": float(sigma[0]),
            "singular_entropy_centred": spectra.singular_entropy(sigma_centred),
            "effective_rank_centred": spectra.effective_rank(sigma_centred),
            "sigma_max_centred": float(sigma_centred[0]),
            "mean_row_share": spectra.mean_row_share(head),
        }
        | ({"train_loss": trained.loss} if trained else {}),
        # over the windows (measure.heldout.LossMeter); NaN for a single window
        "stderr": {"val_loss": measured.loss_stderr}
        | ({"train_loss": trained.stderr} if trained else {}),
        "info": {
            "scored_tokens": measured.scored_tokens,
            "windows": len(sample.windows),
            "depths": last_depth + 1,
            "head_rows": int(head.shape[0]),
            "head_dim": int(head.shape[1]),
        },
    }
    arrays = {SIGMA_ARRAY: sigma, SIGMA_CENTRED_ARRAY: sigma_centred}
    arrays[WINDOW_ARRAYS["val"]] = measured.window_losses
    if trained is not None:
        arrays[WINDOW_ARRAYS["train"]] = trained.window_means
    return record, arrays


def analyze_checkpoint(
    checkpoint_dir: str | Path,
    val_bin: str | Path,
    seq_len: int,
    val_tokens: int,
    batch_size: int,
    metrics_out: str | Path,
    sigma_out: str | Path,
    device: str = "cpu",
) -> dict[str, Any]:
    """One checkpoint measured on its own (`measure_checkpoint`), its record and raw singular
    values written to `metrics_out` and `sigma_out`."""
    sample = HeldoutSample.load(val_bin, seq_len, val_tokens)
    record, arrays = measure_checkpoint(checkpoint_dir, sample, batch_size, device)
    with atomic_path(sigma_out) as tmp, open(tmp, "wb") as handle:
        np.save(handle, arrays[SIGMA_ARRAY])
    write_json_atomic(metrics_out, record)
    return record


def analysis_recipe(stage_recipe: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint's analysis depends on, from its run's analyze recipe (all but the
    harvest, i.e. the list of checkpoints, and the record version, which the key holds anyway):
    the key of its stored record."""
    return {k: v for k, v in stage_recipe.items() if k not in ("harvest", "record_version")}


def analyze_run(
    manifest: str | Path,
    val_bin: str | Path,
    stage_recipe: dict[str, Any],
    results: str | Path,
    events: str | Path,
    device: str = "cpu",
    reuse: bool = True,
    train_bin: str | Path | None = None,
) -> dict[int, Path]:
    """Every checkpoint of a run's manifest analysed in one process, the held-out windows (and
    the train sample's, `train_tokens` of `train_bin`, where the recipe asks for one) built once
    and only when a record is missing: `{step: its record.json}`."""
    from saturation.measure.series import manifest_entries, measure_series
    from saturation.measure.store import RECORD, MeasurementStore

    seq_len, train_tokens = stage_recipe["seq_len"], stage_recipe.get("train_tokens", 0)
    if train_tokens and train_bin is None:
        raise ValueError(f"the recipe asks for {train_tokens} train tokens, and no train split")
    samples: dict[str, HeldoutSample | None] = {}

    def measure(folder: Path, missing: list[str]) -> dict[str, Any]:
        if not samples:
            samples["val"] = HeldoutSample.load(val_bin, seq_len, stage_recipe["val_tokens"])
            samples["train"] = (
                HeldoutSample.load(train_bin, seq_len, train_tokens) if train_tokens else None
            )
        record, arrays = measure_checkpoint(
            folder, samples["val"], stage_recipe["batch_size"], device, train=samples["train"]
        )
        return {"analysis": (record, arrays)}

    found = measure_series(
        manifest,
        manifest_entries(manifest),
        MeasurementStore(Path(results), "analysis", reuse),
        {"analysis": analysis_recipe(stage_recipe)},
        measure,
        events,
        label="analyze",
    )
    return {step: records["analysis"] / RECORD for step, records in found.items()}
