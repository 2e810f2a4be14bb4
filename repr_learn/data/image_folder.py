"""User image folders: the most common way to bring your own data.

`root/` with class subdirectories means one class per subdirectory (sorted
names give the label ids); `root/` with its images at the top level is
unlabeled (label -1): it pretrains, and evaluation that needs labels is skipped.
Which of the two a folder is gets decided, and logged, when it is opened.

Every file is decoded once up front (in threads, the verdicts cached by path,
size and modification time), so a truncated or unreadable image is named at
start-up instead of crashing a worker mid-run at the same step on every resume:
`data.bad_images="error"` stops with the list, `"skip"` leaves them out.
"""

import concurrent.futures
import hashlib
import json
import os

from absl import logging
import numpy as np
from PIL import Image

from repr_learn.data import resizing

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
HOLDOUT_FRACTION = 0.1
BAD_IMAGE_POLICIES = ("error", "skip")
# PIL modes of high-bit-depth single-channel images, and their full scale.
_WIDE_MODES = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I": 65535}


class BadImagesError(ValueError):
  """Some files of an image folder cannot be decoded."""


def _check_dir(path: str | None, flag: str) -> str:
  if not path:
    raise FileNotFoundError(f"No image folder given; pass --config.{flag}=<a directory of images>.")
  if not os.path.isdir(path):
    raise FileNotFoundError(f"Image folder {path!r} does not exist; pass "
                            f"--config.{flag}=<a directory of images>.")
  return path


def _is_image(name: str) -> bool:
  return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _images_under(directory: str) -> list[str]:
  found = []
  for dirpath, dirnames, filenames in os.walk(directory):
    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    found += [os.path.join(dirpath, n) for n in sorted(filenames) if _is_image(n)]
  return found


