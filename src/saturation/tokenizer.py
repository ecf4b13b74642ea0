"""Tokenizers: train a byte-level BPE, or adopt an existing Hugging Face tokenizer.

Every tokenizer this pipeline produces is a `transformers` folder (`save_pretrained`) so that
training, `AutoTokenizer.from_pretrained` and lm-evaluation-harness all see the same thing.

Special tokens of a trained tokenizer (fixed because the trainer assigns ids in list order):
    id 0: EOS_TOKEN ("<|endoftext|>"), also used as BOS and UNK, and the document separator
    id 1: PAD_TOKEN ("<|padding|>")
    ids 2..257: the 256 byte symbols, then the merges.

`transformers` and `tokenizers` are imported inside the functions: this module is imported when
Snakemake parses the workflow, where pulling in transformers (and possibly torch) costs seconds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from saturation.io import atomic_path, sha256_file

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|padding|>"
SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN)
EOS_ID = 0
PAD_ID = 1
N_BYTES = 256

# transformers' "no limit" sentinel (VERY_LARGE_INTEGER); lm-eval recognises exactly this value and
# then takes the context length from the model config instead of trusting the tokenizer.
UNBOUNDED_MODEL_MAX_LENGTH = int(1e30)


def iter_texts(docs_jsonl: Path) -> Iterator[str]:
    """Stream the "text" field of a corpus JSONL file, one document at a time."""
    with open(docs_jsonl, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)["text"]


def train_bpe_tokenizer(
    train_jsonl: Path, out_dir: Path, vocab_size: int, min_frequency: int = 2
) -> None:
    """Train a byte-level BPE on the train split and save it as a transformers folder.

    The initial alphabet is all 256 bytes, so any text encodes without an unknown token even if
    the training data never contained some byte. There is no normalizer: decode(encode(text))
    returns the text unchanged. `vocab_size` is an upper bound (special tokens and bytes included);
    a small corpus may run out of merges first.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    min_vocab = len(SPECIAL_TOKENS) + N_BYTES
    if vocab_size < min_vocab:
        raise ValueError(f"vocab_size {vocab_size} < {min_vocab} (special tokens + 256 bytes)")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(iter_texts(Path(train_jsonl)), trainer=trainer)
    if (tokenizer.token_to_id(EOS_TOKEN), tokenizer.token_to_id(PAD_TOKEN)) != (EOS_ID, PAD_ID):
        raise RuntimeError("BPE trainer did not give the special tokens their documented ids")
    with atomic_path(out_dir) as tmp:
        _wrap(tokenizer).save_pretrained(tmp)


def save_symbol_tokenizer(symbols: int, out_dir: Path) -> None:
    """A word-level tokenizer of `symbols` symbols written `s0 s1 …` (a synthetic language's,
    saturation.synthetic), with this module's special-token ids: EOS 0, PAD 1, symbol i at id
    i + 2 (`SYMBOL_OFFSET`). Saved as a transformers folder, so checkpoints trained on it load
    with `from_pretrained` and lm-eval reads text of it like any other."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {EOS_TOKEN: EOS_ID, PAD_TOKEN: PAD_ID}
    vocab |= {symbol_text(i): i + SYMBOL_OFFSET for i in range(symbols)}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=EOS_TOKEN))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    with atomic_path(out_dir) as tmp:
        _wrap(tokenizer).save_pretrained(tmp)


SYMBOL_OFFSET = len(SPECIAL_TOKENS)  # a symbol tokenizer's first symbol id


def symbol_text(symbol: int) -> str:
    return f"s{symbol}"


def _wrap(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """Wrap a raw `tokenizers.Tokenizer` with the special-token roles transformers needs.

    `clean_up_tokenization_spaces=False` keeps decode exact: the cleanup turns " ." into ".";
    transformers 5 already skips it for BPE, but warns unless it is switched off explicitly.
    """
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=UNBOUNDED_MODEL_MAX_LENGTH,
        clean_up_tokenization_spaces=False,
    )


def load_tokenizer(
    path_or_name: str | Path, local_files_only: bool = True
) -> PreTrainedTokenizerFast:
    """Load a fast tokenizer; offline unless the caller opts in, so a run never hits the Hub."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(path_or_name), local_files_only=local_files_only
        )
    except OSError as error:
        where = "locally" if local_files_only else "locally or on the Hub"
        raise FileNotFoundError(f"tokenizer {str(path_or_name)!r} not found {where}") from error
    if not tokenizer.is_fast:
        raise TypeError(f"tokenizer {str(path_or_name)!r} has no fast (Rust) backend")
    return tokenizer


def plain_text_backend(tokenizer: PreTrainedTokenizerFast) -> Tokenizer:
    """A copy of the tokenizer's Rust backend that encodes special-token strings as plain text.

    A document may contain the literal string "<|endoftext|>" (a web page about tokenizers, say);
    by default the backend would turn it into the EOS id mid-document, so a token file's EOS ids
    would no longer be exactly the document separators its header counts. With
    `encode_special_tokens` the string is encoded byte by byte like any other text (and decodes
    back to itself), which is also how `train_bpe_tokenizer` saw it: the trainer never splits on
    special tokens. A copy, so the caller's tokenizer, and what lm-eval loads from the saved
    folder, keep their usual behaviour.
    """
    import copy

    backend = copy.deepcopy(tokenizer.backend_tokenizer)
    backend.encode_special_tokens = True
    return backend


