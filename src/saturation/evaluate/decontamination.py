"""Which held-out text the generated tasks leave out, and why: text the model may have been
trained on (`SharedNgrams`), and text holding a special-token string.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

import numpy as np

# Evaluation text sharing a word n-gram this long with the train split is dropped, as in GPT-3's
# decontamination (Brown et al. 2020, appendix C): long enough that shared idioms and formulae
# rarely reach it, short enough to catch a parallel passage reworded at its edges.
DECONTAMINATION_WORDS = 13
# Why held-out text is left out of the generated tasks. A special-token string ("<|endoftext|>"
# in a page about tokenizers) is encoded as plain text by the token files
# (`tokenizer.plain_text_backend`), but lm-eval's `tokenizer.encode` turns it into the control
# id: the model would be scored on an input it never saw in training. The strings are those of
# this pipeline's BPE, which are also GPT-NeoX's and Pythia's.
TRAIN_NGRAM = "train_ngram"
SPECIAL_TOKEN_TEXT = "special_token_text"
EXCLUSION_REASONS = (TRAIN_NGRAM, SPECIAL_TOKEN_TEXT)


class SharedNgrams:
    """The word n-grams that held-out texts share with a training split, to find evaluation text
    the model may have seen.

    Held-out documents are split from train by id only, so parallel passages leak: in the
    default corpus, test chapter Psalms 108 repeats Psalms 57 and 60 (train) almost verbatim,
    Jeremiah 52 repeats 2 Kings 25. Words are lowercased runs of letters and digits
    (punctuation and whitespace only separate them), so a reprint that differs in commas or
    line breaks still matches. Each n-gram is a 64-bit key, a polynomial of per-word blake2b
    keys computed by numpy for all positions at once; a false match needs a 64-bit collision.

    The training split is streamed once and only what it shares is kept, so memory grows with
    the held-out texts, never with the training split (a web-scale corpus included): a train
    word outside the held-out vocabulary cannot be in a shared n-gram, so it is not even hashed.
    """

    _WORD = re.compile(r"[^\W_]+")
    _MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it mod 2**64 loses no bit
    _UNKNOWN = 0  # the code of a word outside the held-out vocabulary

    def __init__(
        self, heldout: Iterable[str], train: Iterable[str], n: int = DECONTAMINATION_WORDS
    ) -> None:
        if n < 1:
            raise ValueError(f"n-gram length must be at least 1, got {n}")
        self.n = n
        self._word_keys: dict[str, int] = {}
        held = [self._keys(self._words(text, learn=True)) for text in heldout]
        held_keys = np.unique(np.concatenate([np.empty(0, np.uint64), *held]))
        shared = [np.empty(0, np.uint64)]
        for text in train:
            keys = self._keys(self._words(text, learn=False))
            shared.append(keys[_sorted_contains(held_keys, keys)])
        self._shared = np.unique(np.concatenate(shared))

    def _words(self, text: str, learn: bool) -> np.ndarray:
        """The text's word codes; unknown words are `_UNKNOWN` unless `learn` adds them."""
        words = self._WORD.findall(text.lower())
        if learn:
            for word in set(words).difference(self._word_keys):
                digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
                self._word_keys[word] = int.from_bytes(digest, "little") or 1  # never _UNKNOWN
        lookup = self._word_keys.get
        return np.fromiter((lookup(w, self._UNKNOWN) for w in words), np.uint64, len(words))

    def _keys(self, codes: np.ndarray) -> np.ndarray:
        """Keys of the n-grams at every position, those holding an unknown word left out."""
        count = max(len(codes) - self.n + 1, 0)
        keys = np.zeros(count, dtype=np.uint64)
        for offset in range(self.n if count else 0):
            keys = keys * self._MULTIPLIER + codes[offset : offset + count]  # wraps mod 2**64
        unknown = np.concatenate(([0], np.cumsum(codes == self._UNKNOWN)))
        return keys[unknown[self.n : self.n + count] == unknown[:count]]

    def overlaps(self, text: str) -> bool:
        """Whether `text` (held-out text, or part of it) shares an n-gram with the train split."""
        # learn=False: a word the held-out side lacks cannot be in a shared n-gram
        return bool(
            _sorted_contains(self._shared, self._keys(self._words(text, learn=False))).any()
        )


def _sorted_contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Which of `keys` are in `sorted_keys` (ascending), by binary search."""
    if sorted_keys.size == 0:
        return np.zeros(keys.shape, dtype=bool)
    where = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return sorted_keys[where] == keys
