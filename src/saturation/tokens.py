"""Token files: one corpus split encoded as a flat array of token ids, EOS after each document.

A split becomes `<name>.bin` (raw ids in native byte order, uint16 when the vocabulary fits, else
uint32) and a JSON header beside it. Training reads the `.bin` through a read-only memmap, so
the file is never loaded whole; the header records what is needed to interpret it and its sha256,
so a stale or corrupted file is caught rather than silently trained on.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from saturation.io import atomic_path, sha256_file, write_json_atomic
from saturation.tokenizer import (
    iter_texts,
    load_tokenizer,
    plain_text_backend,
    vocabulary_fingerprint,
)

if TYPE_CHECKING:
    from tokenizers import Tokenizer

FORMAT_VERSION = 1
UINT16_VOCAB_LIMIT = 1 << 16


@dataclass(frozen=True)
class TokenHeader:
    """The JSON header written beside a token file."""

    tokens: int
    dtype: str
    vocab_size: int
    eos_id: int
    documents: int
    sha256: str
    format_version: int
    # the tokenizer's `vocabulary_fingerprint`: a model is scored on these ids only if its own
    # tokenizer has the same (saturation.measure.analysis). None: a header written before it.
    tokenizer: str | None = None


def token_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned dtype holding every id: halving the file matters for large corpora."""
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    return np.dtype(np.uint16 if vocab_size <= UINT16_VOCAB_LIMIT else np.uint32)


