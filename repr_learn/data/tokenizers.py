"""Host-side text tokenizers for image-text (CLIP/SigLIP) training.

Captions become fixed-length int32 id arrays on the host, in the input
pipeline, so the accelerator only ever sees dense [batch, context] arrays.

* `ByteTokenizer`: UTF-8 bytes; needs no files, for quickstarts and tests.
* `ClipBpeTokenizer`: OpenAI CLIP's byte-level BPE, id for id the same as
  open_clip 3.3.0's `SimpleTokenizer` with its defaults, so text towers imported
  from OpenAI/open_clip checkpoints see the ids they were trained on
  (tests/golden/tokenizers/clip_bpe.json pins this). Its vocabulary file ships
  inside the `open_clip_torch` wheel; we only read that file, since importing
  `open_clip` would import torch.

Both lay a row out as start-of-text, tokens, end-of-text, then pad id 0; a row
longer than the context is cut and its last slot set to end-of-text, as
`open_clip.tokenize` does.
"""

import gzip
import html
import os
from typing import Sequence

import ftfy
import numpy as np
import regex

from repr_learn.data import open_clip_files

TOKENIZERS = ("bytes", "clip_bpe")

CLIP_VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
# CLIP reads the first 49152 - 256 - 2 = 48894 merges of the file; with 2 x 256
# byte tokens and 2 specials that makes its 49408 ids.
CLIP_NUM_MERGES = 49152 - 256 - 2
_WORD_END = "</w>"
_SOT, _EOT = "<start_of_text>", "<end_of_text>"
# CLIP's pre-tokenizer: special tokens (literally in a caption, they encode to
# their ids), English contractions, runs of letters, single digits, and runs of
# anything else that is not whitespace. IGNORECASE as in CLIP.
_WORDS = regex.compile(
    "|".join(regex.escape(t) for t in (_SOT, _EOT))
    + r"|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+",
    regex.IGNORECASE)


class _Tokenizer:
  """Shared row layout: [sot, *tokens, eot, 0, ...], EOT kept on truncation."""

  name: str
  vocab_size: int
  pad_id = 0
  sot_id: int
  eot_id: int

  def encode(self, text: str) -> list[int]:
    raise NotImplementedError

  def __call__(self, texts: Sequence[str], context_length: int) -> np.ndarray:
    """int32 [len(texts), context_length] ids; a lone string counts as one text."""
    if isinstance(texts, str):
      texts = [texts]
    if context_length < 1:
      raise ValueError(f"context_length must be >= 1, got {context_length}.")
    out = np.full((len(texts), context_length), self.pad_id, np.int32)
    for row, text in enumerate(texts):
      ids = [self.sot_id, *self.encode(text), self.eot_id]
      if len(ids) > context_length:
        ids = ids[:context_length]
        ids[-1] = self.eot_id
      out[row, :len(ids)] = ids
    return out


class ByteTokenizer(_Tokenizer):
  """UTF-8 bytes of the raw text (no cleaning): byte b -> id b + 3."""

  name = "bytes"
  pad_id, sot_id, eot_id = 0, 1, 2
  vocab_size = 256 + 3

  def encode(self, text: str) -> list[int]:
    return [b + 3 for b in text.encode("utf-8")]

  def decode(self, ids: Sequence[int]) -> str:
    """Text of the byte ids; pad and special ids are dropped."""
    return bytes(int(i) - 3 for i in ids if int(i) >= 3).decode("utf-8", errors="replace")


def _byte_to_char() -> dict[int, str]:
  """GPT-2/CLIP's reversible byte -> printable character map.

  Printable Latin-1 bytes stand for themselves; the other 68 (controls, space,
  soft hyphen, ...) take the characters from U+0100 on, in byte order.
  """
  kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
          *range(ord("®"), ord("ÿ") + 1)]
  table = {b: chr(b) for b in kept}
  for b in range(256):
    if b not in table:
      table[b] = chr(256 + len(table) - len(kept))
  return table  # Ordered as CLIP's vocabulary: kept bytes, then the others.


def clean_caption(text: str) -> str:
  """CLIP's 'lower' cleaning: ftfy, HTML unescaped twice, whitespace collapsed, lowercased."""
  text = html.unescape(html.unescape(ftfy.fix_text(text)))
  return " ".join(text.split()).lower()


def find_clip_vocab() -> str:
  """Path of the vocabulary in the installed open_clip_torch, without importing it."""
  try:
    return open_clip_files.path(CLIP_VOCAB_FILE)
  except FileNotFoundError:
    raise FileNotFoundError(
        f"CLIP's BPE vocabulary {CLIP_VOCAB_FILE} was not found: run `{open_clip_files.INSTALL}` "
        "(only its vocabulary file is used) or set data.tokenizer_vocab to the file's "
        "path.") from None


