"""A real, offline Hugging Face hub cache of tiny models, built locally for tests.

Code that resolves `EleutherAI/pythia-14m@step1` through `huggingface_hub` (refs → commit →
snapshot → blob) can only be tested against the cache layout it reads. The hub is not reachable
from tests, so `build_hub_cache` writes that layout itself, exactly as `hf_hub_download` and
`snapshot_download` leave it:

    <cache_dir>/models--{org}--{name}/
        blobs/<sha256 for LFS files, git blob sha1 for the others>
        snapshots/<commit>/<filename> -> ../../blobs/<blob>   (relative symlinks)
        refs/<revision>                                      (the commit, no newline)
        trees/<commit>.json                                  (huggingface_hub's tree listing)

The models are tiny (a few thousand parameters, built in about a second) but cover the checkpoint
formats real repos use: fp16 safetensors with a padded vocabulary (Pythia), a legacy fp16
`pytorch_model.bin` with old-style config keys and attention buffers (old Pythia uploads), bf16
sharded safetensors with a tied head (GPT-2), and an fp32 tied `pytorch_model.bin` without
`lm_head.weight` (Llama). The Pythia repos carry training revisions: step0 is the initialisation,
later steps are a few AdamW steps on `train_tokens`, so their loss falls with the step.
"""

from __future__ import annotations

import copy
import hashlib
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

PYTHIA_14M = "EleutherAI/pythia-14m"
PYTHIA_31M = "EleutherAI/pythia-31m"
GPT2_TINY = "tiny-org/gpt2-tiny"
LLAMA_TIED_BIN = "tiny-org/llama-tied-bin"
# Pythia revision -> optimizer steps taken from the initialisation; "main" is the last one.
PYTHIA_STEPS = {"step0": 0, "step1": 5, "step2": 15}
PYTHIA_MAIN = "step2"
# Files the hub stores in Git LFS; their blobs are named by sha256 (the others by git sha1).
LFS_SUFFIXES = (".safetensors", ".bin")
TRAIN_BATCH, TRAIN_SEQ, TRAIN_LR = 8, 32, 3e-3
VOCAB_MULTIPLE = 16


@dataclass(frozen=True)
class HubCache:
    """A built cache: where it is, what it holds, and a plain local model folder beside it."""

    cache_dir: Path  # pass as cache_dir= to huggingface_hub, or as HF_HUB_CACHE
    revisions: dict[str, dict[str, str]]  # repo id -> {revision name -> 40-hex commit}
    local_model: Path  # a plain local folder (not in the cache) holding one model


Files = dict[str, bytes]  # a snapshot: file name -> content


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file, which the hub uses as its blob id."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def blob_name(filename: str, data: bytes) -> str:
    """The name `huggingface_hub` gives a file's blob: sha256 for LFS files, git sha1 otherwise."""
    if filename.endswith(LFS_SUFFIXES):
        return hashlib.sha256(data).hexdigest()
    return git_blob_sha1(data)


