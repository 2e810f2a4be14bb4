"""Host-side resizing to the stored size (before on-device augmentation)."""

import numpy as np
from PIL import Image

from repr_learn.data import catalog


def _rgb(image: np.ndarray) -> np.ndarray:
  if image.ndim == 2:
    image = image[..., None]
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  return image


def resize_and_center_crop(image: np.ndarray, size: int) -> np.ndarray:
  """Shorter side to `size`, then the central square; grayscale becomes RGB."""
  image = _rgb(image)
  h, w = image.shape[:2]
  if (h, w) == (size, size):
    return np.asarray(image, np.uint8)
  scale = size / min(h, w)
  new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
  resized = np.asarray(Image.fromarray(np.asarray(image, np.uint8)).resize(
      (new_w, new_h), Image.BICUBIC))
  top, left = (new_h - size) // 2, (new_w - size) // 2
  return resized[top:top + size, left:left + size]


def resize_into_canvas(image: np.ndarray, shorter: int,
                       max_aspect: float) -> tuple[np.ndarray, np.ndarray]:
  """The whole image with its shorter side at `shorter` and its aspect kept (the
  longer side centre-cropped beyond `max_aspect` x `shorter`), in the top-left
  corner of a square of `catalog.canvas_side(shorter, max_aspect)` whose rest
  repeats the edge pixels (so resampling near the image's border reads edge
  values, as on the original file, not black); returns the canvas and the
  image's (height, width) in it. Random-resized crops then sample the whole
  image, as torchvision's do on the original file, at a static shape."""
  image = _rgb(image)
  h, w = image.shape[:2]
  side = catalog.canvas_side(shorter, max_aspect)
  scale = shorter / min(h, w)
  new_h, new_w = max(shorter, round(h * scale)), max(shorter, round(w * scale))
  if (new_h, new_w) != (h, w):
    image = np.asarray(Image.fromarray(np.asarray(image, np.uint8)).resize(
        (new_w, new_h), Image.BICUBIC))
  top, left = max(0, (new_h - side) // 2), max(0, (new_w - side) // 2)
  image = image[top:top + side, left:left + side]
  canvas = np.pad(np.asarray(image, np.uint8),
                  ((0, side - image.shape[0]), (0, side - image.shape[1]), (0, 0)), mode="edge")
  return canvas, np.array(image.shape[:2], np.int32)
