"""scikit-learn's handwritten digits as a TFDS dataset (no download needed).

1,797 real 8x8 scans (values 0..16) upsampled to 32x32 RGB so the CIFAR-style
pipeline and backbones apply unchanged. The train/test split is a fixed
permutation, so every machine sees the same 1,437 / 360 examples.
"""

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

NAME = "repr_learn_digits"
IMAGE_SIZE = 32
NUM_TEST = 360


def _digit_images() -> tuple[np.ndarray, np.ndarray]:
  from sklearn import datasets  # Imported here: only building needs it.
  digits = datasets.load_digits()
  images = []
  for img in digits.images:
    gray = Image.fromarray(np.uint8(np.round(img * 255.0 / 16.0)))
    gray = gray.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
    images.append(np.repeat(np.asarray(gray)[..., None], 3, axis=-1))
  return np.stack(images), digits.target.astype(np.int64)


class ReprLearnDigits(tfds.core.GeneratorBasedBuilder):
  """Handwritten digits (Alpaydin & Kaynak 1998) from scikit-learn."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "32x32 RGB upsampling of sklearn.datasets.load_digits."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description="scikit-learn's 8x8 handwritten digits upsampled to 32x32 RGB.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3)),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    images, labels = _digit_images()
    order = np.random.default_rng(0).permutation(len(images))
    test, train = order[:NUM_TEST], order[NUM_TEST:]
    return {"train": self._generate_examples(images, labels, train),
            "test": self._generate_examples(images, labels, test)}

  def _generate_examples(self, images, labels, indices):
    for i in indices:
      yield int(i), {"image": images[i], "label": int(labels[i])}