def padded_vocab(n_tokens: int) -> int:
    """Pythia-style head size: rounded up to a multiple of 16 and strictly above `n_tokens`."""
    return (n_tokens // VOCAB_MULTIPLE + 1) * VOCAB_MULTIPLE


@contextmanager
def _single_thread() -> Iterator[None]:
    """One intra-op thread, so the trained weights do not depend on the machine's core count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _saved(model: torch.nn.Module, **save_kwargs: object) -> Files:
    """The files `save_pretrained` writes for `model` (config, generation config, weights)."""
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, **save_kwargs)
        return {path.name: path.read_bytes() for path in sorted(Path(tmp).iterdir())}


def _torch_saved(state: dict[str, torch.Tensor]) -> bytes:
    """`torch.save` to a file named pytorch_model.bin (the zip's inner folder takes that name)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pytorch_model.bin"
        torch.save(state, path)
        return path.read_bytes()


def _json_bytes(data: dict) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def _special_ids(tokenizer_dir: Path) -> tuple[int, dict[str, int | None]]:
    """len(tokenizer) and its bos/eos/pad ids, as configs name them."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    return len(tokenizer), ids


# --- Pythia ---------------------------------------------------------------------------------


def _pythia_config(
    hidden: int, heads: int, vocab: int, ids: dict[str, int | None]
) -> GPTNeoXConfig:
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=heads,
        intermediate_size=4 * hidden, rotary_pct=0.25, use_parallel_residual=True,
        tie_word_embeddings=False, max_position_embeddings=64, **ids,
    )  # fmt: skip


def _pythia_models(
    config: GPTNeoXConfig, seed: int, train_tokens: np.ndarray | None
) -> Iterator[tuple[str, GPTNeoXForCausalLM]]:
    """(revision, fp32 model) for each Pythia revision, in step order.

    With `train_tokens` the model is trained continuously (AdamW, fixed batch order) and
    snapshotted at each revision's step; without, each later revision is a fresh seed.
    """
    from transformers import GPTNeoXForCausalLM

    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(config).float()
    if train_tokens is None:
        for offset, revision in enumerate(PYTHIA_STEPS):
            if offset:
                torch.manual_seed(seed + offset)
                model = GPTNeoXForCausalLM(config).float()
            yield revision, model
        return
    tokens = np.asarray(train_tokens).reshape(-1)  # a memmap stays a memmap
    if tokens.size <= TRAIN_SEQ:
        raise ValueError(f"train_tokens needs more than {TRAIN_SEQ} tokens, got {tokens.size}")
    if tokens.min() < 0 or tokens.max() >= config.vocab_size:
        raise ValueError(f"train_tokens must be ids in [0, {config.vocab_size})")
    rng = np.random.default_rng(seed=1234)  # the same batches for every model size
    optimizer = torch.optim.AdamW(model.parameters(), lr=TRAIN_LR, weight_decay=0.0)
    step = 0
    for revision, target in PYTHIA_STEPS.items():
        model.train()
        while step < target:
            starts = rng.integers(0, tokens.size - TRAIN_SEQ, size=TRAIN_BATCH)
            windows = np.stack([tokens[s : s + TRAIN_SEQ] for s in starts]).astype(np.int64)
            batch = torch.from_numpy(windows)
            loss = model(input_ids=batch, labels=batch).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
        model.eval()
        yield revision, model


def _legacy_pythia_config(config: GPTNeoXConfig) -> dict:
    """config.json as old Pythia uploads have it: rotary_pct/rotary_emb_base, torch_dtype."""
    return {
        "architectures": ["GPTNeoXForCausalLM"],
        "bos_token_id": config.bos_token_id,
        "eos_token_id": config.eos_token_id,
        "pad_token_id": config.pad_token_id,
        "hidden_act": "gelu",
        "hidden_size": config.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": config.intermediate_size,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": config.max_position_embeddings,
        "model_type": "gpt_neox",
        "num_attention_heads": config.num_attention_heads,
        "num_hidden_layers": config.num_hidden_layers,
        "rotary_emb_base": 10000,
        "rotary_pct": 0.25,
        "tie_word_embeddings": False,
        "torch_dtype": "float16",
        "transformers_version": "4.29.2",
        "use_cache": True,
        "use_parallel_residual": True,
        "vocab_size": config.vocab_size,
    }


def _legacy_pythia_state(
    model: GPTNeoXForCausalLM, config: GPTNeoXConfig
) -> dict[str, torch.Tensor]:
    """The fp16 state dict plus the causal-mask buffers old GPT-NeoX checkpoints carry."""
    state = {name: tensor.detach().half().clone() for name, tensor in model.state_dict().items()}
    positions = config.max_position_embeddings
    mask = torch.tril(torch.ones(positions, positions, dtype=torch.bool)).view(
        1, 1, positions, positions
    )
    for layer in range(config.num_hidden_layers):
        state[f"gpt_neox.layers.{layer}.attention.bias"] = mask.clone()
        state[f"gpt_neox.layers.{layer}.attention.masked_bias"] = torch.tensor(-1e9)
    return state


def _pythia_snapshots(
    config: GPTNeoXConfig, seed: int, train_tokens: np.ndarray | None, legacy: bool
) -> dict[str, Files]:
    """revision -> files (without the tokenizer) of one Pythia repo."""
    snapshots = {}
    for revision, model in _pythia_models(config, seed, train_tokens):
        if legacy:
            files = {
                "config.json": _json_bytes(_legacy_pythia_config(config)),
                "pytorch_model.bin": _torch_saved(_legacy_pythia_state(model, config)),
            }
        else:
            files = _saved(copy.deepcopy(model).half())
        snapshots[revision] = files
    snapshots["main"] = snapshots[PYTHIA_MAIN]
    return snapshots


# --- GPT-2 and Llama ------------------------------------------------------------------------


def _gpt2_files(vocab: int, ids: dict[str, int | None]) -> Files:
    """GPT-2, tied head, bf16, sharded safetensors with an index."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab, n_embd=24, n_layer=2, n_head=2, n_positions=64, **ids
    )  # fmt: skip
    torch.manual_seed(2)
    model = GPT2LMHeadModel(config).to(torch.bfloat16)
    files = _saved(model, max_shard_size="20KB")
    if not any(name.endswith(".index.json") for name in files):
        raise AssertionError("GPT-2 weights were not sharded; lower max_shard_size")
    return files


def _llama_files(vocab: int, ids: dict[str, int | None]) -> Files:
    """Llama, tied head, fp32 `pytorch_model.bin` without lm_head.weight."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
        tie_word_embeddings=True, **ids,
    )  # fmt: skip
    torch.manual_seed(3)
    model = LlamaForCausalLM(config)
    files = {
        name: data for name, data in _saved(model).items() if not name.endswith(".safetensors")
    }
    state = {
        name: tensor.detach().clone()
        for name, tensor in model.state_dict().items()
        if name != "lm_head.weight"
    }
    files["pytorch_model.bin"] = _torch_saved(state)
    return files


# --- cache layout ---------------------------------------------------------------------------


def _commit(repo: str, revision: str, files: Files) -> str:
    """A deterministic 40-hex commit id for a revision's content."""
    digest = hashlib.sha1(f"{repo}@{revision}\n".encode())
    for name in sorted(files):
        digest.update(f"{name} {blob_name(name, files[name])}\n".encode())
    return digest.hexdigest()


def _tree_entry(name: str, data: bytes) -> dict:
    """One file of huggingface_hub's cached tree listing (the /tree endpoint's fields)."""
    if not name.endswith(LFS_SUFFIXES):
        return {"size": len(data), "blob_id": git_blob_sha1(data)}
    sha256 = hashlib.sha256(data).hexdigest()
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(data)}\n"
    return {
        "size": len(data),
        "blob_id": git_blob_sha1(pointer.encode()),
        "lfs_sha256": sha256,
        "lfs_size": len(data),
    }


