"""Host-side resizing to the stored square size (before on-device augmentation)."""

import numpy as np
from PIL import Image


def resize_and_center_crop(image: np.ndarray, size: int) -> np.ndarray:
  """Shorter side to `size`, then the central square; grayscale becomes RGB."""
  if image.ndim == 2:
    image = image[..., None]
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  h, w = image.shape[:2]
  if (h, w) == (size, size):
    return np.asarray(image, np.uint8)
  scale = size / min(h, w)
  new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
  resized = np.asarray(Image.fromarray(np.asarray(image, np.uint8)).resize(
      (new_w, new_h), Image.BICUBIC))
  top, left = (new_h - size) // 2, (new_w - size) // 2
  return resized[top:top + size, left:left + size]
