"""Captions as fixed-shape token arrays, the form every captioned source gives.

An image's captions become `tokens` int32 [max_captions, context_length] (the
first `num_captions` rows real, the rest zeros), tokenized on the host in the
input pipeline, so the train step has static shapes and draws one caption per
image per step on the device (COCO's five captions, one at a time, as
big_vision and open_clip train on them), while retrieval reads them all.
"""

import functools
from typing import Sequence

import numpy as np

from repr_learn.data import tokenizers


@functools.lru_cache(maxsize=4)
def tokenizer(name: str, vocab_path: str | None = None):
  """The tokenizer `data.tokenizer` names, built once per process (CLIP's BPE
  reads a 1.4 MB vocabulary)."""
  return tokenizers.build_tokenizer(name, vocab_path)


def from_config(data_config):
  """The tokenizer of `config.data`."""
  return tokenizer(data_config.tokenizer, data_config.get("tokenizer_vocab"))


def caption_tokens(texts: Sequence[str], tokenize, context_length: int,
                   max_captions: int) -> dict[str, np.ndarray]:
  """{'tokens': int32 [max_captions, context_length], 'num_captions': int32}
  for one image's captions (the first `max_captions` kept)."""
  texts = list(texts)[:max_captions]
  tokens = np.zeros((max_captions, context_length), np.int32)
  if texts:
    tokens[:len(texts)] = tokenize(texts, context_length)
  return {"tokens": tokens, "num_captions": np.int32(len(texts))}


def decoded(texts) -> list[str]:
  """Caption strings from what TFDS stores (bytes or str)."""
  return [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in texts]
