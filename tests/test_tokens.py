"""Tokenizer training/adoption and token files: exact round trips, EOS placement, integrity."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from saturation.io import sha256_file
from saturation.tokenizer import (
    EOS_TOKEN,
    PAD_TOKEN,
    copy_pretrained_tokenizer,
    load_tokenizer,
    tokenizer_fingerprint,
    train_bpe_tokenizer,
    vocabulary_fingerprint,
)
from saturation.tokens import open_tokens, read_header, token_dtype, tokenize_split

VOCAB_SIZE = 400
SUBJECTS = ["The cat", "A farmer", "My neighbour", "The old king", "Every student", "She", "They"]
VERBS = ["walked to", "looked at", "wrote about", "dreamed of", "carried", "sold", "painted"]
OBJECTS = ["the river", "a red house", "the market", "seven apples", "the quiet hills", "bread"]
ENDINGS = [".", "!", "?", " yesterday.", " at dawn.", ", and then slept."]

ROUND_TRIP_TEXTS = [
    "The cat walked to the river.",
    "Hello , world . don 't stop",  # transformers' space cleanup would alter this
    "  leading spaces\n\ntwo lines\tand a tab  ",
    "Café, naïve, résumé, Ærøskøbing",
    "“Curly quotes” and ‘single’ ones — with a dash…",
    "Emoji: 🎉👍🏽 and CJK 漢字 and a zero byte \x00",
]


def write_jsonl(path: Path, texts: list[str]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"id": f"doc-{i}", "source": "test", "text": text}) + "\n")
    return path


def synthetic_sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join([rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS)])
        + rng.choice(ENDINGS)
        for _ in range(n)
    ]


@pytest.fixture(scope="module")
def train_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "train.jsonl"
    return write_jsonl(path, synthetic_sentences(400))


@pytest.fixture(scope="module")
def tokenizer_dir(train_jsonl: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("tok") / "bpe"
    train_bpe_tokenizer(train_jsonl, out_dir, vocab_size=VOCAB_SIZE)
    return out_dir


def test_trained_tokenizer_loads_with_autotokenizer(tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == (EOS_TOKEN, 0)
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == (PAD_TOKEN, 1)
    assert tokenizer.bos_token == tokenizer.unk_token == EOS_TOKEN
    assert 258 < len(tokenizer) <= VOCAB_SIZE
    # lm-eval may encode with special tokens on; nothing must be added behind our back.
    text = "The cat sold bread."
    assert tokenizer.encode(text) == tokenizer.encode(text, add_special_tokens=False)


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS)
def test_round_trip_is_exact(tokenizer_dir: Path, text: str) -> None:
    tokenizer = load_tokenizer(tokenizer_dir)
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text


def test_training_is_deterministic(train_jsonl: Path, tokenizer_dir: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    train_bpe_tokenizer(train_jsonl, again, vocab_size=VOCAB_SIZE)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (again / name).read_bytes() == (tokenizer_dir / name).read_bytes()


def test_training_rejects_vocab_below_bytes(train_jsonl: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        train_bpe_tokenizer(train_jsonl, tmp_path / "tiny", vocab_size=100)


def test_load_tokenizer_names_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-tokenizer"
    with pytest.raises(FileNotFoundError, match="no-such-tokenizer"):
        load_tokenizer(missing)


@pytest.fixture
def split(tokenizer_dir: Path, tmp_path: Path) -> tuple[list[str], Path, Path]:
    texts = [*synthetic_sentences(9, seed=1), "", *ROUND_TRIP_TEXTS]
    docs = write_jsonl(tmp_path / "valid.jsonl", texts)
    out_bin, out_header = tmp_path / "valid.bin", tmp_path / "valid.json"
    tokenize_split(docs, tokenizer_dir, out_bin, out_header, batch_size=4, threads=2)
    return texts, out_bin, out_header


def test_tokenize_split_places_one_eos_after_each_document(
    split: tuple[list[str], Path, Path], tokenizer_dir: Path
) -> None:
    texts, out_bin, _ = split
    tokenizer = load_tokenizer(tokenizer_dir)
    expected = [tokenizer.encode(text, add_special_tokens=False) for text in texts]
    tokens = open_tokens(out_bin)
    assert tokens.dtype == np.uint16
    assert len(tokens) == sum(map(len, expected)) + len(texts)
    ends = np.cumsum([len(ids) + 1 for ids in expected]) - 1
    assert np.flatnonzero(tokens == tokenizer.eos_token_id).tolist() == ends.tolist()
    documents = np.split(np.asarray(tokens), ends + 1)[:-1]
    assert [doc[:-1].tolist() for doc in documents] == expected


def test_special_token_strings_in_documents_stay_plain_text(
    tokenizer_dir: Path, tmp_path: Path
) -> None:
    """A document quoting "<|endoftext|>" must not get an EOS mid-document (nor a PAD)."""
    texts = [
        f"A page about {EOS_TOKEN} and {PAD_TOKEN} tokens.",
        EOS_TOKEN,
        f"{PAD_TOKEN}{EOS_TOKEN}{EOS_TOKEN} glued",
        "The cat sold bread.",
    ]
    docs = write_jsonl(tmp_path / "special.jsonl", texts)
    out_bin, out_header = tmp_path / "special.bin", tmp_path / "special.json"
    header = tokenize_split(docs, tokenizer_dir, out_bin, out_header, batch_size=3, threads=1)
    tokenizer = load_tokenizer(tokenizer_dir)
    tokens = np.asarray(open_tokens(out_bin))
    ends = np.flatnonzero(tokens == tokenizer.eos_token_id)
    assert len(ends) == header.documents == len(texts)
    assert ends[-1] == len(tokens) - 1
    assert tokenizer.pad_token_id not in tokens
    documents = np.split(tokens, ends + 1)[:-1]
    assert [tokenizer.decode(doc[:-1].tolist()) for doc in documents] == texts


def test_header_describes_the_file(
    split: tuple[list[str], Path, Path], tokenizer_dir: Path
) -> None:
    texts, out_bin, out_header = split
    header = read_header(out_header)
    assert header.sha256 == sha256_file(out_bin)
    assert header.documents == len(texts)
    assert header.tokens * 2 == out_bin.stat().st_size
    assert (header.dtype, header.eos_id, header.format_version) == ("uint16", 0, 1)
    assert header.vocab_size == len(load_tokenizer(tokenizer_dir))


def test_verify_detects_a_flipped_byte(split: tuple[list[str], Path, Path]) -> None:
    _, out_bin, out_header = split
    data = bytearray(out_bin.read_bytes())
    data[len(data) // 2] ^= 0xFF
    out_bin.write_bytes(bytes(data))
    open_tokens(out_bin, out_header)  # same size: only the hash can tell
    with pytest.raises(ValueError, match=r"valid\.bin"):
        open_tokens(out_bin, out_header, verify=True)


def test_size_mismatch_is_detected_without_verify(split: tuple[list[str], Path, Path]) -> None:
    _, out_bin, _ = split
    out_bin.write_bytes(out_bin.read_bytes()[:-2])
    with pytest.raises(ValueError, match=r"valid\.bin"):
        open_tokens(out_bin)


@pytest.mark.parametrize(
    ("vocab_size", "dtype"),
    [(300, np.uint16), (65536, np.uint16), (65537, np.uint32), (262144, np.uint32)],
)
def test_token_dtype_fits_the_vocabulary(vocab_size: int, dtype: type) -> None:
    assert token_dtype(vocab_size) == np.dtype(dtype)


def test_copy_pretrained_tokenizer_round_trip(tokenizer_dir: Path, tmp_path: Path) -> None:
    copy_dir = tmp_path / "copy"
    copy_pretrained_tokenizer(str(tokenizer_dir), copy_dir)
    original, copy = load_tokenizer(tokenizer_dir), load_tokenizer(copy_dir)
    assert copy.eos_token_id == original.eos_token_id
    assert copy.pad_token_id == original.pad_token_id
    for text in ROUND_TRIP_TEXTS:
        assert copy.encode(text) == original.encode(text)


def test_copy_pretrained_tokenizer_requires_eos(tokenizer_dir: Path, tmp_path: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    no_eos = tmp_path / "no-eos"
    PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_dir / "tokenizer.json")).save_pretrained(
        no_eos
    )
    with pytest.raises(ValueError, match="no-eos"):
        copy_pretrained_tokenizer(str(no_eos), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_fingerprint_follows_tokenizer_json(tokenizer_dir: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    shutil.copytree(tokenizer_dir, clone)
    before = tokenizer_fingerprint(clone)
    assert before == tokenizer_fingerprint(tokenizer_dir)
    assert set(before["files"]) >= {"tokenizer.json", "tokenizer_config.json"}
    with open(clone / "tokenizer.json", "a") as handle:
        handle.write("\n")
    after = tokenizer_fingerprint(clone)
    assert after["sha256"] != before["sha256"]
    assert after["files"]["tokenizer.json"] != before["files"]["tokenizer.json"]


def test_import_does_not_pull_in_torch_or_transformers() -> None:
    code = (
        "import sys, saturation.tokenizer, saturation.tokens;"
        "print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_vocabulary_fingerprint_survives_a_resave(tokenizer_dir: Path, tmp_path: Path) -> None:
    """A checkpoint carries its tokenizer re-saved by transformers: the same vocabulary."""
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp_path / "resaved")
    fingerprint = vocabulary_fingerprint(tokenizer_dir)
    assert fingerprint is not None and vocabulary_fingerprint(tmp_path / "resaved") == fingerprint
    # a slow BPE's vocab.json + merges.txt of the same model, and an old tokenizer.json whose
    # merges are "a b" strings: the same vocabulary
    load_tokenizer(tokenizer_dir).backend_tokenizer.model.save(str(tmp_path))
    assert vocabulary_fingerprint(tmp_path) == fingerprint
    saved = json.loads((tokenizer_dir / "tokenizer.json").read_text())
    saved["model"]["merges"] = [" ".join(pair) for pair in saved["model"]["merges"]]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "tokenizer.json").write_text(json.dumps(saved))
    assert vocabulary_fingerprint(tmp_path / "old") == fingerprint


def test_vocabulary_fingerprint_tells_vocabularies_apart(
    train_jsonl: Path, tokenizer_dir: Path, tmp_path: Path
) -> None:
    train_bpe_tokenizer(train_jsonl, tmp_path / "smaller", vocab_size=VOCAB_SIZE - 20)
    assert vocabulary_fingerprint(tmp_path / "smaller") != vocabulary_fingerprint(tokenizer_dir)
    assert vocabulary_fingerprint(tmp_path) is None  # no tokenizer files
    (tmp_path / "tokenizer.model").write_bytes(b"sentencepiece")
    assert vocabulary_fingerprint(tmp_path) == sha256_file(tmp_path / "tokenizer.model")


def test_vocabulary_fingerprint_follows_a_rewritten_tokenizer_json(
    tokenizer_dir: Path, tmp_path: Path
) -> None:
    """The fingerprint is remembered per file content, not per path: a tokenizer.json rewritten
    in place with another vocabulary gets that vocabulary's fingerprint at once."""
    folder = tmp_path / "rewritten"
    shutil.copytree(tokenizer_dir, folder)
    before = vocabulary_fingerprint(folder)
    assert before == vocabulary_fingerprint(tokenizer_dir)
    saved = json.loads((folder / "tokenizer.json").read_text())
    saved["model"]["vocab"]["zzz-added"] = len(saved["model"]["vocab"]) + 100
    (folder / "tokenizer.json").write_text(json.dumps(saved))
    assert vocabulary_fingerprint(folder) not in (None, before)
    (folder / "tokenizer.json").write_text((tokenizer_dir / "tokenizer.json").read_text())
    assert vocabulary_fingerprint(folder) == before


def test_header_records_the_tokenizer(
    split: tuple[list[str], Path, Path], tokenizer_dir: Path
) -> None:
    _, _, out_header = split
    assert read_header(out_header).tokenizer == vocabulary_fingerprint(tokenizer_dir)
    old = json.loads(out_header.read_text())
    del old["tokenizer"]  # a header written before the field
    out_header.write_text(json.dumps(old))
    assert read_header(out_header).tokenizer is None
    out_header.write_text(json.dumps(old | {"colour": "red"}))
    with pytest.raises(ValueError, match="header fields"):
        read_header(out_header)


def test_a_split_too_short_for_one_window_is_refused_from_its_header(tiny_data: dict) -> None:
    from saturation.tokens import read_header, require_windows

    header = tiny_data["val"].with_suffix(".json")
    tokens = read_header(header).tokens
    require_windows(header, tokens - 1, "val", "lower train.seq_len")  # exactly one window
    with pytest.raises(ValueError, match=f"the val split has {tokens:,} tokens, fewer than"):
        require_windows(header, tokens, "val", "lower train.seq_len")
