"""Users' own captioned images, for image-text training (CLIP, SigLIP).

Two layouts, open_clip's:
  * a caption table: CSV/TSV with a header row, or JSONL, naming an image file
    and a caption per row; rows naming the same image are its several captions
    (COCO's five per image, which retrieval evaluation needs);
  * webdataset tar shards, as img2dataset writes them: `key.jpg` + `key.txt`.
Both are read by random access (tar members by seeking to offsets indexed at
open time) rather than streamed, so grain shuffles, shards across hosts and
resumes them as it does every other source.

As in image folders, every image is checked up front: a missing or
undecodable image, or a tar image without its caption, is named at start-up
(`data.bad_images="error"`) or left out (`"skip"`) instead of crashing a worker
mid-run. Verdicts are cached (a table's by image file, a shard's whole index by
the shard's size and mtime), so a second start reads no image data.
"""

import concurrent.futures
import collections
import csv
import glob
import hashlib
import io
import json
import os
import re
import tarfile
import threading

from absl import logging
import numpy as np

from repr_learn.data import captions as captions_lib
from repr_learn.data import image_folder
from repr_learn.data import resizing

TABLE_EXTENSIONS = (".csv", ".tsv", ".jsonl")
IMAGE_KEYS = ("filepath", "path", "image")  # open_clip's --csv-img-key default first
CAPTION_KEYS = ("title", "caption", "text")  # open_clip's --csv-caption-key default first
SHARD_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
ACCEPTED = ("a .csv/.tsv/.jsonl caption table, a .tar shard, a directory of .tar shards, "
            "or a glob or brace pattern of shards (shard-{00000..00009}.tar)")
_SKIP_HINT = "fix or remove them, or pass --config.data.bad_images=skip to leave them out"
_LISTED = 5
_INDEX_VERSION = 1
_OPEN_SHARDS_PER_THREAD = 16
_CHECK_CHUNK = 64
# webdataset's split of a member name: the key runs to the first dot of the basename.
_MEMBER = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
_BRACE = re.compile(r"\{([^{}]*)\}")
_GLOB = re.compile(r"[*?[]")


class _Strings:
  """Strings packed as UTF-8 bytes and offsets: two arrays to pickle to each
  grain worker instead of millions of Python objects."""

  def __init__(self, strings):
    encoded = [s.encode() for s in strings]
    self._offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(b) for b in encoded], out=self._offsets[1:])
    self._blob = np.frombuffer(b"".join(encoded), np.uint8)

  def __len__(self) -> int:
    return len(self._offsets) - 1

  def __getitem__(self, i: int) -> str:
    return self._blob[self._offsets[i]:self._offsets[i + 1]].tobytes().decode()


class _CaptionedSource:
  """{image, label -1, index, tokens [max_captions, L], num_captions}: the first
  num_captions rows of tokens are the image's captions in file order, the rest
  zeros. Captions are tokenized on access, in the input pipeline's threads."""

  def __init__(self, *, image_size: int, tokenizer, context_length: int, max_captions: int):
    self._image_size = image_size
    self._tokenizer = tokenizer
    self._context_length = context_length
    self._max_captions = max_captions

  def _image(self, index: int) -> np.ndarray:
    raise NotImplementedError

  def _captions_of(self, index: int) -> list[str]:
    raise NotImplementedError

  @property
  def captions(self) -> list[list[str]]:
    """Every image's captions (all of them, beyond max_captions), in index order."""
    return [self._captions_of(i) for i in range(len(self))]

  @property
  def labels(self) -> np.ndarray:
    """-1 throughout: captioned data has no classes (label-based evaluation is skipped)."""
    return np.full(len(self), -1, np.int32)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    index = int(index)
    return {**resizing.stored_example(self._image(index), self._image_size, 1.0),
            "label": np.int32(-1), "index": np.int32(index),
            **captions_lib.caption_tokens(self._captions_of(index), self._tokenizer,
                                          self._context_length, self._max_captions)}