def _set_threads(threads: int | None) -> None:
    """Size the Rust thread pool (rayon) that encodes batches in parallel.

    Rayon reads RAYON_NUM_THREADS once, when the pool is first used in the process, so this only
    takes effect if nothing has encoded in parallel before this call.
    """
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    os.environ["RAYON_NUM_THREADS"] = str(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"


def _batches(texts: Iterator[str], batch_size: int) -> Iterator[list[str]]:
    """Group documents so the Rust backend can spread each batch over its threads."""
    while batch := list(itertools.islice(texts, batch_size)):
        yield batch


def _encode_batch(backend: Tokenizer, texts: list[str], eos_id: int, dtype: np.dtype) -> np.ndarray:
    """Encode documents and append EOS after each; no special tokens from the tokenizer itself.

    `backend` must encode special-token strings as plain text (`plain_text_backend`), so the
    appended separators are the only EOS ids; that is checked, since training and the header's
    document count rely on it. `encode_batch_fast` skips the offset bookkeeping that we would
    throw away.
    """
    encodings = backend.encode_batch_fast(texts, add_special_tokens=False)
    documents = [encoding.ids for encoding in encodings]  # each `.ids` access builds a new list
    flat = itertools.chain.from_iterable(itertools.chain(ids, (eos_id,)) for ids in documents)
    ids = np.fromiter(flat, dtype=dtype, count=sum(map(len, documents)) + len(documents))
    if np.count_nonzero(ids == eos_id) != len(documents):
        text = next(text for text, doc in zip(texts, documents, strict=True) if eos_id in doc)
        raise ValueError(f"document {text[:60]!r}... encodes to the EOS id {eos_id} inside it")
    return ids


def tokenize_split(
    docs_jsonl: Path,
    tokenizer_dir: Path,
    out_bin: Path,
    out_header: Path,
    batch_size: int = 256,
    threads: int | None = None,
) -> TokenHeader:
    """Encode a corpus split into `out_bin` and describe it in `out_header`.

    Documents are streamed in batches, so memory stays bounded by one batch whatever the corpus
    size. Their text is encoded as plain text, special-token strings included, so the only EOS
    ids are the separators and the header's `documents` counts them. Both files are written
    atomically; the header is written last, so its presence implies a complete token file.
    """
    _set_threads(threads)
    tokenizer = load_tokenizer(tokenizer_dir)
    eos_id = tokenizer.eos_token_id
    if eos_id is None:
        raise ValueError(f"tokenizer {str(tokenizer_dir)!r} has no EOS token")
    backend = plain_text_backend(tokenizer)
    vocab_size = len(tokenizer)
    dtype = token_dtype(vocab_size)
    digest = hashlib.sha256()
    n_tokens = n_docs = 0
    with (
        atomic_path(out_bin) as tmp,
        open(tmp, "wb") as handle,
        tqdm(desc=f"tokenize {Path(docs_jsonl).name}", unit="doc", mininterval=1.0) as bar,
    ):
        for texts in _batches(iter_texts(Path(docs_jsonl)), batch_size):
            ids = _encode_batch(backend, texts, eos_id, dtype)
            if ids.max() >= vocab_size:
                raise ValueError(f"token id {ids.max()} >= vocab size {vocab_size}")
            data = ids.tobytes()
            handle.write(data)
            digest.update(data)
            n_tokens += ids.size
            n_docs += len(texts)
            bar.update(len(texts))
            rate = n_tokens / max(bar.format_dict["elapsed"], 1e-9)
            bar.set_postfix(tokens_per_s=f"{rate:.3g}", refresh=False)
        if n_docs == 0:
            raise ValueError(f"{docs_jsonl}: no documents to tokenize")
    return _write_header(
        out_header, n_tokens, dtype, vocab_size, eos_id, n_docs, digest, tokenizer_dir
    )


def _write_header(
    out_header: Path,
    tokens: int,
    dtype: np.dtype,
    vocab_size: int,
    eos_id: int,
    documents: int,
    digest: hashlib._Hash,
    tokenizer_dir: Path,
) -> TokenHeader:
    """The header of a finished token file, written last: its presence implies the file."""
    header = TokenHeader(
        tokens=tokens,
        dtype=dtype.name,
        vocab_size=vocab_size,
        eos_id=eos_id,
        documents=documents,
        sha256=digest.hexdigest(),
        format_version=FORMAT_VERSION,
        tokenizer=vocabulary_fingerprint(tokenizer_dir),
    )
    write_json_atomic(out_header, asdict(header))
    return header


def write_documents(
    documents: np.ndarray, eos_id: int, tokenizer_dir: Path, out_bin: Path, out_header: Path
) -> TokenHeader:
    """Token ids made without text (a synthetic language's stream: documents × length ids of
    `tokenizer_dir`'s vocabulary) as a token file and its header, EOS after each document, as
    `tokenize_split` writes a corpus split."""
    from saturation.tokenizer import load_tokenizer

    vocab_size = len(load_tokenizer(tokenizer_dir))
    dtype = token_dtype(vocab_size)
    eos = np.full((len(documents), 1), eos_id, dtype=dtype)
    ids = np.concatenate([documents.astype(dtype), eos], axis=1).ravel()
    if ids.size and ids.max() >= vocab_size:
        raise ValueError(f"token id {ids.max()} >= vocab size {vocab_size}")
    data = ids.tobytes()
    with atomic_path(out_bin) as tmp:
        Path(tmp).write_bytes(data)
    digest = hashlib.sha256(data)
    return _write_header(
        out_header, ids.size, dtype, vocab_size, eos_id, len(documents), digest, tokenizer_dir
    )


def read_header(path: Path) -> TokenHeader:
    """Parse a token header, refusing other format versions and unknown or missing fields (an
    optional one, such as `tokenizer`, may be missing: older headers lack it)."""
    data = json.loads(Path(path).read_text())
    expected = {field.name for field in fields(TokenHeader)}
    required = {field.name for field in fields(TokenHeader) if field.default is MISSING}
    if not required <= set(data) <= expected:
        raise ValueError(f"{path}: header fields {sorted(data)} != {sorted(expected)}")
    header = TokenHeader(**data)
    if header.format_version != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {header.format_version} != {FORMAT_VERSION}")
    return header


def require_windows(header_path: Path, seq_len: int, split: str, remedy: str) -> None:
    """Refuse a split too short for one window of `seq_len + 1` tokens, from its header alone:
    checked before training, so a run is never trained to fail in its first measurement."""
    tokens = read_header(header_path).tokens
    if tokens < seq_len + 1:
        raise ValueError(
            f"{header_path}: the {split} split has {tokens:,} tokens, fewer than seq_len + 1 = "
            f"{seq_len + 1:,}: not one window fits; {remedy}"
        )


def open_tokens(bin_path: Path, header_path: Path | None = None, verify: bool = False) -> np.memmap:
    """Map a token file read-only, after checking it against its header.

    The size check is free and catches truncation; `verify=True` also rehashes the file, which
    reads it whole, to catch corruption.
    """
    bin_path = Path(bin_path)
    header = read_header(bin_path.with_suffix(".json") if header_path is None else header_path)
    dtype = np.dtype(header.dtype)
    size = bin_path.stat().st_size
    expected = header.tokens * dtype.itemsize
    if size != expected:
        raise ValueError(
            f"{bin_path}: {size:,} bytes, but its header's {header.tokens:,} {dtype.name} tokens "
            f"take {expected:,} (truncated or overwritten since it was written)"
        )
    if verify and (actual := sha256_file(bin_path)) != header.sha256:
        raise ValueError(
            f"{bin_path}: sha256 {actual[:12]}… does not match its header's "
            f"{header.sha256[:12]}… (modified since it was written); `--forcerun tokenize` "
            "writes it anew"
        )
    return np.memmap(bin_path, dtype=dtype, mode="r", shape=(header.tokens,))
