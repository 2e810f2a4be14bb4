"""Caption tables and tar shards of users' own image-text data."""

import concurrent.futures
import csv
import io
import json
import pickle
import tarfile

import grain
import numpy as np
from PIL import Image
import pytest

from repr_learn.data import captioned_files
from repr_learn.data import image_folder
from repr_learn.data import resizing

SIZE = 8
CONTEXT = 12


class BytesTokenizer:
  """Stand-in tokenizer: 1 = start, UTF-8 bytes + 3, 2 = end, 0 = padding."""

  def __call__(self, texts, context_length):
    out = np.zeros((len(texts), context_length), np.int32)
    for row, text in enumerate(texts):
      ids = [1] + [b + 3 for b in text.encode()][:context_length - 2] + [2]
      out[row, :len(ids)] = ids
    return out


def _options(**overrides):
  return {"image_size": SIZE, "tokenizer": BytesTokenizer(), "context_length": CONTEXT,
          "max_captions": 2, **overrides}


def _pixels(seed, size=(14, 10)):
  return np.random.default_rng(seed).integers(0, 256, size[::-1] + (3,), dtype=np.uint8)


def _encoded(pixels, fmt="PNG") -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format=fmt)
  return buffer.getvalue()


def _write_images(directory, n):
  """n lossless images of several shapes; returns their pixels."""
  directory.mkdir(parents=True, exist_ok=True)
  pixels = [_pixels(i, (10 + 2 * i, 12 - i)) for i in range(n)]
  for i, p in enumerate(pixels):
    (directory / f"{i}.png").write_bytes(_encoded(p))
  return pixels


def _stored(pixels):
  return resizing.stored_example(pixels, SIZE, 1.0)["image"]


def _write_table(path, header, rows):
  if path.suffix == ".jsonl":
    path.write_text("".join(json.dumps(dict(zip(header, row))) + "\n" for row in rows))
    return
  with open(path, "w", newline="") as f:
    writer = csv.writer(f, delimiter="\t" if path.suffix == ".tsv" else ",")
    writer.writerows([header] + rows)


def _assert_example(example, index, pixels, captions, max_captions=2):
  assert set(example) == {"image", "label", "index", "tokens", "num_captions"}
  np.testing.assert_array_equal(example["image"], _stored(pixels))
  assert example["image"].dtype == np.uint8 and example["image"].shape == (SIZE, SIZE, 3)
  assert example["label"] == -1 and example["index"] == index
  assert example["label"].dtype == example["index"].dtype == np.int32
  c = min(len(captions), max_captions)
  assert example["num_captions"] == c and example["num_captions"].dtype == np.int32
  assert example["tokens"].shape == (max_captions, CONTEXT) and example["tokens"].dtype == np.int32
  np.testing.assert_array_equal(example["tokens"][:c], BytesTokenizer()(captions[:c], CONTEXT))
  assert not example["tokens"][c:].any()


def test_csv_with_open_clip_default_columns_and_relative_paths(tmp_path):
  pixels = _write_images(tmp_path / "images", 3)
  table = tmp_path / "train.csv"
  _write_table(table, ["filepath", "title", "extra"],
               [[f"images/{i}.png", f"photo number {i}, with a comma", "x"] for i in range(3)])
  source = captioned_files.open_captioned(str(table), **_options())
  assert len(source) == 3
  for i in range(3):
    _assert_example(source[i], i, pixels[i], [f"photo number {i}, with a comma"])
  assert source.paths == [str(tmp_path / "images" / f"{i}.png") for i in range(3)]
  assert np.all(source.labels == -1)


@pytest.mark.parametrize("suffix,header,keys", [
    (".tsv", ["image", "caption"], {}),
    (".jsonl", ["path", "text"], {}),
    (".csv", ["img", "desc"], {"image_key": "img", "caption_key": "desc"}),
    (".jsonl", ["file", "sentence"], {"image_key": "file", "caption_key": "sentence"}),
])
def test_tsv_and_jsonl_with_alternative_or_named_columns(tmp_path, suffix, header, keys):
  pixels = _write_images(tmp_path / "elsewhere", 2)
  table = tmp_path / "tables" / f"captions{suffix}"
  table.parent.mkdir()
  _write_table(table, header, [["1.png", "second"], ["0.png", "first"]])
  source = captioned_files.open_captioned(str(table), image_root=str(tmp_path / "elsewhere"),
                                          **_options(), **keys)
  assert source.captions == [["second"], ["first"]]
  _assert_example(source[0], 0, pixels[1], ["second"])
  _assert_example(source[1], 1, pixels[0], ["first"])