class CaptionTableSource(_CaptionedSource):
  """Image files named by a caption table, decoded and resized on access."""

  def __init__(self, paths: list[str], captions: list[list[str]], **options):
    super().__init__(**options)
    self._paths = _Strings(paths)
    self._captions = _Strings([c for per_image in captions for c in per_image])
    self._first = np.zeros(len(captions) + 1, np.int64)
    np.cumsum([len(c) for c in captions], out=self._first[1:])

  @property
  def paths(self) -> list[str]:
    """The image files, in example-index order (embedding export names them)."""
    return [self._paths[i] for i in range(len(self))]

  def __len__(self) -> int:
    return len(self._paths)

  def _image(self, index: int) -> np.ndarray:
    return image_folder.decode(self._paths[index])

  def _captions_of(self, index: int) -> list[str]:
    return [self._captions[j] for j in range(self._first[index], self._first[index + 1])]


class TarShardSource(_CaptionedSource):
  """Examples of webdataset tar shards, read by seeking to indexed members.

  The state is the shard paths and per-example arrays (shard, image and text
  offset and size), so it pickles small; each thread opens the shards it reads
  lazily (at most a few at a time) and reads with pread, never extracting.
  """

  def __init__(self, shards: list[str], index: dict[str, np.ndarray], names: list[str],
               **options):
    super().__init__(**options)
    self._shards = list(shards)
    self._index = {k: np.asarray(v) for k, v in index.items()}
    self._names = _Strings(names)
    self._local = threading.local()

  def __getstate__(self):
    state = dict(self.__dict__)
    del state["_local"]  # open files stay in the process (and thread) that opened them
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._local = threading.local()

  @property
  def shards(self) -> list[str]:
    return list(self._shards)

  @property
  def paths(self) -> list[str]:
    """`shard/member` of each example's image, in example-index order."""
    return [f"{self._shards[self._index['shard'][i]]}/{self._names[i]}" for i in range(len(self))]

  def __len__(self) -> int:
    return len(self._index["shard"])

  def _read(self, index: int, field: str) -> bytes:
    shard = int(self._index["shard"][index])
    offset = int(self._index[f"{field}_offset"][index])
    size = int(self._index[f"{field}_size"][index])
    local = self._local
    if getattr(local, "pid", None) != os.getpid():  # forked: the parent's files are not ours
      local.pid, local.files = os.getpid(), collections.OrderedDict()
    f = local.files.pop(shard, None)
    if f is None:
      f = open(self._shards[shard], "rb", buffering=0)  # pylint: disable=consider-using-with
      if len(local.files) >= _OPEN_SHARDS_PER_THREAD:
        local.files.popitem(last=False)[1].close()
    local.files[shard] = f  # most recently used last
    data = os.pread(f.fileno(), size, offset)
    if len(data) != size:
      raise OSError(f"{self._shards[shard]} is shorter than when it was indexed; it changed "
                    "since the data was opened: restart to index it again.")
    return data

  def _image(self, index: int) -> np.ndarray:
    return image_folder.decode(io.BytesIO(self._read(index, "image")))

  def _captions_of(self, index: int) -> list[str]:
    return [self._read(index, "text").decode("utf-8", errors="replace").strip()]


def _policy_check(bad_images: str):
  if bad_images not in image_folder.BAD_IMAGE_POLICIES:
    raise ValueError(f"bad_images={bad_images!r}; use one of "
                     f"{', '.join(image_folder.BAD_IMAGE_POLICIES)}.")


def _handle_bad(problems: list[tuple[str, str]], total: int, noun: str, where: str,
                policy: str):
  """Raises (policy 'error') or logs (policy 'skip') the (name, reason) problems."""
  if not problems:
    return
  listed = ", ".join(f"{name} ({reason})" for name, reason in problems[:_LISTED])
  more = f" and {len(problems) - _LISTED} more" if len(problems) > _LISTED else ""
  if policy == "error":
    raise image_folder.BadImagesError(
        f"{len(problems)} of {total} {noun} of {where} cannot be used ({listed}{more}); "
        f"{_SKIP_HINT}.")
  logging.warning("Leaving out %d of %d %s of %s: %s%s.", len(problems), total, noun, where,
                  listed, more)