def copy_pretrained_tokenizer(path_or_name: str, out_dir: Path) -> None:
    """Adopt an existing tokenizer (local path) by saving a copy into the pipeline's results.

    The copy makes runs independent of the original location. An EOS token is required because
    it separates documents in the token files.
    """
    tokenizer = load_tokenizer(path_or_name)
    if tokenizer.eos_token_id is None:
        raise ValueError(f"tokenizer {path_or_name!r} has no EOS token to separate documents")
    with atomic_path(out_dir) as tmp:
        tokenizer.save_pretrained(tmp)


def tokenizer_fingerprint(path: str | Path) -> dict:
    """Hash every file of a local tokenizer folder: cheap provenance without loading it.

    Returns {"files": {relative path: sha256}, "sha256": digest of those pairs in sorted order}.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"tokenizer folder {str(root)!r} does not exist")
    files = {
        item.relative_to(root).as_posix(): sha256_file(item)
        for item in sorted(root.rglob("*"))
        if item.is_file()
    }
    combined = hashlib.sha256()
    for name, digest in sorted(files.items()):
        combined.update(f"{name}\0{digest}\n".encode())
    return {"files": files, "sha256": combined.hexdigest()}


def vocabulary_fingerprint(folder: str | Path) -> str | None:
    """sha256 of what maps text to ids in a tokenizer folder, read from its files (no
    transformers): None when it has no tokenizer files.

    Unlike `tokenizer_fingerprint` (every byte of every file), this is the same for a folder and
    its copy re-saved by `AutoTokenizer.from_pretrained(folder).save_pretrained(copy)`, as our
    checkpoints and `copy_pretrained_tokenizer` carry, and for `tokenizer.json` and the
    `vocab.json` + `merges.txt` of one BPE; so token files and a checkpoint's tokenizer compare
    by it. What it covers (`_vocabulary`): the model's type, every token's id (added tokens
    included) and the BPE merges in order (Unigram: the pieces' scores). Re-saving rewrites what
    it leaves out: merges as "a b" strings become pairs, flags (`ignore_merges`, an added token's
    `normalized`) appear, and an added token already in the vocabulary is listed again.
    Sentencepiece's `tokenizer.model` alone (no tokenizer.json) is hashed as bytes.
    """
    root = Path(folder)
    if (root / "tokenizer.json").is_file():
        return _tokenizer_json_fingerprint((root / "tokenizer.json").read_bytes())
    if (root / "vocab.json").is_file() and (root / "merges.txt").is_file():
        vocabulary = _vocabulary(_bpe_files(root), _added_tokens_file(root))
    elif (root / "tokenizer.model").is_file():
        return sha256_file(root / "tokenizer.model")
    else:
        return None
    return _canonical_sha256(vocabulary)


def _canonical_sha256(vocabulary: dict) -> str:
    """sha256 of `_vocabulary`'s output in one canonical JSON spelling."""
    canonical = json.dumps(vocabulary, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# a tokenizer.json's bytes (sha256) → its vocabulary's fingerprint: a job checking each of a
# run's checkpoints (one copy of the same file each) parses the JSON once, not per checkpoint
_TOKENIZER_JSON_FINGERPRINTS: dict[str, str] = {}


def _tokenizer_json_fingerprint(content: bytes) -> str:
    digest = hashlib.sha256(content).hexdigest()
    if digest not in _TOKENIZER_JSON_FINGERPRINTS:
        saved = json.loads(content.decode("utf-8"))
        vocabulary = _vocabulary(saved["model"], saved.get("added_tokens") or [])
        _TOKENIZER_JSON_FINGERPRINTS[digest] = _canonical_sha256(vocabulary)
    return _TOKENIZER_JSON_FINGERPRINTS[digest]


def _vocabulary(model: dict, added_tokens: list[dict]) -> dict:
    """The parts of a tokenizer.json `model` (and its added tokens) that decide the ids."""
    vocab = model.get("vocab") or {}
    scores = None
    if isinstance(vocab, list):  # Unigram: [piece, score] in id order
        scores = [score for _, score in vocab]
        vocab = {piece: index for index, (piece, _) in enumerate(vocab)}
    ids = dict(vocab) | {token["content"]: token["id"] for token in added_tokens}
    merges = [merge.split(" ") if isinstance(merge, str) else list(merge)
              for merge in model.get("merges") or []]  # fmt: skip
    return {"type": model.get("type", "BPE"), "ids": ids, "merges": merges, "scores": scores}


def _bpe_files(root: Path) -> dict:
    """A slow BPE tokenizer's `vocab.json` + `merges.txt` as a tokenizer.json `model`."""
    lines = (root / "merges.txt").read_text(encoding="utf-8").splitlines()
    merges = [line for line in lines if line and not line.startswith("#version")]
    vocab = json.loads((root / "vocab.json").read_text(encoding="utf-8"))
    return {"type": "BPE", "vocab": vocab, "merges": merges}


def _added_tokens_file(root: Path) -> list[dict]:
    """A slow tokenizer's `added_tokens.json` ({token: id}) as tokenizer.json's added tokens."""
    path = root / "added_tokens.json"
    added = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return [{"content": token, "id": index} for token, index in added.items()]


def pretrained_tokenizer(recipe: dict, path: str) -> str:
    """The configured tokenizer folder (tokenizer.pretrained), if it still holds the files its
    stage recipe hashed: where it lies is no part of the id, what it holds is."""
    if tokenizer_fingerprint(path) != recipe["pretrained"]:
        raise ValueError(
            f"tokenizer.pretrained: the files of {path!r} changed after the workflow was planned; "
            "run it again to plan a new tokenizer id"
        )
    return path