def scan(root: str) -> tuple[list[str], np.ndarray, list[str]]:
  """(image paths, labels, class names) in a deterministic order.

  Labeled when most images sit in subdirectories (each a class); images at the
  top level of a labeled folder are left out, and stray non-image files are
  ignored, both with a warning.
  """
  entries = sorted(e for e in os.listdir(root) if not e.startswith("."))
  top_images = [os.path.join(root, e) for e in entries
                if os.path.isfile(os.path.join(root, e)) and _is_image(e)]
  per_class = {e: _images_under(os.path.join(root, e)) for e in entries
               if os.path.isdir(os.path.join(root, e))}
  per_class = {name: paths for name, paths in per_class.items() if paths}
  in_classes = sum(len(p) for p in per_class.values())
  if not top_images and not in_classes:
    raise ValueError(f"Image folder {root!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
  others = [e for e in entries if os.path.isfile(os.path.join(root, e)) and not _is_image(e)]
  if others:
    logging.warning("Image folder %s: ignoring %d non-image file(s) at the top level (%s).",
                    root, len(others), ", ".join(others[:5]))
  if in_classes >= len(top_images):
    if top_images:
      logging.warning("Image folder %s is labeled by its %d subfolders; the %d image(s) at its "
                      "top level belong to no class and are left out (first: %s).", root,
                      len(per_class), len(top_images), os.path.basename(top_images[0]))
    class_names = sorted(per_class)
    paths = [p for name in class_names for p in per_class[name]]
    labels = [i for i, name in enumerate(class_names) for _ in per_class[name]]
    logging.info("Image folder %s: labeled, %d classes, %d images.", root, len(class_names),
                 len(paths))
    return paths, np.asarray(labels, np.int32), class_names
  paths = _images_under(root)
  logging.info("Image folder %s: unlabeled, %d images (label-based evaluation is skipped).",
               root, len(paths))
  return paths, np.full(len(paths), -1, np.int32), []


def decode(path: str) -> np.ndarray:
  """uint8 RGB [H, W, 3]; 16-bit images are scaled to 8 bits, not clipped."""
  with Image.open(path) as img:
    if img.mode in _WIDE_MODES:
      wide = np.asarray(img, np.float64) * (255.0 / _WIDE_MODES[img.mode])
      gray = np.clip(np.round(wide), 0, 255).astype(np.uint8)
      return np.repeat(gray[..., None], 3, axis=-1)
    return np.asarray(img.convert("RGB"))


def _decodes(path: str) -> bool:
  try:
    decode(path)
    return True
  except Exception:  # PIL raises OSError, SyntaxError, ValueError... for bad files.
    return False


def _cache_file(root: str) -> str:
  cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
  digest = hashlib.sha1(os.path.abspath(root).encode()).hexdigest()[:16]
  return os.path.join(cache, "repr_learn", "image_scans", f"{digest}.json")


def find_unreadable(root: str, paths: list[str]) -> list[str]:
  """The files among `paths` that do not decode; verdicts cached per file."""
  cache_path = _cache_file(root)
  try:
    with open(cache_path) as f:
      cache = json.load(f)
  except (OSError, ValueError):
    cache = {}
  def fingerprint(path):
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"
  fingerprints = {p: fingerprint(p) for p in paths}
  todo = [p for p in paths if cache.get(p, {}).get("fingerprint") != fingerprints[p]]
  if todo:
    logging.info("Checking %d new or changed image(s) under %s.", len(todo), root)
    with concurrent.futures.ThreadPoolExecutor(min(32, (os.cpu_count() or 1) * 2)) as pool:
      for path, ok in zip(todo, pool.map(_decodes, todo)):
        cache[path] = {"fingerprint": fingerprints[path], "ok": ok}
    try:
      os.makedirs(os.path.dirname(cache_path), exist_ok=True)
      with open(cache_path + ".tmp", "w") as f:
        json.dump(cache, f)
      os.replace(cache_path + ".tmp", cache_path)
    except OSError:
      pass  # No cache: the next start-up checks again.
  return [p for p in paths if not cache[p]["ok"]]


def _without_bad(root: str, paths: list[str], labels: np.ndarray, policy: str):
  bad = set(find_unreadable(root, paths))
  if not bad:
    return paths, labels
  listed = ", ".join(os.path.relpath(p, root) for p in sorted(bad)[:5])
  more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
  if policy == "error":
    raise BadImagesError(
        f"{len(bad)} file(s) in image folder {root!r} cannot be decoded ({listed}{more}); "
        "fix or remove them, or pass --config.data.bad_images=skip to leave them out.")
  logging.warning("Leaving out %d undecodable file(s) of %s: %s%s.", len(bad), root, listed, more)
  keep = [i for i, p in enumerate(paths) if p not in bad]
  return [paths[i] for i in keep], labels[keep]


class ImageFolderSource:
  """Random-access source over image files, decoded and resized on access."""

  def __init__(self, paths: list[str], labels: np.ndarray, image_size: int):
    self._paths = paths
    self._labels = labels
    self._image_size = image_size

  @property
  def labels(self) -> np.ndarray:
    """Class ids in example-index order; -1 throughout when unlabeled."""
    return self._labels.copy()

  @property
  def paths(self) -> list[str]:
    """The image files, in example-index order (embedding export names them)."""
    return list(self._paths)

  def __len__(self) -> int:
    return len(self._paths)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    image = decode(self._paths[index])
    return {"image": resizing.resize_and_center_crop(image, self._image_size),
            "label": np.int32(self._labels[index]), "index": np.int32(index)}


def open_split(data_dir: str | None, eval_dir: str | None, split: str,
               image_size: int, bad_images: str = "error") -> ImageFolderSource:
  """'train' (all of data_dir, or 90% when no eval_dir) or 'test'.

  Without `eval_dir`, a fixed 10% of `data_dir` is held out as the test split
  for evaluation, and 'train' is the rest. `bad_images` says what to do with
  files that do not decode (see the module docstring).
  """
  root = _check_dir(data_dir, "data.data_dir")
  if split == "test" and eval_dir:
    eval_root = _check_dir(eval_dir, "data.eval_dir")
    paths, labels, _ = scan(eval_root)
    return ImageFolderSource(*_without_bad(eval_root, paths, labels, bad_images), image_size)
  paths, labels, _ = scan(root)
  paths, labels = _without_bad(root, paths, labels, bad_images)
  if eval_dir:
    return ImageFolderSource(paths, labels, image_size)
  order = np.random.default_rng(0).permutation(len(paths))
  num_test = max(1, int(round(HOLDOUT_FRACTION * len(paths))))
  chosen = np.sort(order[:num_test] if split == "test" else order[num_test:])
  return ImageFolderSource([paths[i] for i in chosen], labels[chosen], image_size)
