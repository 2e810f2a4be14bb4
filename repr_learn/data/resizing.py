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


def _shorter_side_to(image: np.ndarray, shorter: int) -> np.ndarray:
  """uint8 RGB `image` resized (bicubic) so its shorter side is `shorter`."""
  image = np.asarray(_rgb(image), np.uint8)
  h, w = image.shape[:2]
  scale = shorter / min(h, w)
  new_h, new_w = max(shorter, round(h * scale)), max(shorter, round(w * scale))
  if (new_h, new_w) == (h, w):
    return image
  return np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BICUBIC))


def resize_and_center_crop(image: np.ndarray, size: int) -> np.ndarray:
  """Shorter side to `size`, then the central square; grayscale becomes RGB."""
  resized = _shorter_side_to(image, size)
  top, left = (resized.shape[0] - size) // 2, (resized.shape[1] - size) // 2
  return resized[top:top + size, left:left + size]


def fit_for_canvas(image: np.ndarray, shorter: int, max_aspect: float) -> np.ndarray:
  """The whole image with its shorter side at `shorter` and its aspect kept,
  the longer side centre-cropped beyond `max_aspect` x `shorter`: what
  `resize_into_canvas` pads."""
  side = catalog.canvas_side(shorter, max_aspect)
  image = _shorter_side_to(image, shorter)
  top, left = max(0, (image.shape[0] - side) // 2), max(0, (image.shape[1] - side) // 2)
  return image[top:top + side, left:left + side]


def resize_into_canvas(image: np.ndarray, shorter: int,
                       max_aspect: float) -> tuple[np.ndarray, np.ndarray]:
  """`fit_for_canvas`'s image in the top-left corner of a square of
  `catalog.canvas_side(shorter, max_aspect)` whose rest repeats the edge pixels
  (so resampling near the image's border reads edge values, as on the original
  file, not black); returns the canvas and the image's (height, width) in it.
  Random-resized crops then sample the whole image, as torchvision's do on the
  original file, at a static shape."""
  side = catalog.canvas_side(shorter, max_aspect)
  image = fit_for_canvas(image, shorter, max_aspect)
  canvas = np.pad(image, ((0, side - image.shape[0]), (0, side - image.shape[1]), (0, 0)),
                  mode="edge")
  return canvas, np.array(image.shape[:2], np.int32)


def stored_example(image: np.ndarray, image_size: int, max_aspect: float) -> dict[str, np.ndarray]:
  """{image[, image_hw]} as a catalog dataset stores `image`: in its canvas
  (`max_aspect` > 1), else the central square."""
  if max_aspect > 1.0:
    canvas, image_hw = resize_into_canvas(image, image_size, max_aspect)
    return {"image": canvas, "image_hw": image_hw}
  return {"image": resize_and_center_crop(image, image_size)}
