"""Writes `tests/golden/tokenizers/clip_bpe.json`, open_clip's own CLIP token ids.

Why this exists: `repr_learn.data.tokenizers.ClipBpeTokenizer` must give the
very ids open_clip's `SimpleTokenizer` gives (its default clean='lower'), or a
text tower imported from an OpenAI/open_clip checkpoint reads the wrong tokens.
The tests run without torch, and `open_clip` imports torch, so this script runs
the real `open_clip.tokenize` once on a fixed corpus that exercises the cleaning
(ftfy, HTML entities, whitespace), the pre-tokenizer regex (contractions,
digits, punctuation, non-Latin scripts, emoji), BPE and truncation, and stores
the ids that tests/test_tokenizers.py compares against.

Run it from the repository root, in an environment with torch and open_clip
(only the wheel is needed, not its other dependencies):

    pip install --no-deps open_clip_torch==3.3.0 && pip install regex ftfy
    python tests/golden/make_tokenizer_golden.py

Rerun it (and commit the regenerated file) whenever the corpus here changes or
open_clip, its vocabulary, ftfy or regex move to a new version.

The file holds the versions, the vocabulary's sha256 and, per caption: `text`,
`clean` (open_clip's cleaned text), and `ids` per context length (77 and a short
one that truncates). Rows are stored without their trailing pad zeros: a row
always ends with end-of-text (49407), so right-padding with 0 to the context
length restores it (id 0 is also "!", but never after the final end-of-text).
"""

import hashlib
import json
import os
import platform
import sys
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ftfy  # noqa: E402
import open_clip  # noqa: E402
from open_clip import tokenizer as open_clip_tokenizer  # noqa: E402
import regex  # noqa: E402
import torch  # noqa: E402

OUT_PATH = os.path.join(ROOT, "tests", "golden", "tokenizers", "clip_bpe.json")
CONTEXT_LENGTHS = (77, 16)

_LONG = ("A very long caption that keeps going: a golden retriever puppy with a red collar runs "
         "across a wide green meadow under a bright blue summer sky, chasing a yellow tennis "
         "ball thrown by a smiling child in a striped shirt, while two adults sit on a checkered "
         "picnic blanket beside a basket of sandwiches, apples and lemonade, and in the "
         "distance a row of tall pine trees, a small wooden barn and snow-capped mountains "
         "frame the whole cheerful scene on a warm afternoon.")

CORPUS = [
    # Ordinary captions.
    "a photo of a cat.",
    "A photo of a dog sitting on a red couch.",
    "Two people riding bicycles down a busy street at sunset!",
    "the the the cat sat on the mat with the other cat",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    # Punctuation and digits (each digit is its own token).
    "What is this? A bird... no, a plane!!!",
    "hyphen-ated, well-known, state-of-the-art (really); yes: no/maybe",
    "The year 2024: 3.14159 pies for $12.99 (50% off) #1",
    "email someone@example.com or visit https://example.org/a?b=c&d=e",
    "!!!???...",
    # Contractions (ASCII apostrophe only; "'tis" splits as "'t" + "is").
    "it's here, they're late, we've been, I'm sure, you'll see, he'd go, don't",
    "ROCK'N'ROLL, 'TIS THE SEASON, O'NEILL'S PUB",
    # Case.
    "UPPER lower MiXeD CaSe",
    "İstanbul and DİYARBAKIR",
    # Whitespace.
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\nand  multiple     spaces\x0b\x0cvt ff",
    "no-break\u00a0space, zero\u200bwidth space, ideographic\u3000space",
    # HTML entities: ftfy unescapes once (unless the text has '<'), then html.unescape twice.
    "fish &amp; chips",
    "fish &amp;amp; chips &lt;3 &quot;yum&quot; &#39;ok&#39;",
    "fish &amp;amp;amp; chips",
    "<b>fish &amp;amp;amp; chips</b>",
    # Special-token strings inside a caption encode to their ids.
    "a caption with <end_of_text> and &lt;start_of_text&gt; inside",
    # ftfy's fixes: mojibake, curly quotes, ligatures, full width, NFC, controls.
    "mojibake: cafÃ© and â€œquotesâ€\x9d",
    "curly \u201cquotes\u201d and it\u2019s fine",
    "ligatures: \ufb01ne \ufb02ower",
    "fullwidth: \uff21\uff22\uff23\uff11\uff12\uff13",
    "decomposed e\u0301 vs composed \u00e9",
    "control\x1fchars\x07and\x00nul\x1b[31mred\x1b[0m",
    # Accented and non-Latin text, emoji.
    "Café crème brûlée à la mode",
    "Über München: Straße, Fußgänger und Grüße",
    "東京の夜景、日本語のキャプション",
    "Привет, мир! Кошка на диване.",
    "नमस्ते दुनिया",
    "مرحبا بالعالم ١٢٣",
    "emoji: \U0001F431\U0001F436 \U0001F389\U0001F44D\U0001F3FD \u2764\ufe0f",
    "superscript x\u00b2, \u00bd cup, roman \u216b, circled \u2460",
    "greek \u1f00\u0345 and \u03b1\u0345\u03b9",
    # Truncation and edge cases.
    _LONG,
    "",
    "   \n\t  ",
]


