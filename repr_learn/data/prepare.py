"""Builds a catalog dataset as array_record files, once, where TFDS can download.

  python -m repr_learn.data.prepare --dataset=cifar10 --data_dir=$TFDS
  python -m repr_learn.data.prepare --dataset=imagenet2012 --data_dir=$TFDS \
      --manual_dir=$DIR_WITH_ILSVRC2012_TARS
"""

from absl import app
from absl import flags
import tensorflow_datasets as tfds

from repr_learn.data import catalog
from repr_learn.data import digits

_DATASET = flags.DEFINE_string("dataset", None, "Catalog name (see catalog.py).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir to build into.")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Hand-downloaded files (ImageNet).")
flags.mark_flag_as_required("dataset")


def main(argv):
  del argv
  spec = catalog.get_spec(_DATASET.value)
  if spec.name == "image_folder":
    raise app.UsageError("image_folder needs no preparation; point data.data_dir at it.")
  if spec.name == "digits":
    digits.prepare_digits(_DATA_DIR.value)
    return
  builder = tfds.builder(spec.tfds_name, data_dir=_DATA_DIR.value)
  builder.download_and_prepare(
      file_format="array_record",
      download_config=tfds.download.DownloadConfig(manual_dir=_MANUAL_DIR.value))


if __name__ == "__main__":
  app.run(main)