def test_rows_of_one_image_are_its_captions_in_file_order(tmp_path):
  pixels = _write_images(tmp_path, 2)
  table = tmp_path / "coco.csv"
  _write_table(table, ["filepath", "title"],
               [["1.png", "a dog"], ["0.png", "a cat"], ["1.png", "the dog"],
                ["./1.png", "a brown dog"]])
  source = captioned_files.open_captioned(str(table), **_options(max_captions=2))
  assert len(source) == 2 and source.captions == [["a dog", "the dog", "a brown dog"], ["a cat"]]
  _assert_example(source[0], 0, pixels[1], ["a dog", "the dog", "a brown dog"])
  _assert_example(source[1], 1, pixels[0], ["a cat"])
  wide = captioned_files.open_captioned(str(table), **_options(max_captions=5))
  _assert_example(wide[0], 0, pixels[1], ["a dog", "the dog", "a brown dog"], max_captions=5)
  # A JSONL line may give an image's captions as a list.
  lines = tmp_path / "coco.jsonl"
  lines.write_text(json.dumps({"image": "1.png", "caption": ["a dog", "the dog"]}) + "\n")
  assert captioned_files.open_captioned(str(lines), **_options()).captions == [["a dog", "the dog"]]


@pytest.mark.parametrize("name,text,message", [
    ("t.csv", "filepath,title\n0.png,fine\n0.png,\n", r"t\.csv:3: empty caption"),
    ("t.csv", "filepath,title\n0.png,fine\n0.png\n", r"t\.csv:3: no 'title' field"),
    ("t.csv", "filepath,title\n,a caption\n", r"t\.csv:2: empty image path"),
    ("t.csv", "file,title\n0.png,x\n", r"t\.csv:1: no image-path column .*image_key"),
    ("t.tsv", "filepath\tcaption_text\n", r"t\.tsv:1: no caption column .*caption_key"),
    ("t.csv", "", r"t\.csv:1: no header row"),
    ("t.csv", "filepath,title\n", r"no rows below the header"),
    ("t.jsonl", '{"filepath": "0.png", "title": "x"}\n\n{"filepath": "0.png"}\n',
     r"t\.jsonl:3: no 'title' field"),
    ("t.jsonl", '{"filepath": "0.png", "title": "x"}\nnot json\n', r"t\.jsonl:2: not JSON"),
    ("t.jsonl", '{"filepath": "0.png", "title": " "}\n', r"t\.jsonl:1: empty caption"),
])
def test_malformed_rows_are_named_by_file_and_line(tmp_path, name, text, message):
  _write_images(tmp_path, 1)
  (tmp_path / name).write_text(text)
  with pytest.raises(ValueError, match=message):
    captioned_files.open_captioned(str(tmp_path / name), **_options())


def test_named_column_that_is_absent(tmp_path):
  _write_images(tmp_path, 1)
  _write_table(tmp_path / "t.csv", ["filepath", "title"], [["0.png", "x"]])
  with pytest.raises(ValueError, match=r"no 'caption' column \(there are: filepath, title\)"):
    captioned_files.open_captioned(str(tmp_path / "t.csv"), caption_key="caption", **_options())


