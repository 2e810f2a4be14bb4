"""Host data: catalog, the embedded digits dataset, image folders, TFDS
sources (on mock data) and the grain pipelines' determinism and resume."""

import json

import ml_collections
import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from repr_learn.data import catalog
from repr_learn.data import image_folder
from repr_learn.data import pipeline
from repr_learn.data import resizing
from repr_learn.data import sources


def data_config(data_dir=None, manual_dir=None, eval_dir=None):
  return ml_collections.ConfigDict(dict(data_dir=data_dir, manual_dir=manual_dir,
                                        eval_dir=eval_dir, worker_count=0, bad_images="error"))


@pytest.fixture(scope="module")
def digits_train(tmp_path_factory):
  cfg = data_config(str(tmp_path_factory.mktemp("tfds")))
  return sources.open_source(catalog.get_spec("digits"), "train", cfg), cfg


def test_unknown_dataset_names_the_nearest():
  with pytest.raises(catalog.UnknownDatasetError, match="did you mean 'cifar10'"):
    catalog.get_spec("cifar1")


def test_digits_is_built_and_split_deterministically(digits_train):
  train, cfg = digits_train
  test = sources.open_source(catalog.get_spec("digits"), "test", cfg)
  assert (len(train), len(test)) == (1437, 360)
  example = train[5]
  assert example["image"].shape == (32, 32, 3) and example["image"].dtype == np.uint8
  labels = {int(train[i]["label"]) for i in range(200)}
  assert labels == set(range(10))
  again = sources.open_source(catalog.get_spec("digits"), "train", cfg)
  np.testing.assert_array_equal(again[5]["image"], example["image"])


def _batches(source, n, **kwargs):
  it = pipeline.make_train_iterator(source, **kwargs)
  return [next(it) for _ in range(n)]


def test_train_iterator_shapes_and_determinism(digits_train):
  source, _ = digits_train
  kw = dict(global_batch_size=64, process_index=0, process_count=1)
  a, b = _batches(source, 2, seed=0, **kw), _batches(source, 2, seed=0, **kw)
  c = _batches(source, 2, seed=1, **kw)
  assert a[0]["image"].shape == (64, 32, 32, 3) and a[0]["image"].dtype == np.uint8
  assert a[0]["label"].dtype == np.int32 and a[0]["index"].shape == (64,)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["index"], y["index"])
    np.testing.assert_array_equal(x["image"], y["image"])
  assert not np.array_equal(a[0]["index"], c[0]["index"])


def test_neighbour_pairs_are_deterministic_draws_from_the_lists(digits_train):
  source, _ = digits_train
  rng = np.random.default_rng(0)
  neighbours = rng.integers(0, len(source), (len(source), 3)).astype(np.int32)
  kw = dict(global_batch_size=32, process_index=0, process_count=1, seed=0,
            neighbours=neighbours)
  a, b = _batches(source, 3, **kw), _batches(source, 3, **kw)
  drawn = set()
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["neighbour_image"], y["neighbour_image"])
    for index, image in zip(x["index"], x["neighbour_image"]):
      matches = [j for j in neighbours[index]
                 if np.array_equal(source[int(j)]["image"], image)]
      assert matches, f"example {index} paired with an image outside its neighbours"
      drawn.add(int(matches[0]) == int(neighbours[index][0]))
  assert drawn == {True, False}  # Not always the first neighbour.
  with pytest.raises(ValueError, match="neighbour lists"):
    pipeline.make_train_iterator(source, **{**kw, "neighbours": neighbours[:5]})


def test_epochs_are_reshuffled(digits_train):
  source, _ = digits_train
  steps_per_epoch = len(source) // 479  # 3 batches of 479 = 1437 = one epoch
  batches = _batches(source, 6, global_batch_size=479, process_index=0, process_count=1,
                     seed=0)
  first = np.concatenate([b["index"] for b in batches[:steps_per_epoch]])
  second = np.concatenate([b["index"] for b in batches[steps_per_epoch:]])
  assert sorted(first) == sorted(second) == list(range(1437))
  assert not np.array_equal(first, second)


def test_processes_get_disjoint_shares_of_the_global_batch(digits_train):
  source, _ = digits_train
  single = _batches(source, 1, global_batch_size=64, process_index=0, process_count=1, seed=3)
  shares = [_batches(source, 1, global_batch_size=64, process_index=p, process_count=2,
                     seed=3)[0]["index"] for p in range(2)]
  assert len(shares[0]) == 32 and not set(shares[0]) & set(shares[1])
  # Assembled in process order, the global batch is the single-process batch.
  np.testing.assert_array_equal(np.concatenate(shares), single[0]["index"])


