"""Text tokenizers: bytes by hand, CLIP's BPE against open_clip's own ids.

tests/golden/tokenizers/clip_bpe.json (made by tests/golden/make_tokenizer_golden.py
with torch and open_clip) holds open_clip.tokenize's ids for a corpus; the CLIP
tests need only the vocabulary file of the open_clip_torch wheel (installed with
--no-deps), and a live comparison runs where torch and open_clip import.
"""

import gzip
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from repr_learn.data import open_clip_files
from repr_learn.data import tokenizers

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "tokenizers", "clip_bpe.json")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _golden():
  with open(GOLDEN, encoding="utf-8") as f:
    return json.load(f)


def _padded(ids: list[int], length: int) -> list[int]:
  return ids + [0] * (length - len(ids))


@pytest.fixture(scope="module")
def clip():
  try:
    path = tokenizers.find_clip_vocab()
  except FileNotFoundError:
    pytest.skip("CLIP's vocabulary is not installed: pip install --no-deps open_clip_torch==3.3.0")
  return tokenizers.ClipBpeTokenizer(path)


# --- ByteTokenizer ---------------------------------------------------------


def test_byte_tokenizer_ids_padding_and_shape():
  tok = tokenizers.ByteTokenizer()
  assert (tok.name, tok.vocab_size, tok.pad_id, tok.sot_id, tok.eot_id) == ("bytes", 259, 0, 1, 2)
  assert tok.encode("hi!") == [ord("h") + 3, ord("i") + 3, ord("!") + 3] == [107, 108, 36]
  out = tok(["hi!", "", "a"], 6)
  assert out.shape == (3, 6) and out.dtype == np.int32
  np.testing.assert_array_equal(out, [[1, 107, 108, 36, 2, 0], [1, 2, 0, 0, 0, 0], [1, 100, 2, 0, 0, 0]])
  assert tok(("hi!",), 5).tolist() == [[1, 107, 108, 36, 2]]  # Exactly fits: no truncation.
  assert tok.decode(out[0]) == "hi!"


def test_byte_tokenizer_truncation_keeps_eot_last():
  tok = tokenizers.ByteTokenizer()
  assert tok(["hello world"], 4).tolist() == [[1, 107, 104, 2]]
  assert tok(["hello"], 1).tolist() == [[2]]
  assert tok("hello", 3).tolist() == [[1, 107, 2]]  # A lone string is one text.
  with pytest.raises(ValueError, match="context_length"):
    tok(["x"], 0)


def test_byte_tokenizer_non_ascii():
  tok = tokenizers.ByteTokenizer()
  assert tok.encode("é") == [0xC3 + 3, 0xA9 + 3]
  assert tok.encode("日") == [0xE6 + 3, 0x97 + 3, 0xA5 + 3]
  assert tok.decode(tok.encode("Grüße 日本 🐱")) == "Grüße 日本 🐱"
  assert max(tok.encode("\xff\U0010ffff")) < tok.vocab_size


# --- BPE on a hand-made merges file -----------------------------------------

# Byte ids follow CLIP's byte order: "!".."~" are 0..93, "¡".."¬" 94..105,
# "®".."ÿ" 106..187, then the other 68 bytes (0..32, 127..160, 173) 188..255;
# ids 256..511 are the same bytes ending a word ("</w>").
_TINY_MERGES = ["l o", "lo w</w>", "e r</w>", "lo w", "a a"]  # ids 512..516


def _write_merges(path, merges) -> str:
  with gzip.open(path, "wt", encoding="utf-8") as f:
    f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
  return str(path)


@pytest.fixture
def tiny(tmp_path):
  return tokenizers.ClipBpeTokenizer(_write_merges(tmp_path / "tiny.txt.gz", _TINY_MERGES))


def test_tiny_bpe_vocabulary(tiny):
  assert (tiny.vocab_size, tiny.sot_id, tiny.eot_id, tiny.pad_id) == (519, 517, 518, 0)