def main():
  # The defaults that open_clip.tokenize uses.
  default = open_clip_tokenizer._tokenizer  # pylint: disable=protected-access
  assert isinstance(default, open_clip_tokenizer.SimpleTokenizer)
  assert default.clean_fn is open_clip_tokenizer._clean_lower  # pylint: disable=protected-access
  assert default.reduction_fn is None and default.vocab_size == 49408
  vocab_path = open_clip_tokenizer.default_bpe()
  with open(vocab_path, "rb") as f:
    vocab_sha256 = hashlib.sha256(f.read()).hexdigest()

  rows = {n: open_clip.tokenize(CORPUS, context_length=n).tolist() for n in CONTEXT_LENGTHS}
  entries = []
  for i, text in enumerate(CORPUS):
    ids = {}
    for n in CONTEXT_LENGTHS:
      row = rows[n][i]
      while row and row[-1] == 0:
        row = row[:-1]
      ids[str(n)] = row
    entries.append({"text": text, "clean": default.clean_fn(text), "ids": ids})
  assert any(len(e["ids"]["77"]) == 77 for e in entries), "no caption truncates at 77"

  meta = {
      "generator": "tests/golden/make_tokenizer_golden.py",
      "reference": "open_clip.tokenize (SimpleTokenizer, clean='lower')",
      "context_lengths": list(CONTEXT_LENGTHS),
      "ids_note": "trailing pad zeros removed; right-pad with 0 to the context length",
      "vocab_file": os.path.basename(vocab_path),
      "vocab_sha256": vocab_sha256,
      "vocab_size": default.vocab_size,
      "sot_id": default.sot_token_id,
      "eot_id": default.eot_token_id,
      "versions": {
          "open_clip_torch": open_clip.__version__,
          "ftfy": ftfy.__version__,
          "regex": regex.__version__,
          "torch": torch.__version__,
          "python": platform.python_version(),
          "unicodedata": unicodedata.unidata_version,
      },
  }
  os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
  with open(OUT_PATH, "w", encoding="utf-8") as f:
    # One caption per line keeps the file small and its diffs readable.
    f.write("{\n")
    for key, value in meta.items():
      f.write(f"  {json.dumps(key)}: {json.dumps(value)},\n")
    f.write('  "entries": [\n')
    f.write(",\n".join("    " + json.dumps(e) for e in entries))
    f.write("\n  ]\n}\n")
  print(f"wrote {OUT_PATH}: {len(entries)} captions, {os.path.getsize(OUT_PATH)} bytes", file=sys.stderr)


if __name__ == "__main__":
  main()
