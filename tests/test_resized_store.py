"""The dataset copy at its stored size (`data.storage='resized'`): same examples,
same order, one JPEG generation away from the TFDS path."""

import dataclasses
import functools
import io
import os

import ml_collections
import numpy as np
import pytest
from PIL import Image

from repr_learn import config_checks
from repr_learn import config_schema
from repr_learn.data import catalog
from repr_learn.data import digits
from repr_learn.data import resized_store
from repr_learn.data import resizing
from repr_learn.data import sources

# A small stand-in for ImageNet's layout: stored whole at a 24-px shorter
# side, aspect kept up to 4:3, in a 32-px canvas.
SPEC = dataclasses.replace(catalog.get_spec("imagenette"), image_size=24)


def _photos(n=6, seed=0):
  """Smooth colour fields of several sizes and aspects (JPEG-friendly)."""
  rng = np.random.default_rng(seed)
  sizes = [(40, 30), (30, 52), (64, 48), (24, 24), (90, 40), (33, 47)]
  out = []
  for i in range(n):
    h, w = sizes[i % len(sizes)]
    coarse = rng.integers(0, 256, (h // 16 + 2, w // 16 + 2, 3), dtype=np.uint8)
    out.append({"image": np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC)),
                "label": i % 3})
  return out


def test_written_split_reads_back_as_the_tfds_path_would_give_it(tmp_path):
  """Each example: the TFDS path's image (resized into its canvas) after one
  JPEG generation, exactly; same size in the canvas, label and index."""
  raw = _photos()
  folder = resized_store.write_split(lambda: raw, SPEC, "train", str(tmp_path),
                                     shards=4)
  assert sorted(os.listdir(folder)) == ["train.array_record-0000%d-of-00004" % i
                                        for i in range(4)] + ["train.json"]
  source = resized_store.open_split(SPEC, "train", str(tmp_path), "prepare")
  assert len(source) == len(raw)
  for i, example in enumerate(raw):
    canvas, hw = resizing.resize_into_canvas(example["image"], SPEC.image_size,
                                             SPEC.max_aspect)
    h, w = hw
    jpeg = io.BytesIO()
    Image.fromarray(canvas[:h, :w]).save(jpeg, format="JPEG",
                                         quality=resized_store.DEFAULT_QUALITY)
    expected, _ = resizing.resize_into_canvas(np.asarray(Image.open(jpeg)), SPEC.image_size,
                                              SPEC.max_aspect)
    got = source[i]
    np.testing.assert_array_equal(got["image"], expected)
    np.testing.assert_array_equal(got["image_hw"], hw)
    assert got["label"] == example["label"] and got["index"] == i
    assert np.abs(got["image"][:h, :w].astype(int) - canvas[:h, :w]).mean() < 8.0


def test_a_finished_split_is_kept_and_a_missing_one_says_how_to_write_it(tmp_path):
  raw = _photos(3)
  folder = resized_store.write_split(lambda: raw, SPEC, "train", str(tmp_path), shards=2)
  stamp = os.path.getmtime(os.path.join(folder, "train.json"))
  resized_store.write_split(lambda: [], SPEC, "train", str(tmp_path))  # nothing rewritten
  assert os.path.getmtime(os.path.join(folder, "train.json")) == stamp
  assert not [n for n in os.listdir(folder) if n.startswith(".")]  # no partial folder left
  with pytest.raises(resized_store.ResizedStoreMissingError, match="--resized"):
    resized_store.open_split(SPEC, "validation", str(tmp_path), "python -m prepare")


def test_storage_resized_reads_the_copy_prepare_writes(tfds_dir):
  spec = catalog.get_spec("digits")
  sources.prepare_generated(catalog.get_spec("digits"), tfds_dir)
  data = ml_collections.ConfigDict({"data_dir": tfds_dir, "storage": "resized"})
  with pytest.raises(resized_store.ResizedStoreMissingError):
    sources.open_source(spec, "test", data)
  resized_store.write_dataset(spec, tfds_dir,
                              functools.partial(sources.open_tfds, spec, data_dir=tfds_dir))
  resized = sources.open_source(spec, "test", data)
  data.storage = "tfds"
  original = sources.open_source(spec, "test", data)
  assert len(resized) == len(original) == digits.NUM_TEST
  for i in (0, 7, 359):
    a, b = resized[i], original[i]
    assert a["label"] == b["label"] and a["index"] == b["index"] == i
    assert np.abs(a["image"].astype(int) - b["image"].astype(int)).mean() < 3.0


def test_storage_is_checked_against_the_dataset():
  config = config_schema.base_config()
  config.data.storage = "resised"
  with pytest.raises(ValueError, match="storage"):
    config_checks.validate(config)
  config.data.update(storage="resized", name="image_folder")
  with pytest.raises(ValueError, match="data.storage"):
    config_checks.validate(config)