def test_tiny_bpe_merges_by_rank(tiny):
  ord_id = lambda c: ord(c) - 33  # Printable ASCII.
  end = lambda c: ord_id(c) + 256
  # low: l o w</w> -> lo w</w> -> low</w>.
  assert tiny.encode("low") == [513]
  # lower: lo w e r</w> -> "e r</w>" (rank 2) beats "lo w" (rank 3) -> low er</w>.
  assert tiny.encode("lower") == [515, 514]
  # lowest: low e s t</w>; "LOWEST" is lowercased first.
  assert tiny.encode("LOWEST") == [515, ord_id("e"), ord_id("s"), end("t")]
  # A pair merges left to right without overlap: a a a a</w> -> aa a a</w>.
  assert tiny.encode("aaaa") == [516, ord_id("a"), end("a")]
  assert tiny.encode("aaa") == [516, end("a")]
  # Punctuation and each digit are words of their own; "!" ends its word.
  assert tiny.encode("low!! 42") == [513, ord_id("!"), end("!"), end("4"), end("2")]
  # é is bytes C3 A9: C3 is id 106 + (0xC3 - 0xAE), A9 is 94 + (0xA9 - 0xA1), ending the word.
  assert tiny.encode("é") == [127, 102 + 256]
  assert tiny(["low lower", "aaaa aaaa"], 5).tolist() == [[517, 513, 515, 514, 518],
                                                          [517, 516, 64, 320, 518]]
  assert tiny.decode([517, 513, 515, 514, 518]) == "<start_of_text>low lower <end_of_text>"


def test_tiny_bpe_num_merges(tmp_path):
  path = _write_merges(tmp_path / "tiny.txt.gz", _TINY_MERGES)
  two = tokenizers.ClipBpeTokenizer(path, num_merges=2)
  assert (two.vocab_size, two.sot_id) == (516, 514)
  assert two.encode("lower") == [512, ord("w") - 33, ord("e") - 33, ord("r") - 33 + 256]
  assert tokenizers.ClipBpeTokenizer(path, num_merges=None).vocab_size == 519


def test_malformed_merges_file(tmp_path):
  path = _write_merges(tmp_path / "bad.txt.gz", ["l o", "l o w"])
  with pytest.raises(ValueError, match=r"bad.txt.gz:3"):
    tokenizers.ClipBpeTokenizer(path)


# --- Missing vocabulary and the factory ---------------------------------------


def test_missing_vocab_names_the_fix(monkeypatch, tmp_path):
  monkeypatch.setattr(open_clip_files.importlib.util, "find_spec", lambda name: None)
  for path in (None, str(tmp_path / "nope.txt.gz")):
    with pytest.raises(FileNotFoundError, match="pip install --no-deps open_clip_torch") as err:
      tokenizers.ClipBpeTokenizer(path)
    assert "\n" not in str(err.value) and "data.tokenizer_vocab" in str(err.value)


def test_build_tokenizer(tmp_path):
  assert tokenizers.TOKENIZERS == ("bytes", "clip_bpe")
  assert isinstance(tokenizers.build_tokenizer("bytes"), tokenizers.ByteTokenizer)
  tok = tokenizers.build_tokenizer("clip_bpe", _write_merges(tmp_path / "t.txt.gz", _TINY_MERGES))
  assert tok.name == "clip_bpe" and tok.vocab_size == 519
  with pytest.raises(ValueError, match="bytes, clip_bpe") as err:
    tokenizers.build_tokenizer("sentencepiece")
  assert "\n" not in str(err.value)


# --- CLIP's real vocabulary: golden ids from open_clip -----------------------