# Caption tables.


def _column(where: str, names: list[str], explicit: str | None, defaults: tuple[str, ...],
            what: str, argument: str) -> str:
  if explicit:
    if explicit in names:
      return explicit
    raise ValueError(f"{where}: no {explicit!r} column (there are: {', '.join(names)}); "
                     f"pass the {what} column's name as {argument}.")
  for name in defaults:
    if name in names:
      return name
  raise ValueError(f"{where}: no {what} column ({' / '.join(defaults)}; there are: "
                   f"{', '.join(names)}); pass its name as {argument}.")


def _delimited_rows(path: str, image_key: str | None, caption_key: str | None):
  with open(path, newline="", encoding="utf-8-sig") as f:
    reader = csv.reader(f, delimiter="\t" if path.lower().endswith(".tsv") else ",")
    header = [name.strip() for name in next(reader, [])]
    if not any(header):
      raise ValueError(f"{path}:1: no header row; a caption table's first row names its "
                       f"columns (an image path, e.g. {IMAGE_KEYS[0]}, and a caption, e.g. "
                       f"{CAPTION_KEYS[0]}).")
    image_col = header.index(_column(f"{path}:1", header, image_key, IMAGE_KEYS, "image-path",
                                     "image_key"))
    caption_col = header.index(_column(f"{path}:1", header, caption_key, CAPTION_KEYS,
                                       "caption", "caption_key"))
    for row in reader:
      if not any(cell.strip() for cell in row):
        continue  # blank line
      if len(row) <= max(image_col, caption_col):
        missing = header[max(image_col, caption_col)]
        raise ValueError(f"{path}:{reader.line_num}: no {missing!r} field (the row has {len(row)} "
                         f"of the header's {len(header)} columns); every row needs an image "
                         "path and a caption.")
      yield reader.line_num, row[image_col], [row[caption_col]]


def _jsonl_rows(path: str, image_key: str | None, caption_key: str | None):
  keys = None
  with open(path, encoding="utf-8-sig") as f:
    for line, text in enumerate(f, 1):
      if not text.strip():
        continue
      try:
        obj = json.loads(text)
      except ValueError as e:
        raise ValueError(f"{path}:{line}: not JSON ({e}); a .jsonl table holds one object "
                         "per line.") from None
      if not isinstance(obj, dict):
        raise ValueError(f"{path}:{line}: a {type(obj).__name__}, not an object; a .jsonl "
                         "table holds one object per line.")
      if keys is None:  # the first object names the fields every line uses
        keys = (_column(f"{path}:{line}", list(obj), image_key, IMAGE_KEYS, "image-path",
                        "image_key"),
                _column(f"{path}:{line}", list(obj), caption_key, CAPTION_KEYS, "caption",
                        "caption_key"))
      for key in keys:
        if key not in obj:
          raise ValueError(f"{path}:{line}: no {key!r} field; every line needs an image path "
                           "and a caption.")
      image, caption = obj[keys[0]], obj[keys[1]]
      captions = caption if isinstance(caption, list) else [caption]  # or several at once
      if not isinstance(image, str) or not all(isinstance(c, str) for c in captions):
        raise ValueError(f"{path}:{line}: the image path and the caption must be strings "
                         "(or the caption a list of strings).")
      yield line, image, captions


def read_caption_table(path: str, *, image_root: str | None = None, image_key: str | None = None,
                       caption_key: str | None = None) -> tuple[list[str], list[list[str]]]:
  """(image paths, each image's captions): images in order of first appearance,
  their captions in file order; relative paths resolve against `image_root`,
  else the table's directory."""
  base = image_root or os.path.dirname(os.path.abspath(path))
  rows = _jsonl_rows if path.lower().endswith(".jsonl") else _delimited_rows
  grouped = {}
  for line, image, captions in rows(path, image_key, caption_key):
    image, captions = image.strip(), [c.strip() for c in captions]
    if not image:
      raise ValueError(f"{path}:{line}: empty image path; every row needs an image path and "
                       "a caption.")
    if not captions or not all(captions):
      raise ValueError(f"{path}:{line}: empty caption for {image}; give every row a caption, "
                       "or remove the row.")
    full = os.path.normpath(os.path.join(base, os.path.expanduser(image)))
    grouped.setdefault(full, []).extend(captions)
  if not grouped:
    raise ValueError(f"{path}: no rows below the header; it needs one row per (image, caption).")
  return list(grouped), list(grouped.values())


