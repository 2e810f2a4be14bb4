"""User image folders: the most common way to bring your own data.

`root/` holding only subdirectories means one class per subdirectory (sorted
names give the label ids); otherwise every image under `root/` is unlabeled
(label -1) and can be used for pretraining only.
"""

import os

import numpy as np
from PIL import Image

from repr_learn.data import resizing

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
HOLDOUT_FRACTION = 0.1


def _check_dir(path: str | None, flag: str) -> str:
  if not path:
    raise FileNotFoundError(f"No image folder given; pass --config.{flag}=<a directory of images>.")
  if not os.path.isdir(path):
    raise FileNotFoundError(f"Image folder {path!r} does not exist; pass "
                            f"--config.{flag}=<a directory of images>.")
  return path


def scan(root: str) -> tuple[list[str], np.ndarray, list[str]]:
  """(image paths, labels, class names) in a deterministic order."""
  entries = sorted(os.listdir(root))
  class_names = [e for e in entries if os.path.isdir(os.path.join(root, e))]
  labeled = bool(class_names) and len(class_names) == len(
      [e for e in entries if not e.startswith(".")])
  paths, labels = [], []
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    for name in sorted(filenames):
      if name.lower().endswith(IMAGE_EXTENSIONS):
        path = os.path.join(dirpath, name)
        paths.append(path)
        if labeled:
          labels.append(class_names.index(os.path.relpath(path, root).split(os.sep)[0]))
        else:
          labels.append(-1)
  if not paths:
    raise ValueError(f"Image folder {root!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
  return paths, np.asarray(labels, np.int32), class_names if labeled else []


class ImageFolderSource:
  """Random-access source over image files, decoded and resized on access."""

  def __init__(self, paths: list[str], labels: np.ndarray, image_size: int):
    self._paths = paths
    self._labels = labels
    self._image_size = image_size

  @property
  def paths(self) -> list[str]:
    """The image files, in example-index order (embedding export names them)."""
    return list(self._paths)

  def __len__(self) -> int:
    return len(self._paths)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    with Image.open(self._paths[index]) as img:
      image = np.asarray(img.convert("RGB"))
    return {"image": resizing.resize_and_center_crop(image, self._image_size),
            "label": np.int32(self._labels[index]), "index": np.int32(index)}


def open_split(data_dir: str | None, eval_dir: str | None, split: str,
               image_size: int) -> ImageFolderSource:
  """'train' (all of data_dir, or 90% when no eval_dir) or 'test'.

  Without `eval_dir`, a fixed 10% of `data_dir` is held out as the labeled test
  split for kNN, and 'train' is the rest.
  """
  root = _check_dir(data_dir, "data.data_dir")
  if split == "test" and eval_dir:
    paths, labels, _ = scan(_check_dir(eval_dir, "data.eval_dir"))
    return ImageFolderSource(paths, labels, image_size)
  paths, labels, _ = scan(root)
  if eval_dir:
    return ImageFolderSource(paths, labels, image_size)
  order = np.random.default_rng(0).permutation(len(paths))
  num_test = max(1, int(round(HOLDOUT_FRACTION * len(paths))))
  chosen = np.sort(order[:num_test] if split == "test" else order[num_test:])
  return ImageFolderSource([paths[i] for i in chosen], labels[chosen], image_size)