def test_iterator_state_round_trips_through_json(digits_train):
  source, _ = digits_train
  kw = dict(global_batch_size=32, process_index=0, process_count=1, seed=0)
  it = pipeline.make_train_iterator(source, **kw)
  for _ in range(3):
    next(it)
  state = json.loads(json.dumps(pipeline.iterator_state(it)))
  expected = [next(it)["index"] for _ in range(2)]
  resumed = pipeline.make_train_iterator(source, **kw)
  resumed.set_state(state)
  for want in expected:
    np.testing.assert_array_equal(next(resumed)["index"], want)


def test_batch_not_divisible_by_processes(digits_train):
  with pytest.raises(ValueError, match="not divisible by the 3 processes"):
    pipeline.make_train_iterator(digits_train[0], global_batch_size=64, process_index=0,
                                 process_count=3, seed=0)


@pytest.mark.parametrize("process_count", [1, 3])
def test_eval_batches_cover_every_example_once(digits_train, process_count):
  source, cfg = digits_train
  test = sources.open_source(catalog.get_spec("digits"), "test", cfg)
  seen, counts = [], []
  for p in range(process_count):
    batches = list(pipeline.iterate_eval_batches(test, batch_size=50, process_index=p,
                                                 process_count=process_count))
    counts.append(len(batches))
    for b in batches:
      assert b["image"].shape == (50, 32, 32, 3) and b["mask"].dtype == bool
      seen.extend(b["index"][b["mask"]].tolist())
  assert len(set(counts)) == 1  # every process runs the same collective steps
  assert sorted(seen) == list(range(360))


def _write_images(root, names, size=(20, 12)):
  for i, name in enumerate(names):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size[::-1] + (3,), i * 10, np.uint8)).save(path)


def test_image_folder_with_class_subfolders(tmp_path):
  _write_images(tmp_path, [f"cat/{i}.png" for i in range(10)] + [f"dog/{i}.jpg" for i in range(10)])
  spec = catalog.get_spec("image_folder")
  cfg = data_config(str(tmp_path))
  train = sources.open_source(spec, "train", cfg)
  test = sources.open_source(spec, "test", cfg)
  assert len(train) + len(test) == 20 and len(test) == 2
  example = train[0]
  assert example["image"].shape == (spec.image_size, spec.image_size, 3)
  labels = sorted(int(train[i]["label"]) for i in range(len(train)))
  assert set(labels) == {0, 1}


def test_image_folder_without_classes_is_unlabeled(tmp_path):
  _write_images(tmp_path, [f"{i}.png" for i in range(5)] + ["nested/x.png"])
  cfg = data_config(str(tmp_path))
  train = sources.open_source(catalog.get_spec("image_folder"), "train", cfg)
  assert int(train[0]["label"]) == -1 and np.all(train.labels == -1)
  assert len(train) + len(sources.open_source(catalog.get_spec("image_folder"), "test", cfg)) == 6


def test_stray_top_level_files_do_not_unlabel_a_class_folder(tmp_path, caplog):
  _write_images(tmp_path, [f"cat/{i}.png" for i in range(4)] + [f"dog/{i}.png" for i in range(4)]
                + ["stray.png"])
  (tmp_path / "README.txt").write_text("about these photos")
  paths, labels, classes = image_folder.scan(str(tmp_path))
  assert classes == ["cat", "dog"] and sorted(set(labels.tolist())) == [0, 1]
  assert len(paths) == 8 and not any(p.endswith("stray.png") for p in paths)
  assert "README.txt" in caplog.text and "stray.png" in caplog.text