def open_caption_table(path: str, *, image_size: int, tokenizer, context_length: int,
                       max_captions: int, bad_images: str = "error", image_root: str | None = None,
                       image_key: str | None = None,
                       caption_key: str | None = None) -> CaptionTableSource:
  """The images a table names, every one checked to exist and decode."""
  _policy_check(bad_images)
  paths, captions = read_caption_table(path, image_root=image_root, image_key=image_key,
                                       caption_key=caption_key)
  missing = {p for p in paths if not os.path.isfile(p)}
  # The table's own path keys image_folder's verdict cache.
  undecodable = set(image_folder.find_unreadable(os.path.abspath(path),
                                                 [p for p in paths if p not in missing]))
  base = image_root or os.path.dirname(os.path.abspath(path))
  problems = [(os.path.relpath(p, base), "missing" if p in missing else "undecodable")
              for p in paths if p in missing or p in undecodable]
  _handle_bad(problems, len(paths), "images", f"caption table {path!r}", bad_images)
  keep = [i for i, p in enumerate(paths) if p not in missing and p not in undecodable]
  if not keep:
    raise ValueError(f"Caption table {path!r} names no usable image; {_SKIP_HINT}.")
  logging.info("Caption table %s: %d images, %d captions.", path, len(keep),
               sum(len(captions[i]) for i in keep))
  return CaptionTableSource([paths[i] for i in keep], [captions[i] for i in keep],
                            image_size=image_size, tokenizer=tokenizer,
                            context_length=context_length, max_captions=max_captions)


# Tar shards.


def expand_braces(pattern: str) -> list[str]:
  """`{00000..00009}` (zero padding kept) and `{a,b}` expanded, in order."""
  match = _BRACE.search(pattern)
  if not match:
    return [pattern]
  body, head = match.group(1), pattern[:match.start()]
  tails = expand_braces(pattern[match.end():])
  span = re.fullmatch(r"(\d+)\.\.(\d+)", body)
  if span:
    first, last = span.groups()
    padded = (first.startswith("0") and len(first) > 1) or (last.startswith("0") and len(last) > 1)
    width = max(len(first), len(last)) if padded else 0
    step = 1 if int(last) >= int(first) else -1
    items = [str(i).zfill(width) for i in range(int(first), int(last) + step, step)]
  elif "," in body:
    items = body.split(",")
  else:
    items = ["{" + body + "}"]  # not an expansion: a literal brace
  return [head + item + tail for item in items for tail in tails]


def shard_paths(path: str) -> list[str]:
  """The .tar shards `path` names: itself, a directory's (sorted), or a glob's
  (sorted) or brace pattern's (in expansion order)."""
  if os.path.isdir(path):
    shards = sorted(os.path.join(path, name) for name in os.listdir(path)
                    if name.endswith(".tar") and not name.startswith("."))
    if not shards:
      raise FileNotFoundError(f"Directory {path!r} holds no .tar shards; pass {ACCEPTED}.")
    return shards
  shards = []
  for candidate in expand_braces(path):
    if _GLOB.search(candidate):
      matches = sorted(m for m in glob.glob(candidate) if m.endswith(".tar"))
      if not matches:
        raise FileNotFoundError(f"No .tar shards match {candidate!r}; pass {ACCEPTED}.")
      shards += matches
    elif not os.path.isfile(candidate):
      raise FileNotFoundError(f"Shard {candidate!r} (of {path!r}) does not exist; pass {ACCEPTED}.")
    elif not candidate.endswith(".tar"):
      raise ValueError(f"{candidate!r} (of {path!r}) is not a .tar shard; pass {ACCEPTED}.")
    else:
      shards.append(candidate)
  return list(dict.fromkeys(shards))