def test_clip_vocab_matches_golden(clip):
  golden = _golden()
  with open(tokenizers.find_clip_vocab(), "rb") as f:
    assert hashlib.sha256(f.read()).hexdigest() == golden["vocab_sha256"], (
        "the installed CLIP vocabulary is not the one the golden file was made with")
  assert (clip.vocab_size, clip.sot_id, clip.eot_id, clip.pad_id) == (49408, 49406, 49407, 0)
  assert (golden["vocab_size"], golden["sot_id"], golden["eot_id"]) == (49408, 49406, 49407)


def test_clip_cleaning_matches_golden():
  mismatches = [(e["text"], e["clean"], tokenizers.clean_caption(e["text"]))
                for e in _golden()["entries"] if tokenizers.clean_caption(e["text"]) != e["clean"]]
  assert not mismatches, mismatches


@pytest.mark.parametrize("length", [77, 16])
def test_clip_ids_match_golden(clip, length):
  entries = _golden()["entries"]
  got = clip([e["text"] for e in entries], length)
  assert got.shape == (len(entries), length) and got.dtype == np.int32
  mismatches = [(e["text"], row.tolist(), e["ids"][str(length)])
                for e, row in zip(entries, got) if row.tolist() != _padded(e["ids"][str(length)], length)]
  assert not mismatches, mismatches
  assert (got[:, -1] == clip.eot_id).any()  # Something was truncated.


def test_clip_decode_round_trip(clip):
  for text in ["a photo of a cat", "two dogs playing in the snow near a lake"]:
    assert clip.decode(clip.encode(text)) == text + " "
  # Punctuation and each digit end a word, so only the spaces differ.
  for text in ["a photo of a cat, taken in 2024!", "it's a well-known state-of-the-art model (v1.5)."]:
    assert "".join(clip.decode(clip.encode(text)).split()) == "".join(text.split())


def test_default_vocab_does_not_import_open_clip_or_torch():
  code = ("import sys; from repr_learn.data import tokenizers; tokenizers.ClipBpeTokenizer(); "
          "print(sorted(m for m in ('open_clip', 'torch', 'jax') if m in sys.modules))")
  try:
    tokenizers.find_clip_vocab()
  except FileNotFoundError:
    pytest.skip("CLIP's vocabulary is not installed: pip install --no-deps open_clip_torch==3.3.0")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       check=True).stdout
  assert out.strip() == "[]"


# --- Live: open_clip itself, where torch is installed --------------------------


def _random_captions(count: int, seed: int) -> list[str]:
  """Mixed-script strings that stress cleaning, the regex and BPE."""
  rng = np.random.default_rng(seed)
  pools = ["abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789",
           " \t\n  ", ".,;:!?'\"()-&#/<>", "éüßçñøåÉÜİıſǅ", "日本語のテキスト", "привет",
           "नमस्ते", "\u0301\u0345\u200b\u00a0\u3000\ufb01\uff21\x1f\x85", "🐱🎉👍🏽❤️",
           "²½Ⅻ①٣", "&amp;&lt;&gt;&quot;", "'s 't 're 've 'm 'll 'd "]
  texts = []
  for _ in range(count):
    parts = [pools[i] for i in rng.integers(0, len(pools), rng.integers(1, 12))]
    texts.append("".join(p[rng.integers(0, len(p)):][:rng.integers(1, 6)] for p in parts))
  return texts


def test_live_against_open_clip(clip):
  pytest.importorskip("torch", reason="the live comparison needs torch")
  open_clip = pytest.importorskip("open_clip", reason="the live comparison needs open_clip")
  texts = [e["text"] for e in _golden()["entries"]] + _random_captions(300, seed=0)
  for length in (77, 16, 5):
    want = open_clip.tokenize(texts, context_length=length).numpy()
    got = clip(texts, length)
    bad = [t for t, g, w in zip(texts, got, want) if not np.array_equal(g, w)]
    assert not bad, (length, bad[:5])
  reference = open_clip.tokenizer._tokenizer  # pylint: disable=protected-access
  ids = clip.encode(texts[0]) + [0, clip.sot_id, clip.eot_id]
  assert clip.decode(ids) == reference.decode(ids)