def test_undecodable_images_are_named_at_start_up_or_skipped(tmp_path):
  _write_images(tmp_path, [f"cat/{i}.jpg" for i in range(5)] + [f"dog/{i}.jpg" for i in range(5)])
  whole = (tmp_path / "dog" / "3.jpg").read_bytes()
  (tmp_path / "dog" / "3.jpg").write_bytes(whole[:len(whole) // 2])  # truncated
  (tmp_path / "cat" / "0.jpg").write_bytes(b"not an image")
  spec = catalog.get_spec("image_folder")
  with pytest.raises(image_folder.BadImagesError,
                     match=r"2 file\(s\) .* \(cat/0.jpg, dog/3.jpg\); .*bad_images=skip"):
    sources.open_source(spec, "train", data_config(str(tmp_path)))
  cfg = data_config(str(tmp_path))
  cfg.bad_images = "skip"
  train, test = (sources.open_source(spec, split, cfg) for split in ("train", "test"))
  assert len(train) + len(test) == 8
  for i in range(len(train)):  # every remaining file decodes
    assert train[i]["image"].shape == (spec.image_size, spec.image_size, 3)
  # A repaired file is checked again (the cached verdict is per size and mtime).
  (tmp_path / "dog" / "3.jpg").write_bytes(whole)
  assert image_folder.find_unreadable(str(tmp_path), [str(tmp_path / "dog" / "3.jpg")]) == []


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
  ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
  Image.fromarray(ramp).save(tmp_path / "wide.png")
  decoded = image_folder.decode(str(tmp_path / "wide.png"))
  assert decoded.dtype == np.uint8 and decoded.shape == (64, 64, 3)
  np.testing.assert_array_equal(decoded[..., 0], np.round(ramp / 257.0).astype(np.uint8))


def test_image_folder_errors(tmp_path):
  spec = catalog.get_spec("image_folder")
  with pytest.raises(FileNotFoundError, match="does not exist"):
    sources.open_source(spec, "train", data_config(str(tmp_path / "missing")))
  with pytest.raises(FileNotFoundError, match="--config.data.data_dir"):
    sources.open_source(spec, "train", data_config(None))
  with pytest.raises(ValueError, match="holds no images"):
    sources.open_source(spec, "train", data_config(str(tmp_path)))


def test_unprepared_dataset_says_how_to_prepare(tmp_path):
  with pytest.raises(sources.DatasetNotPreparedError,
                     match="python -m repr_learn.data.prepare --dataset=cifar10"):
    sources.open_source(catalog.get_spec("cifar10"), "train", data_config(str(tmp_path)))


def test_imagenet_without_manual_dir(tmp_path):
  with pytest.raises(sources.DatasetNotPreparedError, match="manual_dir"):
    sources.open_source(catalog.get_spec("imagenet2012"), "train", data_config(str(tmp_path)))


def test_cifar10_through_tfds_mock_data(tmp_path):
  (tmp_path / "cifar10").mkdir()  # what a prepared data_dir has
  with tfds.testing.mock_data(num_examples=40):
    source = sources.open_source(catalog.get_spec("cifar10"), "train",
                                 data_config(str(tmp_path)))
    assert len(source) == 40
    batch = next(pipeline.make_train_iterator(source, global_batch_size=16, process_index=0,
                                              process_count=1, seed=0))
  assert batch["image"].shape == (16, 32, 32, 3) and batch["image"].dtype == np.uint8
  assert batch["label"].min() >= 0 and batch["label"].max() < 10


def test_imagenet_sized_datasets_are_stored_whole_in_a_canvas(tmp_path):
  """Shorter side 256, aspect kept up to 4:3 (centre-cropped beyond), top-left
  of a 341-px zero canvas; the size in the canvas travels as image_hw, through
  the training and the evaluation batches."""
  photo = np.random.default_rng(0).integers(0, 256, (375, 500, 3), np.uint8)
  canvas, hw = resizing.resize_into_canvas(photo, 256, 4 / 3)
  assert canvas.shape == (341, 341, 3) and tuple(hw) == (256, 341)
  expected = np.asarray(Image.fromarray(photo).resize((341, 256), Image.BICUBIC))
  np.testing.assert_array_equal(canvas[:256, :341], expected)
  np.testing.assert_array_equal(canvas[256:, :341], np.broadcast_to(expected[-1:], (85, 341, 3)))
  tall, hw = resizing.resize_into_canvas(np.zeros((900, 300), np.uint8), 256, 4 / 3)
  assert tall.shape == (341, 341, 3) and tuple(hw) == (341, 256)  # 3:1 cropped to 4:3
  spec = catalog.get_spec("imagenette")
  (tmp_path / "imagenette" / "full-size-v2").mkdir(parents=True)
  with tfds.testing.mock_data(num_examples=12):
    source = sources.open_source(spec, "train", data_config(str(tmp_path)))
    batch = next(pipeline.make_train_iterator(source, global_batch_size=4, process_index=0,
                                              process_count=1, seed=0))
    eval_batch = next(pipeline.iterate_eval_batches(source, batch_size=4, process_index=0,
                                                    process_count=1))
  for b in (batch, eval_batch):
    assert b["image"].shape == (4, spec.canvas_size, spec.canvas_size, 3)
    assert b["image_hw"].shape == (4, 2) and np.all(b["image_hw"].min(axis=1) == 256)
  assert set(spec.example_shapes()) == {"image", "image_hw", "label", "index"}