def _decodes_bytes(data: bytes) -> bool:
  try:
    image_folder.decode(io.BytesIO(data))
    return True
  except Exception:  # PIL raises OSError, SyntaxError, ValueError... for bad files.
    return False


def _check_images(path: str, spans: list[tuple[int, int]]) -> list[bool]:
  with open(path, "rb", buffering=0) as f:
    return [_decodes_bytes(os.pread(f.fileno(), size, offset)) for offset, size in spans]


def _index_shard(path: str, pool) -> dict[str, list]:
  """Per key with an image or a caption, in file order: member name, image and
  text (offset, size) (-1 where absent) and what makes it unusable ('' if nothing)."""
  samples = {}
  try:
    with tarfile.open(path, "r:") as tar:
      for member in tar:
        match = _MEMBER.match(member.name) if member.isreg() else None
        if not match:
          continue
        key, extension = match.group(1), match.group(2).lower()
        field = ("image" if extension in SHARD_IMAGE_EXTENSIONS else
                 "text" if extension == "txt" else None)
        if field:  # other members (key.json...) are ignored; a duplicate keeps the first
          samples.setdefault(key, {}).setdefault(field, (member.name, member.offset_data,
                                                         member.size))
  except (tarfile.TarError, EOFError) as e:
    raise ValueError(f"{path} cannot be read as an uncompressed tar file ({e}); shards must "
                     "be plain .tar (webdataset / img2dataset output).") from None
  index = {"name": [], "image_offset": [], "image_size": [], "text_offset": [],
           "text_size": [], "problem": []}
  with open(path, "rb", buffering=0) as f:
    for key, sample in samples.items():
      name, image_offset, image_size = sample.get("image", (key, -1, -1))
      _, text_offset, text_size = sample.get("text", (key, -1, -1))
      problem = ("no image" if image_offset < 0 else "no caption" if text_offset < 0 else "")
      if not problem and not os.pread(f.fileno(), text_size, text_offset).strip():
        problem = "empty caption"
      for field, value in zip(index, (name, image_offset, image_size, text_offset, text_size,
                                      problem)):
        index[field].append(value)
  todo = [i for i, problem in enumerate(index["problem"]) if not problem]
  chunks = [todo[i:i + _CHECK_CHUNK] for i in range(0, len(todo), _CHECK_CHUNK)]
  spans = [[(index["image_offset"][i], index["image_size"][i]) for i in chunk] for chunk in chunks]
  for chunk, oks in zip(chunks, pool.map(lambda s: _check_images(path, s), spans)):
    for i, ok in zip(chunk, oks):
      index["problem"][i] = "" if ok else "undecodable"
  return index


def _index_cache_file(path: str) -> str:
  cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
  digest = hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:16]
  return os.path.join(cache, "repr_learn", "tar_index", f"{digest}.json")


def _shard_index(path: str, pool) -> dict[str, list]:
  """`_index_shard`'s result, cached by the shard's size and mtime."""
  st = os.stat(path)
  fingerprint = f"{_INDEX_VERSION}:{st.st_size}:{st.st_mtime_ns}"
  cache_path = _index_cache_file(path)
  try:
    with open(cache_path) as f:
      cached = json.load(f)
    if cached.get("path") == os.path.abspath(path) and cached.get("fingerprint") == fingerprint:
      return cached["index"]
  except (OSError, ValueError, AttributeError):
    pass
  logging.info("Indexing and checking tar shard %s.", path)
  index = _index_shard(path, pool)
  try:
    os.makedirs(os.path.dirname(cache_path), exist_ok=True)
    with open(cache_path + ".tmp", "w") as f:
      json.dump({"path": os.path.abspath(path), "fingerprint": fingerprint, "index": index}, f)
    os.replace(cache_path + ".tmp", cache_path)
  except OSError:
    pass  # No cache: the next start-up indexes again.
  return index