def test_missing_and_undecodable_table_images_error_or_are_skipped(tmp_path):
  _write_images(tmp_path, 3)
  whole = _encoded(_pixels(7, (40, 30)), "JPEG")
  (tmp_path / "cut.jpg").write_bytes(whole[:len(whole) // 2])
  table = tmp_path / "t.csv"
  _write_table(table, ["filepath", "title"],
               [["0.png", "a"], ["gone.png", "b"], ["1.png", "c"], ["cut.jpg", "d"],
                ["2.png", "e"]])
  with pytest.raises(image_folder.BadImagesError,
                     match=r"2 of 5 images .* \(gone\.png \(missing\), cut\.jpg \(undecodable\)\);"
                           r" .*bad_images=skip"):
    captioned_files.open_captioned(str(table), **_options())
  source = captioned_files.open_captioned(str(table), **_options(bad_images="skip"))
  assert len(source) == 3 and source.captions == [["a"], ["c"], ["e"]]
  with pytest.raises(ValueError, match="bad_images='drop'; use one of error, skip"):
    captioned_files.open_captioned(str(table), **_options(bad_images="drop"))


def _write_shard(path, members):
  """A tar of (name, bytes) members, in order."""
  with tarfile.open(path, "w") as tar:
    for name, data in members:
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def shards(tmp_path):
  """Two shards of webdataset pairs (with a json member each); returns the
  directory and every example's (pixels, caption) in shard and file order."""
  directory = tmp_path / "shards"
  directory.mkdir()
  examples = []
  for s, count in enumerate((3, 2)):
    members = []
    for k in range(count):
      key, pixels = f"{s:05d}{k:04d}", _pixels(10 * s + k, (9 + k, 13 - s))
      caption = f"shard {s} item {k} ünï"
      members += [(f"{key}.png", _encoded(pixels)), (f"{key}.json", b'{"w": 1}'),
                  (f"{key}.txt", caption.encode())]
      examples.append((pixels, caption))
    _write_shard(directory / f"shard-{s:05d}.tar", members)
  (directory / "shard-00000_stats.json").write_text("{}")  # img2dataset writes these beside
  return directory, examples


@pytest.mark.parametrize("form", ["brace", "directory", "glob", "list"])
def test_tar_shards_read_by_seeking(shards, form):
  directory, examples = shards
  path = {"brace": f"{directory}/shard-{{00000..00001}}.tar", "directory": str(directory),
          "glob": f"{directory}/*", "list": f"{directory}/shard-{{00000,00001}}.tar"}[form]
  source = captioned_files.open_captioned(path, **_options())
  assert len(source) == 5
  assert source.captions == [[caption] for _, caption in examples]
  for i in np.random.default_rng(0).permutation(5):  # random access
    _assert_example(source[i], i, examples[i][0], [examples[i][1]])
  assert source.paths[3] == f"{directory}/shard-00001.tar/000010000.png"


def test_tar_jpeg_with_its_own_extension(tmp_path):
  # webdataset's keys run to the basename's first dot: x.seg.png is a field of x, not its image.
  _write_shard(tmp_path / "a.tar", [("dir/x.seg.png", b"not the image"),
                                    ("dir/x.JPEG", _encoded(_pixels(0), "JPEG")),
                                    ("dir/x.txt", b"  spaced caption\n")])
  source = captioned_files.open_captioned(str(tmp_path / "a.tar"), **_options())
  assert source.captions == [["spaced caption"]] and source.paths[0].endswith("a.tar/dir/x.JPEG")
  assert source[0]["image"].shape == (SIZE, SIZE, 3)


def test_incomplete_or_undecodable_tar_pairs_error_or_are_skipped(tmp_path):
  whole = _encoded(_pixels(3, (40, 30)), "JPEG")
  _write_shard(tmp_path / "s-0.tar", [
      ("a.png", _encoded(_pixels(0))), ("a.txt", b"kept"),
      ("b.png", _encoded(_pixels(1))),  # no caption
      ("c.txt", b"no image"), ("c.json", b"{}"),
      ("d.jpg", whole[:len(whole) // 2]), ("d.txt", b"truncated"),
      ("e.png", _encoded(_pixels(2))), ("e.txt", b" \n"),  # empty caption
      ("f.png", _encoded(_pixels(4))), ("f.txt", b"kept too"),
      ("g.json", b"{}"),  # neither image nor caption: not an example
  ])
  with pytest.raises(image_folder.BadImagesError,
                     match=r"4 of 6 examples .* \(s-0\.tar:b\.png \(no caption\), s-0\.tar:c "
                           r"\(no image\), s-0\.tar:d\.jpg \(undecodable\), s-0\.tar:e\.png "
                           r"\(empty caption\)\); .*bad_images=skip"):
    captioned_files.open_captioned(str(tmp_path / "s-0.tar"), **_options())
  source = captioned_files.open_captioned(str(tmp_path / "s-0.tar"), **_options(bad_images="skip"))
  assert len(source) == 2 and source.captions == [["kept"], ["kept too"]]
  _assert_example(source[1], 1, _pixels(4), ["kept too"])


def test_shard_index_is_cached_until_the_shard_changes(shards, monkeypatch):
  directory, _ = shards
  captioned_files.open_captioned(str(directory), **_options())
  checked = []
  monkeypatch.setattr(captioned_files, "_decodes_bytes", lambda data: checked.append(1) or True)
  assert len(captioned_files.open_captioned(str(directory), **_options())) == 5
  assert not checked  # nothing decoded on the second start
  _write_shard(directory / "shard-00001.tar", [("z.png", _encoded(_pixels(9))), ("z.txt", b"z")])
  assert len(captioned_files.open_captioned(str(directory), **_options())) == 4
  assert len(checked) == 1  # only the rewritten shard is indexed again


def test_brace_expansion():
  assert captioned_files.expand_braces("s-{008..011}.tar") == [
      "s-008.tar", "s-009.tar", "s-010.tar", "s-011.tar"]
  assert captioned_files.expand_braces("{a,b}/{0..1}") == ["a/0", "a/1", "b/0", "b/1"]
  assert captioned_files.expand_braces("plain{x}.tar") == ["plain{x}.tar"]


def test_paths_that_are_not_captioned_data(tmp_path):
  accepted = r"pass a \.csv/\.tsv/\.jsonl caption table, a \.tar shard"
  with pytest.raises(FileNotFoundError, match=r"'.*nowhere\.csv' does not exist; " + accepted):
    captioned_files.open_captioned(str(tmp_path / "nowhere.csv"), **_options())
  (tmp_path / "data.parquet").write_bytes(b"PAR1")
  with pytest.raises(ValueError, match="neither a caption table nor a tar shard; " + accepted):
    captioned_files.open_captioned(str(tmp_path / "data.parquet"), **_options())
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="holds no .tar shards; " + accepted):
    captioned_files.open_captioned(str(tmp_path / "empty"), **_options())
  with pytest.raises(FileNotFoundError, match=r"Shard .*s-00001\.tar.* does not exist"):
    _write_shard(tmp_path / "s-00000.tar", [("a.png", _encoded(_pixels(0))), ("a.txt", b"a")])
    captioned_files.open_captioned(str(tmp_path / "s-{00000..00001}.tar"), **_options())
  with pytest.raises(FileNotFoundError, match="No .tar shards match"):
    captioned_files.open_captioned(str(tmp_path / "empty" / "*.tar"), **_options())
  (tmp_path / "d.tar.gz").write_bytes(b"\x1f\x8b")
  with pytest.raises(ValueError, match="compressed tar, which cannot be read by seeking"):
    captioned_files.open_captioned(str(tmp_path / "d.tar.gz"), **_options())
  (tmp_path / "fake.tar").write_bytes(b"not a tar" * 100)
  with pytest.raises(ValueError, match="cannot be read as an uncompressed tar file"):
    captioned_files.open_captioned(str(tmp_path / "fake.tar"), **_options())
  with pytest.raises(ValueError, match="image_root apply to caption tables"):
    captioned_files.open_captioned(str(tmp_path / "s-00000.tar"), image_root="x", **_options())
  with pytest.raises(FileNotFoundError, match="No captioned data given"):
    captioned_files.open_captioned("", **_options())


@pytest.fixture
def both_sources(tmp_path, shards):
  _write_images(tmp_path / "images", 3)
  _write_table(tmp_path / "t.csv", ["filepath", "title"],
               [[f"images/{i}.png", f"image {i}"] for i in (0, 1, 2, 1)])
  return [captioned_files.open_captioned(str(tmp_path / "t.csv"), **_options()),
          captioned_files.open_captioned(str(shards[0]), **_options())]


def _same(a, b):
  assert a.keys() == b.keys()
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])


def test_sources_pickle_and_read_after_unpickling(both_sources):
  for source in both_sources:
    before = [source[i] for i in range(len(source))]  # opens files in this process
    restored = pickle.loads(pickle.dumps(source))
    assert len(restored) == len(source) and restored.captions == source.captions
    for i in reversed(range(len(source))):
      _same(restored[i], before[i])


def test_concurrent_reads_match_sequential_ones(both_sources):
  for source in both_sources:
    order = list(range(len(source))) * 4
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
      results = list(pool.map(source.__getitem__, order))
    for i, example in zip(order, results):
      _same(example, source[i])


def test_grain_batches(both_sources):
  for source in both_sources:
    batches = list(grain.MapDataset.source(source).batch(2, drop_remainder=True))
    assert len(batches) == len(source) // 2
    batch = batches[-1]
    assert batch["image"].shape == (2, SIZE, SIZE, 3) and batch["tokens"].shape == (2, 2, CONTEXT)
    assert batch["num_captions"].dtype == np.int32 and batch["index"].tolist() == [
        len(batches) * 2 - 2, len(batches) * 2 - 1]
  assert both_sources[0][1]["num_captions"] == 2  # image 1 has two rows