def _read_merges(path: str, num_merges: int | None) -> list[tuple[str, str]]:
  """Merge rules, in priority order, from a gzip'd BPE file (first line: a header)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f"BPE vocabulary {path!r} does not exist; set data.tokenizer_vocab to CLIP's "
        f"{CLIP_VOCAB_FILE}, or leave it unset after `pip install --no-deps open_clip_torch==3.3.0`.")
  with gzip.open(path, "rt", encoding="utf-8") as f:
    lines = f.read().split("\n")[1:]
  if num_merges is not None:
    lines = lines[:num_merges]
  merges = []
  for number, line in enumerate(lines, start=2):
    parts = tuple(line.split())
    if not parts:  # A small file's trailing newline.
      continue
    if len(parts) != 2:
      raise ValueError(f"{path}:{number}: a merge is two symbols, got {line!r}.")
    merges.append(parts)
  return merges


class ClipBpeTokenizer(_Tokenizer):
  """OpenAI CLIP's byte-level BPE (49408 ids), as open_clip 3.3.0 tokenizes.

  Args:
    vocab_path: gzip'd merges file; None finds the one shipped with open_clip_torch.
    num_merges: how many merges to read (all of a smaller file's); None reads all.
  """

  name = "clip_bpe"
  pad_id = 0  # Also the id of "!": decode() of padded rows shows "!!!".

  def __init__(self, vocab_path: str | None = None, num_merges: int | None = CLIP_NUM_MERGES):
    merges = _read_merges(vocab_path or find_clip_vocab(), num_merges)
    self._byte_to_char = _byte_to_char()
    self._char_to_byte = {c: b for b, c in self._byte_to_char.items()}
    symbols = list(self._byte_to_char.values())
    vocab = [*symbols, *(s + _WORD_END for s in symbols), *(a + b for a, b in merges), _SOT, _EOT]
    self._id_to_token = vocab
    self._token_to_id = {token: i for i, token in enumerate(vocab)}
    self._ranks = {pair: rank for rank, pair in enumerate(merges)}
    self.sot_id, self.eot_id = self._token_to_id[_SOT], self._token_to_id[_EOT]
    self.vocab_size = len(vocab)
    # Per-word ids, as CLIP caches: caption words repeat a lot.
    self._cache = {_SOT: [self.sot_id], _EOT: [self.eot_id]}

  def _merge(self, word: str) -> list[str]:
    """Applies merges, best-ranked pair first, each to all its left-to-right occurrences."""
    parts = [*word[:-1], word[-1] + _WORD_END]
    while len(parts) > 1:
      pair = min(zip(parts, parts[1:]), key=lambda p: self._ranks.get(p, len(self._ranks)))
      if pair not in self._ranks:
        break
      merged, i = [], 0
      while i < len(parts):
        if i + 1 < len(parts) and (parts[i], parts[i + 1]) == pair:
          merged.append(parts[i] + parts[i + 1])
          i += 2
        else:
          merged.append(parts[i])
          i += 1
      parts = merged
    return parts

  def _word_ids(self, word: str) -> list[int]:
    ids = self._cache.get(word)
    if ids is None:
      ids = [self._token_to_id[p] for p in self._merge(word)]
      self._cache[word] = ids
    return ids

  def encode(self, text: str) -> list[int]:
    """Token ids of one caption, without start/end of text."""
    ids = []
    for word in _WORDS.findall(clean_caption(text)):
      ids.extend(self._word_ids("".join(self._byte_to_char[b] for b in word.encode("utf-8"))))
    return ids

  def decode(self, ids: Sequence[int]) -> str:
    """Text of `ids` as CLIP decodes: each word end becomes a space, pads are "!"."""
    chars = "".join(self._id_to_token[int(i)] for i in ids)
    data = bytes(self._char_to_byte[c] for c in chars)
    return data.decode("utf-8", errors="replace").replace(_WORD_END, " ")


def build_tokenizer(name: str, vocab_path: str | None = None) -> _Tokenizer:
  """The tokenizer called `name` (one of TOKENIZERS); `vocab_path` is for clip_bpe only."""
  if name == "bytes":
    return ByteTokenizer()
  if name == "clip_bpe":
    return ClipBpeTokenizer(vocab_path)
  raise ValueError(f"Unknown tokenizer {name!r}; choose one of: {', '.join(TOKENIZERS)}.")