def open_tar_shards(path: str, *, image_size: int, tokenizer, context_length: int,
                    max_captions: int, bad_images: str = "error") -> TarShardSource:
  """The image-caption pairs of the shards `path` names (see `shard_paths`),
  shards in order and members in file order, every image checked to decode."""
  _policy_check(bad_images)
  shards = shard_paths(path)
  with concurrent.futures.ThreadPoolExecutor(min(32, (os.cpu_count() or 1) * 2)) as pool:
    indexes = [_shard_index(shard, pool) for shard in shards]
  problems = [(f"{os.path.basename(shard)}:{name}", problem)
              for shard, index in zip(shards, indexes)
              for name, problem in zip(index["name"], index["problem"]) if problem]
  total = sum(len(index["name"]) for index in indexes)
  _handle_bad(problems, total, "examples", f"{len(shards)} tar shard(s) {path!r}", bad_images)
  columns = {"shard": [], "image_offset": [], "image_size": [], "text_offset": [], "text_size": []}
  names = []
  for shard_id, index in enumerate(indexes):
    keep = [i for i, problem in enumerate(index["problem"]) if not problem]
    columns["shard"] += [shard_id] * len(keep)
    for field in ("image_offset", "image_size", "text_offset", "text_size"):
      columns[field] += [index[field][i] for i in keep]
    names += [index["name"][i] for i in keep]
  if not names:
    raise ValueError(f"The tar shards {path!r} hold no usable image-caption pair (key.jpg + "
                     f"key.txt); {_SKIP_HINT}.")
  arrays = {field: np.asarray(values, np.int32 if field == "shard" else np.int64)
            for field, values in columns.items()}
  logging.info("Tar shards %s: %d shards, %d examples.", path, len(shards), len(names))
  return TarShardSource(shards, arrays, names, image_size=image_size, tokenizer=tokenizer,
                        context_length=context_length, max_captions=max_captions)


def open_captioned(path: str, *, image_size: int, tokenizer, context_length: int,
                   max_captions: int, bad_images: str = "error", image_root: str | None = None,
                   image_key: str | None = None, caption_key: str | None = None):
  """A caption table or tar shards, by the form of `path` (see ACCEPTED).

  `tokenizer(texts, context_length)` gives int32 [len(texts), context_length];
  `image_root`, `image_key` and `caption_key` apply to caption tables only.
  """
  if not path:
    raise FileNotFoundError(f"No captioned data given; pass {ACCEPTED}.")
  if max_captions < 1 or context_length < 1:
    raise ValueError(f"max_captions={max_captions} and context_length={context_length} must "
                     "both be at least 1.")
  _policy_check(bad_images)
  path = os.path.expanduser(path)
  lower = path.lower()
  options = dict(image_size=image_size, tokenizer=tokenizer, context_length=context_length,
                 max_captions=max_captions, bad_images=bad_images)
  if os.path.isfile(path) and lower.endswith(TABLE_EXTENSIONS):
    return open_caption_table(path, image_root=image_root, image_key=image_key,
                              caption_key=caption_key, **options)
  if os.path.isfile(path) and lower.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
    raise ValueError(f"{path!r} is a compressed tar, which cannot be read by seeking; "
                     "decompress it to .tar (or pass another form: " + ACCEPTED + ").")
  if os.path.isfile(path) and not lower.endswith(".tar"):
    raise ValueError(f"{path!r} is neither a caption table nor a tar shard; pass {ACCEPTED}.")
  if not (os.path.exists(path) or _BRACE.search(path) or _GLOB.search(path)):
    raise FileNotFoundError(f"{path!r} does not exist; pass {ACCEPTED}.")
  extras = [name for name, value in (("image_root", image_root), ("image_key", image_key),
                                     ("caption_key", caption_key)) if value]
  if extras:
    raise ValueError(f"{', '.join(extras)} apply to caption tables, not to the tar shards "
                     f"{path!r}; leave them unset.")
  return open_tar_shards(path, **options)