def _write_repo(cache_dir: Path, repo: str, snapshots: dict[str, Files]) -> dict[str, str]:
    """Write one repo's blobs, snapshots, refs and tree listings; return revision -> commit.

    Revisions with identical files (Pythia's main and its last step) share one commit.
    """
    storage = cache_dir / f"models--{repo.replace('/', '--')}"
    commits: dict[str, str] = {}
    by_content: dict[int, str] = {}
    for revision, files in snapshots.items():
        if id(files) in by_content:
            commit = by_content[id(files)]
        else:
            commit = by_content[id(files)] = _commit(repo, revision, files)
            snapshot = storage / "snapshots" / commit
            snapshot.mkdir(parents=True)
            (storage / "blobs").mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                blob = storage / "blobs" / blob_name(name, data)
                if not blob.exists():
                    blob.write_bytes(data)
                (snapshot / name).symlink_to(Path("../../blobs") / blob.name)
            tree = {name: _tree_entry(name, data) for name, data in sorted(files.items())}
            (storage / "trees").mkdir(exist_ok=True)
            (storage / "trees" / f"{commit}.json").write_text(
                json.dumps({"format_version": 1, "files": tree}, indent=1)
            )
        (storage / "refs").mkdir(parents=True, exist_ok=True)
        (storage / "refs" / revision).write_text(commit)
        commits[revision] = commit
    return commits


def build_hub_cache(
    root: Path, tokenizer_dir: Path, train_tokens: np.ndarray | None = None
) -> HubCache:
    """Build the cache under `root/hub` and a plain copy of the GPT-2 model under `root/local`.

    Every model shares the tokenizer in `tokenizer_dir` (its files are copied into each
    snapshot). With `train_tokens` (1-D ids below len(tokenizer)), Pythia's later revisions are
    trained on it; the same inputs always give byte-identical files.
    """
    root = Path(root)
    tokenizer_files = {
        path.name: path.read_bytes() for path in sorted(Path(tokenizer_dir).iterdir())
        if path.is_file()
    }  # fmt: skip
    n_tokens, ids = _special_ids(Path(tokenizer_dir))
    pythia_vocab = padded_vocab(n_tokens)
    with _single_thread():
        repos = {
            PYTHIA_14M: _pythia_snapshots(
                _pythia_config(16, 2, pythia_vocab, ids), 0, train_tokens, legacy=False
            ),
            PYTHIA_31M: _pythia_snapshots(
                _pythia_config(32, 4, pythia_vocab, ids), 1, train_tokens, legacy=True
            ),
            GPT2_TINY: {"main": _gpt2_files(n_tokens, ids)},
            LLAMA_TIED_BIN: {"main": _llama_files(n_tokens, ids)},
        }
    cache_dir = root / "hub"
    revisions = {}
    for repo, snapshots in repos.items():
        with_tokenizer: dict[int, Files] = {}  # keeps shared revisions shared
        for files in snapshots.values():
            with_tokenizer.setdefault(id(files), tokenizer_files | files)
        full = {revision: with_tokenizer[id(files)] for revision, files in snapshots.items()}
        revisions[repo] = _write_repo(cache_dir, repo, full)
    local_model = root / "local" / "gpt2-tiny"
    local_model.mkdir(parents=True)
    for name, data in (tokenizer_files | repos[GPT2_TINY]["main"]).items():
        (local_model / name).write_bytes(data)
    return HubCache(cache_dir=cache_dir, revisions=revisions, local_model=local_model)
